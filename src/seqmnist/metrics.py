"""Classification metrics: confusion matrix, per-class precision / recall / F1, text tables; the
uncertainty of an accuracy (Wilson interval) and the loss floor of the article's softmax output."""

from __future__ import annotations

import math

import torch

# z of a two-sided 95 % normal interval (scipy.stats.norm.ppf(0.975)).
Z_95 = 1.959963984540054
INTERVAL_NOTE = (
    "95 % interval: Wilson score interval of the test accuracy on the number of test images "
    "(sampling noise of the test set only; seeds vary more)"
)


def wilson_interval(correct: float, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval (low, high) of a proportion ``correct / total``.

    Unlike p +- z*sqrt(p(1-p)/n) it stays inside [0, 1] and is not zero-width at p = 1, which
    matters for accuracies near 99 %. On 10,000 test images at 98 % it is about +-0.27 points.
    """
    if total <= 0:
        raise ValueError("an interval needs at least one sample")
    p = correct / total
    z2n = z * z / total
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / total + z2n / (4 * total))
    # At p = 0 or 1 one bound is exactly 0 or 1 (rounding would leave it a hair inside).
    low = 0.0 if correct <= 0 else max(0.0, centre - half)
    high = 1.0 if correct >= total else min(1.0, centre + half)
    return low, high


def softmax_loss_floor(num_classes: int = 10) -> float:
    """The lowest cross-entropy a model can reach when it outputs probabilities that the loss
    softmaxes again (the article's flaw 1): the best output is one-hot, p = e_y, and
    softmax(e_y)_y = e / (e + C - 1), so the floor is -log(e / (e + C - 1)) = log(e + C - 1) - 1
    (1.4612 for 10 classes). The loss falls monotonically as p_y grows, so no output does better."""
    return math.log(math.e + num_classes - 1) - 1.0


def softmax_floor_note(num_classes: int = 10) -> str:
    """One line for runs whose model has softmax_output: why their loss stays high."""
    return (
        f"note: softmax_output: the loss applies softmax to probabilities, so it cannot go below "
        f"{softmax_loss_floor(num_classes):.4f} = -log(e/(e+{num_classes - 1})) (the article's "
        "flaw 1); compare accuracies, not losses, with models that output logits"
    )


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
