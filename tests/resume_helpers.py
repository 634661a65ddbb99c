"""What the resume and fault-injection tests share: one small recipe that exercises everything a
resume must restore, and the checks that a run equals an uninterrupted one."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import torch

from seqmnist.checkpoint import load_checkpoint
from seqmnist.config import TrainConfig
from seqmnist.run import BEST_NAME, LAST_NAME
from seqmnist.train import fit

TIMING_COLUMNS = {"epoch_seconds", "train_seconds", "samples_per_s"}

# Dropout, two layers and augmentation: a resume must restore the RNG state to reproduce the
# dropout masks, and re-seed the augmentation exactly as the uninterrupted run did.
RESUME_OVERRIDES = dict(epochs=3, layers=2, dropout=0.3, seed=3, augment_shift=2)


def fit_tiny(data_dir: Path, config: TrainConfig, run_dir: Path, **kwargs) -> dict:
    """``fit`` on the synthetic data, quietly."""
    return fit(config, run_dir, data_dir=data_dir, download=False, quiet=True, **kwargs)


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv without the columns that measure time."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [
            {k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)
        ]


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / LAST_NAME)["model_state"]


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Same metrics rows (times aside), same last and best weights, same test result."""
    assert metric_rows(run_dir) == metric_rows(reference)
    assert_same_state(final_state(run_dir), final_state(reference))
    assert_same_state(
        load_checkpoint(run_dir / BEST_NAME)["model_state"],
        load_checkpoint(reference / BEST_NAME)["model_state"],
    )
    ours, theirs = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    for key in ("test_acc", "test_loss", "best_epoch", "epochs"):
        assert ours[key] == theirs[key], key
    assert ours["total_seconds"] >= ours["train_seconds"] > 0


def signal_at(epoch: int, images: int, signum: int = signal.SIGINT):
    """An ``on_batch`` hook that sends this process a real signal once ``images`` images of
    ``epoch`` are done (what Ctrl-C or `kill` would do at that moment)."""

    def hook(current_epoch: int, done: int) -> None:
        if current_epoch == epoch and done >= images:
            os.kill(os.getpid(), signum)

    return hook
