"""TensorBoard event files for a run, in the run's own folder: ``seqmnist train --log tensorboard``.

    tensorboard --logdir runs/          # one entry per run directory, curves side by side

metrics.csv is the record; the event files are derived from it. Every start of ``fit`` (fresh or
resumed) removes the run's event files and, with ``--log tensorboard``, writes them anew from
metrics.csv, then adds each epoch's row as it lands in metrics.csv (flushed at once). So a run
killed at any write and resumed has each epoch exactly once, and its values are those of the CSV,
whichever session logged them. At the end: the test result, the hyperparameters (in the same
event file, not in the time-named subfolder that ``SummaryWriter.add_hparams`` makes) and the
test confusion matrix as an image. Only the primary rank of a distributed run calls this.

Tags: ``loss/{train,val,test}``, ``accuracy/{train,val,test}``, ``lr``, ``samples_per_s/train``
per epoch (step = epoch); ``hparam/test_acc``, ``hparam/test_loss`` and ``confusion_matrix/test``
at the last epoch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, SeqMnistError
from .run import RunDir

LOGGERS = ("tensorboard",)
EVENT_FILES = "events.out.tfevents.*"
MISSING_EXTRA = (
    "--log tensorboard needs the 'tensorboard' extra: pip install 'seqmnist[tensorboard]'"
)
# metrics.csv column -> TensorBoard tag
SCALAR_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "test_loss": "loss/test",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "test_acc": "accuracy/test",
    "lr": "lr",
    "samples_per_s": "samples_per_s/train",
}


def check_loggers(log_to: Sequence[str]) -> None:
    """Before training starts: known names, and their extras installed."""
    for name in log_to:
        if name not in LOGGERS:
            raise ConfigError(f"--log must be one of {', '.join(LOGGERS)}; got {name!r}")
    if "tensorboard" in log_to:
        try:
            import tensorboard  # noqa: F401
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise SeqMnistError(MISSING_EXTRA) from None


class ExperimentLog:
    """The run's event files while it trains; does nothing when ``log_to`` is empty."""

    def __init__(self, log_to: Sequence[str] = ()) -> None:
        check_loggers(log_to)  # before training writes anything
        self.log_to = tuple(log_to)
        self.writer: Any = None  # a torch.utils.tensorboard.SummaryWriter once started

    def start(self, run_dir: str | os.PathLike) -> None:
        """Remove the run's event files; with "tensorboard" in ``log_to``, write them anew from
        metrics.csv (and summary.json, when the run has finished)."""
        run = RunDir(run_dir)
        remove_event_files(run.path)
        if "tensorboard" not in self.log_to:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run.path))
        for row in run.read_metrics():
            self._add_row(row)
        summary = run.read_summary()
        if summary is not None:
            self.finish(run.read_config().to_dict(), summary)
        else:
            self.writer.flush()

    def epoch(self, row: dict[str, float | None]) -> None:
        """One metrics.csv row (as read back from the file), flushed."""
        if self.writer is not None:
            self._add_row(row)
            self.writer.flush()

    def _add_row(self, row: dict[str, float | None]) -> None:
        step = int(row["epoch"])
        for column, tag in SCALAR_TAGS.items():
            if row.get(column) is not None:
                self.writer.add_scalar(tag, row[column], step)

    def finish(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        """The test result, the hyperparameters and the confusion matrix; then close."""
        if self.writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        step = int(summary["epochs"])
        metrics = {"hparam/test_acc": summary["test_acc"], "hparam/test_loss": summary["test_loss"]}
        file_writer = self.writer._get_file_writer()
        for proto in hparams(flat_hparams(config), metrics):
            file_writer.add_summary(proto)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)
        if "confusion_matrix" in summary:
            image = confusion_image(summary["confusion_matrix"])  # (H, W, 3) uint8
            self.writer.add_image("confusion_matrix/test", image, step, dataformats="HWC")
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def remove_event_files(folder: Path) -> None:
    for path in Path(folder).glob(EVENT_FILES):
        path.unlink(missing_ok=True)


def flat_hparams(config: dict[str, Any]) -> dict[str, Any]:
    """config.json's fields as TensorBoard hyperparameters: ``model.hidden`` and the like."""
    flat = {k: v for k, v in config.items() if k != "model"}
    flat.update({f"model.{k}": v for k, v in config.get("model", {}).items()})
    return flat


def confusion_image(matrix: Any) -> np.ndarray:
    """The run's confusion.png picture as an (H, W, 3) uint8 array; without matplotlib, the
    row-normalised counts as a plain grey heat map (10 px a cell)."""
    counts = np.asarray(matrix, dtype=np.float64)  # (C, C): row = true, column = predicted
    try:
        import tempfile

        from PIL import Image

        from .plots import confusion

        with tempfile.TemporaryDirectory() as tmp:
            path = confusion(counts.astype(np.int64), Path(tmp) / "confusion.png")
            return np.asarray(Image.open(path).convert("RGB"))
    except ImportError:
        fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        grey = np.kron(fractions, np.ones((10, 10))) * 255  # (10C, 10C)
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)


def write_tensorboard(run_dir: str | os.PathLike) -> Path:
    """Rebuild a run's TensorBoard event files from its metrics.csv and summary.json (any run,
    also one trained without ``--log tensorboard``); returns the run directory."""
    run = RunDir(run_dir)
    if not run.metrics_file.is_file():
        raise SeqMnistError(f"{run.path} has no metrics.csv: pass a run directory made by training")
    log = ExperimentLog(["tensorboard"])
    log.start(run.path)
    log.close()
    return run.path
