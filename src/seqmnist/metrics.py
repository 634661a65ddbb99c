"""Classification metrics and the per-epoch metrics log (``metrics.csv``)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import torch

# Column order of metrics.csv; plots and tests read these names.
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "epoch_seconds",
    "train_seconds",
    "samples_per_s",
)


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    index = labels.long().cpu() * num_classes + predictions.long().cpu()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_report(matrix: torch.Tensor) -> list[dict[str, float]]:
    """Precision, recall, F1 and support for each class of a confusion matrix."""
    m = matrix.double()
    true_pos = m.diag()
    predicted = m.sum(dim=0)
    actual = m.sum(dim=1)
    rows = []
    for c in range(m.shape[0]):
        precision = float(true_pos[c] / predicted[c]) if predicted[c] > 0 else 0.0
        recall = float(true_pos[c] / actual[c]) if actual[c] > 0 else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        rows.append(
            {"class": c, "precision": precision, "recall": recall, "f1": f1, "support": int(actual[c])}
        )
    return rows


def format_report(rows: list[dict[str, float]]) -> str:
    lines = [f"{'class':>5} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for r in rows:
        lines.append(
            f"{r['class']:>5} {r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>7.4f} {r['support']:>8}"
        )
    return "\n".join(lines)


def format_confusion(matrix: torch.Tensor) -> str:
    """A text table: rows are true labels, columns predicted labels."""
    n = matrix.shape[0]
    width = max(5, len(str(int(matrix.max()))) + 1)
    header = "true\\pred" + "".join(f"{c:>{width}}" for c in range(n))
    lines = [header]
    for r in range(n):
        lines.append(f"{r:>9}" + "".join(f"{int(v):>{width}}" for v in matrix[r]))
    return "\n".join(lines)


class MetricsLog:
    """Append-only ``metrics.csv``: one row per finished epoch, written and flushed at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def truncate_after(self, epoch: int) -> None:
        """Keep rows up to ``epoch`` (on resume, drop epochs the checkpoint does not contain)."""
        rows = [r for r in self.read() if int(r["epoch"]) <= epoch]
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            for r in rows:
                writer.writerow({k: _fmt(v) for k, v in r.items()})
        tmp.replace(self.path)

    def append(self, row: dict[str, Any]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(row.get(k)) for k in METRIC_COLUMNS})

    def read(self) -> list[dict[str, float | None]]:
        return read_metrics(self.path)


def read_metrics(path: Path) -> list[dict[str, float | None]]:
    """Rows of a metrics.csv as floats (None where a column was not recorded that epoch)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(f)]


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return str(value)
