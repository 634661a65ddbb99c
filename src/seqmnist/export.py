"""Export a trained model to ONNX, a torch.export program (.pt2) or TorchScript, then prove the
file computes what PyTorch does.

    seqmnist export runs/default --format onnx          # -> runs/default/model.onnx
    seqmnist export runs/default --format pt2           # -> runs/default/model.pt2

The exported graph is the model's ``forward``: images (B, 28, 28) float32, already normalised the
way the run was trained (``data.to_model_input``), -> logits (B, 10). For a seed-preset model
(``softmax_output``) the forward ends in a softmax, so its export returns probabilities.

- ONNX: the torch.export-based exporter (``dynamo=True``) for sequences of up to
  ``DYNAMO_ONNX_MAX_STEPS`` steps, the TorchScript-based one (``dynamo=False``) for longer ones,
  which torch.export takes minutes to trace (``benchmarks/bench_export.py``). Both with a dynamic
  batch axis; how to prepare the input is in the file's metadata.
- pt2: ``torch.export.save`` of ``torch.export.export``; the input recipe is in its extra file
  ``seqmnist.json``. Load it with ``torch.export.load(path).module()``: no seqmnist needed.
- TorchScript (``torch.jit.trace``): deprecated by PyTorch; kept while PyTorch ships it, with one
  deprecation warning of ours.

After writing, the file is loaded back (onnxruntime / ``torch.export.load`` / ``torch.jit.load``)
and run on real test images next to the PyTorch model; the export fails unless the logits agree to
1e-4 and every predicted label matches. The file appears only after it passes
(``run.atomic_write``: temp file + rename, with the umask's mode).
"""

from __future__ import annotations

import io
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from .checkpoint import TORCHSCRIPT_PROGRAM, exported_program_kind
from .config import TrainConfig
from .data import MNIST_MEAN, MNIST_STD, load_mnist, to_model_input
from .errors import SeqMnistError
from .model import SeqClassifier
from .run import atomic_write
from .trained import load_trained

FORMATS = ("onnx", "pt2", "torchscript")
DEFAULT_NAMES = {"onnx": "model.onnx", "pt2": "model.pt2", "torchscript": "model.pt"}
SUFFIXES = {fmt: Path(name).suffix for fmt, name in DEFAULT_NAMES.items()}  # "onnx" -> ".onnx"
# The extra file of a .pt2 that says how to prepare its input (torch.export.load(..., extra_files)).
PT2_INFO = "seqmnist.json"
TORCHSCRIPT_DEPRECATED = (
    "--format torchscript is deprecated (PyTorch deprecated TorchScript in 2.11): use --format pt2 "
    "(torch.export) or onnx"
)
PARITY_SAMPLES = 256
MAX_ABS_DIFF = 1e-4
ONNX_OPSET = 17
MAX_BATCH = 65_536  # the free batch axis of ONNX (dynamo) and pt2 exports: 1 to this
# Sequences up to this many steps go through the torch.export-based ONNX exporter (dynamo=True);
# longer ones through the TorchScript-based one. torch.export traces the LSTM step by step: on
# two CPU cores a 28-step model exports in seconds, a 784-step one (pixels, permuted) in minutes
# (benchmarks/bench_export.py). Chosen here, not timed at run time.
DYNAMO_ONNX_MAX_STEPS = 49


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
    _refuse_other_formats_suffix(out_path, fmt)

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


def _refuse_other_formats_suffix(out_path: Path, fmt: str) -> None:
    """An --out named like another format's export (``--format pt2 --out m.onnx``) is refused:
    tools pick their reader by the suffix. Any other suffix, or none, is the user's choice."""
    suffix = out_path.suffix.lower()
    other = next((f for f, s in SUFFIXES.items() if s == suffix and f != fmt), None)
    if other is None:
        return
    raise ExportError(
        f"--format {fmt} writes a {SUFFIXES[fmt]} file, but --out {out_path} ends in "
        f"{out_path.suffix}, the suffix of {other} exports: name it "
        f"{out_path.with_suffix(SUFFIXES[fmt]).name}, or pass --format {other}"
    )


def _is_export(path: Path, fmt: str) -> bool:
    """Is ``path`` a file an earlier ``seqmnist export --format fmt`` wrote? ONNX: its
    metadata names seqmnist as producer; pt2: its small extra file does; TorchScript: a zip
    holding compiled code (a checkpoint from torch.save is a zip too, but without code). Only
    zip names and that small JSON are read, never the file's program, weights or pickles."""
    if fmt == "torchscript":
        return exported_program_kind(path) == TORCHSCRIPT_PROGRAM
    if fmt == "pt2":
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                return _pt2_is_ours(archive)
        except (OSError, zipfile.BadZipFile):
            return False
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX at all: protobuf raises its own errors
        return False
    return any(p.key == "producer" and p.value == "seqmnist" for p in proto.metadata_props)


def _pt2_is_ours(archive: Any) -> bool:
    import json

    for info in archive.infolist():
        if info.filename.endswith("/extra/" + PT2_INFO) and info.file_size < 65_536:
            try:
                data = json.loads(archive.read(info))
            except Exception:  # damaged member or JSON (zlib, CRC, syntax): not ours
                return False
            return isinstance(data, dict) and data.get("producer") == "seqmnist"
    return False


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
    if fmt == "pt2":
        _export_pt2(model, path, output_kind, config)
        return "torch.export", _run_pt2(path, inputs)
    warnings.warn(TORCHSCRIPT_DEPRECATED, FutureWarning, stacklevel=2)
    _export_torchscript(model, path)
    return "torch.jit.trace (deprecated)", _run_torchscript(path, inputs)


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
    """Write an ONNX file with a dynamic batch axis; returns which exporter was used: the
    torch.export-based one (``dynamo=True``) for short sequences, the TorchScript-based one for
    long ones, or where it is missing from PyTorch."""
    example = torch.zeros(2, 28, 28)
    names = {"input_names": ["images"], "output_names": [output_kind]}
    if config.model.steps <= DYNAMO_ONNX_MAX_STEPS:
        return _export_onnx_dynamo(model, path, output_kind, config)
    try:
        with warnings.catch_warnings():
            _ignore_torchscript_notes()
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                opset_version=ONNX_OPSET,
                dynamic_axes={"images": {0: "batch"}, output_kind: {0: "batch"}},
                **names,
            )
    except (TypeError, NotImplementedError):  # a PyTorch without the TorchScript-based exporter
        return _export_onnx_dynamo(model, path, output_kind, config)
    _add_onnx_metadata(path, output_kind, config)
    return "torch.onnx (TorchScript-based, dynamo=False)"


def _export_onnx_dynamo(
    model: SeqClassifier, path: Path, output_kind: str, config: TrainConfig
) -> str:
    """The torch.export-based ONNX exporter, in one file (``external_data=False``: otherwise the
    weights may go to a side ``.data`` file that the temp-file-then-rename write would leak)."""
    with warnings.catch_warnings():
        _ignore_export_notes()
        _dynamo_onnx_export(model, path, output_kind)
    _add_onnx_metadata(path, output_kind, config)
    return "torch.onnx (torch.export-based, dynamo=True)"


def _dynamo_onnx_export(model: SeqClassifier, path: Path, output_kind: str) -> None:
    torch.onnx.export(
        model,
        (torch.zeros(2, 28, 28),),
        str(path),
        dynamo=True,
        external_data=False,
        verbose=False,
        input_names=["images"],
        output_names=[output_kind],
        dynamic_shapes={"images": {0: torch.export.Dim("batch", max=MAX_BATCH)}},
    )


def _ignore_export_notes() -> None:
    """PyTorch's notes while torch.export traces nn.LSTM, about PyTorch's own code, not ours:
    its generated graph calls ``_check_is_size`` (deprecated inside PyTorch), and nn.LSTM
    reassigns its ``_flat_weights`` list. The parity check proves the program right."""
    warnings.filterwarnings(
        "ignore", message="_check_is_size will be removed", category=FutureWarning
    )
    warnings.filterwarnings("ignore", message=r"The tensor attributes self\.rnn\._flat_weights")


def _ignore_torchscript_notes() -> None:
    """PyTorch's notes on the TorchScript-based paths, each answered here, not hidden wholesale:
    tracer hints (SeqClassifier's forward has no data-dependent branch, and the parity run at a
    batch size other than the traced one checks the free batch axis), and PyTorch's own
    deprecation notices (the CLI says it once, in our words: ``TORCHSCRIPT_DEPRECATED``)."""
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated")
    warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX")
    warnings.filterwarnings("ignore", message="The feature will be removed", module="torch")
    warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other")


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
        _ignore_torchscript_notes()
        traced = torch.jit.trace(model, torch.zeros(2, 28, 28))
        torch.jit.save(traced, str(path))


def _run_torchscript(path: Path, inputs: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        _ignore_torchscript_notes()
        loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return loaded(inputs)


def pt2_info(output_kind: str, config: TrainConfig) -> dict[str, Any]:
    """What a .pt2 says about itself in its extra file ``PT2_INFO``: how to prepare its input."""
    return {
        "producer": "seqmnist",
        "input": "images (B, 28, 28) float32, light ink on black, MNIST-style; "
        + _input_note(config),
        "output": f"{output_kind} (B, 10) for digits 0-9",
        "normalize": config.normalize,
        "mean": MNIST_MEAN if config.normalize else 0.0,
        "std": MNIST_STD if config.normalize else 1.0,
        "order": config.model.order,
    }


def _export_pt2(model: SeqClassifier, path: Path, output_kind: str, config: TrainConfig) -> None:
    """A torch.export program with a free batch axis, its input recipe in an extra file."""
    import json

    with warnings.catch_warnings():
        _ignore_export_notes()
        program = torch.export.export(
            model,
            (torch.zeros(2, 28, 28),),
            dynamic_shapes={"images": {0: torch.export.Dim("batch", max=MAX_BATCH)}},
        )
    info = json.dumps(pt2_info(output_kind, config))
    # Through a buffer: torch.export.save warns about a file name that does not end in .pt2,
    # which atomic_write's temp file does not.
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={PT2_INFO: info})
    path.write_bytes(buffer.getvalue())


def _run_pt2(path: Path, inputs: torch.Tensor) -> torch.Tensor:
    program = torch.export.load(io.BytesIO(path.read_bytes()))
    with torch.inference_mode():
        return program.module()(inputs)


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
