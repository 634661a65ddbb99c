"""Confusion matrix, per-class report and the metrics.csv log."""

from __future__ import annotations

import pytest
import torch

from seqmnist.metrics import (
    confusion_matrix,
    format_confusion,
    format_report,
    per_class_report,
)


def test_confusion_matrix_rows_are_true_labels():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    preds = torch.tensor([0, 1, 1, 2, 2, 0])
    m = confusion_matrix(preds, labels, num_classes=3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m.dtype == torch.int64


def test_per_class_report():
    m = torch.tensor([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    rows = per_class_report(m)
    assert [r["support"] for r in rows] == [2, 1, 3]
    assert rows[0]["precision"] == pytest.approx(0.5) and rows[0]["recall"] == pytest.approx(0.5)
    assert rows[1]["precision"] == pytest.approx(0.5) and rows[1]["recall"] == pytest.approx(1.0)
    assert rows[1]["f1"] == pytest.approx(2 / 3)
    assert rows[2]["precision"] == pytest.approx(1.0) and rows[2]["recall"] == pytest.approx(2 / 3)
    # a class never predicted and never present: zeros, not a division by zero
    empty = per_class_report(torch.zeros(2, 2, dtype=torch.int64))
    assert empty[0] == {"class": 0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    text = format_report(rows)
    assert text.splitlines()[0].split() == ["class", "precision", "recall", "f1", "support"]
    assert len(text.splitlines()) == 4
    assert format_confusion(m).splitlines()[3].split() == ["2", "1", "0", "2"]
