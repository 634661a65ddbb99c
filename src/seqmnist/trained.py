"""The one way to load a trained model: a run directory or checkpoint file -> ``TrainedModel``.

Used by evaluate, info, predict, serve, export, plot and inspect. It imports nothing of training.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_checkpoint, model_from_checkpoint, train_config_from_checkpoint
from .config import TrainConfig
from .errors import SeqMnistError
from .model import SeqClassifier
from .options import is_number
from .run import RunDir
from .runtime import select_device


@dataclass
class TrainedModel:
    """A model ready for inference, with what it was trained with and where it came from."""

    model: SeqClassifier  # in eval mode, on ``device``
    config: TrainConfig  # the run's train config (the default recipe for a bare checkpoint)
    checkpoint: Path
    device: torch.device
    epoch: int | None
    format_version: int
    arch: str
    run: RunDir | None  # the run directory when the checkpoint sits in one

    @property
    def name(self) -> str:
        """The run's folder name, or the checkpoint's file name without suffix."""
        return self.run.path.name if self.run is not None else self.checkpoint.stem

    def summary(self) -> dict[str, Any] | None:
        """The run's summary.json, None if there is none (or no run)."""
        return self.run.read_summary() if self.run is not None else None

    def test_accuracy(self) -> float | None:
        """The run's test accuracy, for display only: a missing or damaged summary.json must not
        stop a good checkpoint from classifying, so both give None."""
        try:
            summary = self.summary()
        except SeqMnistError:
            return None
        value = summary.get("test_acc") if summary else None
        return float(value) if is_number(value) else None


def load_trained(path: str | os.PathLike, device: str | torch.device = "cpu") -> TrainedModel:
    """A run directory (its best checkpoint) or a checkpoint file -> a ``TrainedModel``.

    ``device``: cpu, cuda, mps or auto (cuda, then mps, then cpu).
    """
    dev = device if isinstance(device, torch.device) else select_device(device)
    ckpt = load_checkpoint(path, map_location=dev)
    model = model_from_checkpoint(ckpt).to(dev)
    # Checkpoints written by `seqmnist train` hold their train config; a bare one falls back to
    # the default recipe (normalised inputs).
    config = train_config_from_checkpoint(ckpt) or TrainConfig()
    checkpoint = Path(ckpt["path"])
    run = RunDir(checkpoint.parent)
    epoch = ckpt.get("epoch")
    return TrainedModel(
        model=model,
        config=config,
        checkpoint=checkpoint,
        device=dev,
        epoch=int(epoch) if isinstance(epoch, int) else None,
        format_version=int(ckpt["version"]),
        arch=str(ckpt["arch"]),
        run=run if run.is_run() else None,
    )
