"""Export a trained model to ONNX or TorchScript, then prove the file computes what PyTorch does.

    seqmnist export runs/default --format onnx          # -> runs/default/model.onnx

The exported graph is the model's ``forward``: images (B, 28, 28) float32, already normalised the
way the run was trained (``data.to_model_input``), -> logits (B, 10). For a seed-preset model
(``softmax_output``) the forward ends in a softmax, so its export returns probabilities.

ONNX uses PyTorch's TorchScript-based exporter (``dynamo=False``) with a dynamic batch axis. The
dynamo exporter gives the same numbers (checked: ~1e-7), but takes 15-45 s per export on two CPU
cores against ~1 s, and prints progress; it is used only if the classic exporter is unavailable.

After writing, the file is loaded back (onnxruntime / ``torch.jit.load``) and run on real test
images next to the PyTorch model; the export fails unless the logits agree to 1e-4 and every
predicted label matches. The file appears only after it passes (``run.atomic_write``: temp file +
rename, with the umask's mode).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .data import MNIST_MEAN, MNIST_STD, load_mnist, to_model_input
from .errors import SeqMnistError
from .model import SeqClassifier
from .run import atomic_write
from .trained import load_trained

FORMATS = ("onnx", "torchscript")
DEFAULT_NAMES = {"onnx": "model.onnx", "torchscript": "model.pt"}
PARITY_SAMPLES = 256
MAX_ABS_DIFF = 1e-4
ONNX_OPSET = 17


class ExportError(SeqMnistError):
    """An export failed, or the exported file does not match the PyTorch model."""


def export_model(
    path_or_run_dir: str | os.PathLike,
    fmt: str = "onnx",
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    samples: int = PARITY_SAMPLES,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Export, check parity on ``samples`` real test images, and return a report:
    path, bytes, format, output kind, max_abs_diff, agreement, samples, seconds.

    An existing ``out`` is replaced only when it is an earlier export of the same format (or
    ``overwrite``); the checkpoint being exported is never replaced."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "onnx":
        _require_onnx()
    trained = load_trained(path_or_run_dir, "cpu")
    model, config = trained.model, trained.config
    out_path = _checked_out_path(out, trained.checkpoint.parent / DEFAULT_NAMES[fmt], fmt)
    _refuse_foreign_file(out_path, fmt, trained.checkpoint, overwrite)

    # Real test images, normalised exactly as in training: (N, 28, 28) float32.
    test = load_mnist(data_dir, train=False, download=download)
    inputs = to_model_input(test.images[:samples], config.normalize)
    output_kind = "probabilities" if model.config.softmax_output else "logits"

    start = time.perf_counter()
    exporter, max_diff, agreement = _write_verified(
        model, config, fmt, output_kind, inputs, out_path
    )
    return {
        "format": fmt,
        "path": str(out_path),
        "bytes": out_path.stat().st_size,
        "checkpoint": str(trained.checkpoint),
        "exporter": exporter,
        "input": "images (B, 28, 28) float32, " + _input_note(config),
        "output": f"{output_kind} (B, 10)",
        "samples": len(inputs),
        "max_abs_diff": max_diff,
        "agreement": agreement,
        "seconds": time.perf_counter() - start,
    }


def _checked_out_path(out: str | os.PathLike | None, default: Path, fmt: str) -> Path:
    """``out`` (or ``default``) as a file path whose folder exists; a folder or a missing parent
    is an ``ExportError``."""
    out_path = Path(out) if out else default
    if out_path.is_dir():
        raise ExportError(
            f"--out {out_path} is a folder; give a file name such as "
            f"{out_path / DEFAULT_NAMES[fmt]}"
        )
    if not out_path.parent.is_dir():
        raise ExportError(f"--out {out_path}: the folder {out_path.parent} does not exist")
    return out_path


def _refuse_foreign_file(out_path: Path, fmt: str, checkpoint: Path, overwrite: bool) -> None:
    """Never write over the model's own checkpoint; over another existing file only if it is
    an earlier export of this format (redoing an export) or the user said ``--overwrite``."""
    if not out_path.exists():
        return
    if out_path.resolve() == checkpoint.resolve():
        raise ExportError(f"--out {out_path} is the checkpoint being exported: choose another file")
    if overwrite or _is_export(out_path, fmt):
        return
    raise ExportError(
        f"--out {out_path} already exists and is not an earlier {fmt} export: "
        "choose another file, or add --overwrite to replace it"
    )


def _is_export(path: Path, fmt: str) -> bool:
    """Is ``path`` a file an earlier ``seqmnist export --format fmt`` wrote? ONNX: its
    metadata names seqmnist as producer; TorchScript: a zip holding compiled code (a checkpoint
    from torch.save is a zip too, but without code)."""
    if fmt == "torchscript":
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                return any("/code/" in name for name in archive.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all: protobuf raises its own errors
        return False
    return any(p.key == "producer" and p.value == "seqmnist" for p in proto.metadata_props)


def _write_verified(
    model: SeqClassifier,
    config: TrainConfig,
    fmt: str,
    output_kind: str,
    inputs: torch.Tensor,
    out_path: Path,
) -> tuple[str, float, float]:
    """Export into a temp file beside ``out_path``, check it against ``model`` on ``inputs`` and
    only then rename it to ``out_path`` (``atomic_write``, so the file gets the umask's mode like
    every other file seqmnist writes); returns (exporter, max |difference|, label agreement)."""

    def export_and_check(tmp: Path) -> tuple[str, float, float]:
        exporter, exported = _export_and_run(model, config, fmt, output_kind, tmp, inputs)
        return (exporter, *_check_parity(model, exported, inputs, fmt))

    return atomic_write(out_path, export_and_check, to_path=True)


def _export_and_run(
    model: SeqClassifier,
    config: TrainConfig,
    fmt: str,
    output_kind: str,
    path: Path,
    inputs: torch.Tensor,
) -> tuple[str, torch.Tensor]:
    """Write ``model`` to ``path`` in ``fmt``, load the file back and run it on ``inputs``;
    returns (exporter used, the file's outputs (N, 10))."""
    if fmt == "onnx":
        exporter = _export_onnx(model, path, output_kind, config)
        return exporter, _run_onnx(path, inputs)
    _export_torchscript(model, path)
    return "torch.jit.trace", _run_torchscript(path, inputs)


def _check_parity(
    model: SeqClassifier, exported: torch.Tensor, inputs: torch.Tensor, fmt: str
) -> tuple[float, float]:
    """(max |difference|, fraction of equal labels) of the exported outputs against PyTorch's;
    an ``ExportError`` unless they agree to ``MAX_ABS_DIFF`` and on every label."""
    with torch.inference_mode():
        reference = model(inputs)  # (N, 10)
    max_diff = float((exported - reference).abs().max())
    agreement = float((exported.argmax(1) == reference.argmax(1)).float().mean())
    if not max_diff <= MAX_ABS_DIFF or agreement < 1.0:  # `not <=` also catches NaN
        raise ExportError(
            f"the exported {fmt} model does not match PyTorch on {len(inputs)} test images: "
            f"max |difference| {max_diff:.3g} (allowed {MAX_ABS_DIFF:g}), labels agree on "
            f"{agreement:.2%}; nothing was written"
        )
    return max_diff, agreement


def _input_note(config: TrainConfig) -> str:
    if config.normalize:
        return f"pixels / 255, then (x - {MNIST_MEAN}) / {MNIST_STD}"
    return "pixels / 255"


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise SeqMnistError(
            "ONNX export needs the 'export' extra: pip install 'seqmnist[export]'"
        ) from None


def _export_onnx(model: SeqClassifier, path: Path, output_kind: str, config: TrainConfig) -> str:
    """Write an ONNX file with a dynamic batch axis; returns which exporter was used."""
    example = torch.zeros(2, 28, 28)
    names = {"input_names": ["images"], "output_names": [output_kind]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices and tracer hints, not problems
        try:
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=ONNX_OPSET,
                dynamic_axes={"images": {0: "batch"}, output_kind: {0: "batch"}},
                **names,
            )
            exporter = "torch.onnx (TorchScript-based, dynamo=False)"
        except (TypeError, RuntimeError, NotImplementedError):
            # a PyTorch without the classic exporter
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                verbose=False,
                dynamic_shapes={"x": {0: batch}},
                **names,
            )
            exporter = "torch.onnx (dynamo=True)"
    _add_onnx_metadata(path, output_kind, config)
    return exporter


def _add_onnx_metadata(path: Path, output_kind: str, config: TrainConfig) -> None:
    """Record in the file how inputs must be prepared, so the .onnx explains itself."""
    import onnx

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    onnx.helper.set_model_props(
        proto,
        {
            "producer": "seqmnist",
            "input": "images (B, 28, 28) float32, light ink on black, MNIST-style; "
            + _input_note(config),
            "output": f"{output_kind} (B, 10) for digits 0-9",
            "normalize": str(config.normalize).lower(),
        },
    )
    onnx.save(proto, str(path))


def _run_onnx(path: Path, inputs: torch.Tensor) -> torch.Tensor:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"images": inputs.numpy()})
    return torch.from_numpy(output)  # (N, 10)


def _export_torchscript(model: SeqClassifier, path: Path) -> None:
    # trace, not script: the model keeps a dataclass config that TorchScript cannot compile.
    # Tracing records one path through forward; SeqClassifier's forward has no data-dependent
    # branches, and the traced LSTM takes any batch size (checked by the parity run at N != 2).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.zeros(2, 28, 28))
        torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, inputs: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return loaded(inputs)


def format_export_report(report: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"wrote {report['path']} ({report['bytes'] / 1024:.0f} KiB, {report['format']}, "
            f"via {report['exporter']})",
            f"parity on {report['samples']} test images: "
            f"max |difference| {report['max_abs_diff']:.2e}, "
            f"labels agree {report['agreement']:.2%}",
            f"input:  {report['input']}",
            f"output: {report['output']}",
        ]
    )
