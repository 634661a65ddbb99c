"""seqmnist: recurrent classifiers on MNIST read as a sequence."""

from __future__ import annotations

__version__ = "0.1.0"

# The public API is loaded on first use, so `import seqmnist` stays light (no torch import):
#     import seqmnist
#     clf = seqmnist.load("runs/default")
#     clf.predict(["seven.png"])
_LAZY = {"load": "predict", "Classifier": "predict", "Prediction": "predict"}
# Training and export helpers (issue 23): a --config file, export to ONNX / pt2 / TorchScript.
_LAZY |= {"load_config_file": "config_file", "export_model": "export"}
_LAZY |= {"write_tensorboard": "tblog"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):  # PEP 562: module-level lazy attributes
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
