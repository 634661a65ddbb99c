"""Checkpoints: versioned, written atomically, loaded safely (``weights_only=True``).

A checkpoint is a plain dict that is enough both to resume training and to rebuild the model:

    {"format": "seqmnist-checkpoint", "version": 1, "arch": "SeqClassifier",
     "model_config": {...}, "train_config": {...}, "model_state": {...},
     "epoch": k, "optimizer_state": ..., "scheduler_state": ..., "rng_state": ...,
     "best_val_acc": ..., "metrics": {...}}
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig, TrainConfig
from .errors import CheckpointError, ConfigError
from .model import SeqClassifier, build_model

FORMAT_NAME = "seqmnist-checkpoint"
FORMAT_VERSION = 1
ARCHITECTURES = {"SeqClassifier": build_model}
# The files of a run directory (written by train.fit, read by evaluate / info / plot / predict).
LAST_NAME = "checkpoint_last.pt"
BEST_NAME = "checkpoint_best.pt"
CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.csv"
SUMMARY_NAME = "summary.json"


def read_summary(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A run directory's summary.json (written when training finishes); None if there is none.
    A file that is there but unreadable is an error: it means the run directory is damaged."""
    path = Path(run_dir) / SUMMARY_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable summary ({exc}); delete it and train the run again") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a seqmnist summary; delete it and train the run again")
    return data


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format fields) to ``path`` atomically: temp file in the same
    folder, fsync, rename. A crash or Ctrl-C mid-write never leaves a half-written checkpoint."""
    path = Path(path)
    data = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "arch": "SeqClassifier", **payload}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates the file private (0600); give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """A checkpoint file, or a run directory (its best checkpoint, else its last one)."""
    path = Path(path)
    if path.is_dir():
        order = [BEST_NAME, LAST_NAME] if prefer == "best" else [LAST_NAME, BEST_NAME]
        for name in order:
            if (path / name).is_file():
                return path / name
        raise CheckpointError(
            f"{path} is a folder without {BEST_NAME} or {LAST_NAME}: pass a run directory "
            "made by `seqmnist train` or a checkpoint file"
        )
    if not path.exists():
        raise CheckpointError(f"no such run directory or checkpoint: {path}")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint (file or run directory). Never unpickles arbitrary objects."""
    path = resolve_checkpoint(path)
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    # Garbage bytes fail inside the unpickler in many ways (KeyError, IndexError, UnicodeDecodeError,
    # ...); weights_only means nothing was executed, so any failure here means "not a checkpoint".
    except Exception as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a readable seqmnist checkpoint ({first_line[:160]}); "
            "pass a checkpoint_*.pt written by `seqmnist train`"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path} is a PyTorch file but not a seqmnist checkpoint; "
            "pass a checkpoint_*.pt written by `seqmnist train`"
        )
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}, this seqmnist reads version "
            f"{FORMAT_VERSION}: use the seqmnist release that wrote it, or retrain"
        )
    if data.get("arch") not in ARCHITECTURES:
        raise CheckpointError(f"{path} holds an unknown architecture {data.get('arch')!r}")
    for key in ("model_config", "model_state"):
        if key not in data:
            raise CheckpointError(f"{path} is missing {key!r}: the file is damaged, retrain or use another")
    data["path"] = str(path)
    return data


def model_from_checkpoint(data: dict[str, Any]) -> SeqClassifier:
    """Rebuild the model a loaded checkpoint describes, with its weights, in eval mode."""
    try:
        config = ModelConfig(**data["model_config"])
        model = ARCHITECTURES[data["arch"]](config)
        model.load_state_dict(data["model_state"])
    except (TypeError, ConfigError, RuntimeError) as exc:
        raise CheckpointError(
            f"{data.get('path', 'checkpoint')} does not match its own model config ({str(exc)[:160]})"
        ) from None
    return model.eval()


def train_config_from_checkpoint(data: dict[str, Any]) -> TrainConfig | None:
    raw = data.get("train_config")
    return TrainConfig.from_dict(raw) if raw else None
