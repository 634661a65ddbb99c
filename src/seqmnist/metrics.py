"""Classification metrics: confusion matrix, per-class precision / recall / F1, text tables."""

from __future__ import annotations

import torch


def confusion_matrix(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int = 10
) -> torch.Tensor:
    """(C, C) int64 counts; row = true class, column = predicted class."""
    index = labels.long().cpu() * num_classes + predictions.long().cpu()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


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
            {
                "class": c,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": int(actual[c]),
            }
        )
    return rows


def format_report(rows: list[dict[str, float]]) -> str:
    lines = [f"{'class':>5} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
    for r in rows:
        lines.append(
            f"{r['class']:>5} {r['precision']:>9.4f} {r['recall']:>7.4f} "
            f"{r['f1']:>7.4f} {r['support']:>8}"
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
