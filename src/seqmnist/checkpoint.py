"""The checkpoint file format: versioned, written atomically, loaded safely (``weights_only=True``).

A checkpoint is a plain dict, ``TrainState.state_dict()`` plus three format fields::

    {"format": "seqmnist-checkpoint", "version": 1, "arch": "SeqClassifier",
     "model_config": {...}, "train_config": {...}, "model_state": {...},
     "epoch": k, "optimizer_state": ..., "scheduler_state": ..., "rng_state": ..., ...}

Loading never unpickles arbitrary objects, and a model is built only after its saved weights
are known to fit its saved config: a crafted config cannot make us allocate a huge model.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from .config import ModelConfig, TrainConfig
from .errors import CheckpointError, ConfigError, first_line
from .model import SeqClassifier, build_model
from .run import atomic_write, resolve_checkpoint

FORMAT_NAME = "seqmnist-checkpoint"
FORMAT_VERSION = 1
ARCHITECTURES = {"SeqClassifier": build_model}
NOT_A_CHECKPOINT = "pass a checkpoint_*.pt written by `seqmnist train`"


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format fields) to ``path``, whole or not at all."""
    data = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "arch": "SeqClassifier", **payload}
    atomic_write(path, lambda f: torch.save(data, f))


def _equals_exactly(value: Any, kind: type, expected: Any) -> bool:
    """``value`` is of type ``kind`` (not a subclass: True is not version 1) and equals
    ``expected``. The type is checked first because a file may hold anything there, and ``==``
    on a tensor compares element-wise."""
    return type(value) is kind and value == expected


def _short_repr(value: Any) -> str:
    """A file's value in one short line: small plain values as they are, others by type."""
    text = repr(value)
    if isinstance(value, (str, int, float, type(None))) and len(text) <= 40:
        return text
    return f"a {type(value).__name__}"


TORCHSCRIPT_PROGRAM = "a TorchScript program"


def exported_program_kind(path: str | os.PathLike) -> str | None:
    """What ``seqmnist export`` writes that ``torch.load`` cannot read, told apart by the zip's
    member names alone (nothing in it is loaded): "an exported program (torch.export, .pt2)",
    "a TorchScript program", or None for anything else."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if any(name.endswith("/archive_format") for name in names):  # torch.export.save's layout
        return "an exported program (torch.export, .pt2)"
    if any("/code/" in name for name in names):  # torch.jit.save's compiled code
        return TORCHSCRIPT_PROGRAM
    return None


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load and check a checkpoint (file or run directory). Never unpickles arbitrary objects."""
    path = resolve_checkpoint(path)
    try:
        # A file that is refused anyway may make the unpickler warn first (a pickle protocol
        # it does not expect): the one-line refusal below is what the user should see.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location=map_location, weights_only=True)
    # Garbage bytes fail inside the unpickler in many ways (KeyError, IndexError,
    # UnicodeDecodeError, ...); weights_only means nothing was executed, so any failure
    # here means "not a checkpoint".
    # PyTorch's own message is not repeated: it suggests weights_only=False, which we never do.
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a folder, not a checkpoint: {NOT_A_CHECKPOINT}") from None
    except PermissionError:
        raise CheckpointError(f"cannot read {path}: permission denied") from None
    except Exception:
        program = exported_program_kind(path)
        if program is not None:
            raise CheckpointError(
                f"{path} is {program}, not a checkpoint: pass the run directory it was exported "
                "from, or its checkpoint_*.pt"
            ) from None
        raise CheckpointError(
            f"{path} is not a seqmnist checkpoint (unreadable or damaged); {NOT_A_CHECKPOINT}"
        ) from None
    if not isinstance(data, dict) or not _equals_exactly(data.get("format"), str, FORMAT_NAME):
        raise CheckpointError(
            f"{path} is a PyTorch file but not a seqmnist checkpoint; {NOT_A_CHECKPOINT}"
        )
    version = data.get("version")
    if not _equals_exactly(version, int, FORMAT_VERSION):
        raise CheckpointError(
            f"{path} has checkpoint format version {_short_repr(version)}, this seqmnist reads "
            f"version {FORMAT_VERSION}: use the seqmnist release that wrote it, or retrain"
        )
    arch = data.get("arch")
    if not (isinstance(arch, str) and arch in ARCHITECTURES):
        raise CheckpointError(
            f"{path} holds an unknown architecture {_short_repr(arch)}; {NOT_A_CHECKPOINT}"
        )
    for key in ("model_config", "model_state"):
        if not isinstance(data.get(key), dict):
            raise CheckpointError(
                f"{path} has no valid {key!r}: the file is damaged, retrain or use another"
            )
    data["path"] = str(path)
    return data


def model_from_checkpoint(data: dict[str, Any]) -> SeqClassifier:
    """Rebuild the model a loaded checkpoint describes, with its weights, in eval mode.

    The model is first built on the meta device (no memory) to compare its parameter shapes with
    the saved tensors; only a config that the weights fit, and weights that are all finite, get a
    real model.
    """
    where = data.get("path", "checkpoint")
    try:
        config = ModelConfig.from_dict(data["model_config"])
        config.validate()
        with torch.device("meta"):
            skeleton = ARCHITECTURES[data["arch"]](config)
    except (TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{where} has an invalid model config ({first_line(exc)})") from None
    expected = {name: tuple(t.shape) for name, t in skeleton.state_dict().items()}
    _check_weights(data["model_state"], expected, where)
    model = ARCHITECTURES[data["arch"]](config)
    model.load_state_dict(data["model_state"])
    return model.eval()


def _check_weights(state: dict[str, Any], expected: dict[str, tuple[int, ...]], where: str) -> None:
    """The saved tensors must be exactly the ones the config describes, and finite."""
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = (
            f"missing {', '.join(missing[:3])}"
            if missing
            else f"unexpected {', '.join(unexpected[:3])}"
        )
        raise CheckpointError(
            f"{where} does not match its own model config ({detail}); the file is damaged"
        )
    for name, shape in expected.items():
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(
                f"{where} does not match its own model config "
                f"({name} is {got}, the config needs {shape}); the file is damaged"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{where} holds non-finite weights ({name} has NaN or inf): the run diverged; "
                "use another checkpoint or retrain with a lower --lr"
            )


def train_config_from_checkpoint(data: dict[str, Any]) -> TrainConfig | None:
    """The train config saved with the weights; None for a checkpoint saved without one."""
    raw = data.get("train_config")
    if raw is None:
        return None
    try:
        config = TrainConfig.from_dict(raw)
        config.validate()
    except (TypeError, ValueError, ConfigError) as exc:
        raise CheckpointError(
            f"{data.get('path', 'checkpoint')} has an invalid train config ({first_line(exc)})"
        ) from None
    return config
