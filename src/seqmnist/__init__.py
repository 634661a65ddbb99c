"""seqmnist: recurrent classifiers on MNIST read as a sequence."""

from __future__ import annotations

__version__ = "0.1.0"

# The public API is loaded on first use, so `import seqmnist` stays light (no torch import):
#     import seqmnist
#     clf = seqmnist.load("runs/default")
#     clf.predict(["seven.png"])
#     reading = seqmnist.watch(clf, "seven.png")
# The names avoid those of the package's modules (seqmnist.train, .config, .inspect, .explain are
# modules), so that importing one of them never hides a function of the same name.
_LAZY = {
    "load": "predict",
    "Classifier": "predict",
    "Prediction": "predict",
    "recipe": "api",
    "presets": "api",
    "fit": "api",
    "mnist": "api",
    "evaluate": "api",
    "inspect_model": "api",
    "example_image": "api",
    "example_images": "api",
    "draw_samples": "api",
    "draw_sequence": "api",
    "draw_curves": "api",
    "draw_confusion": "api",
    "draw_mistakes": "api",
    "draw_reading": "api",
    "watch": "explain",
    "Reading": "explain",
    "SeqMnistError": "errors",
}
# Training and export helpers: a --config file, export to ONNX / pt2 / TorchScript, TensorBoard.
_LAZY |= {"load_config_file": "config_file", "export_model": "export"}
_LAZY |= {"write_tensorboard": "tblog"}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):  # PEP 562: module-level lazy attributes
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
