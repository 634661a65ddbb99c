"""Is a run stuck at chance? One warning line per epoch while it is, and the record of it.

A model that has learnt nothing predicts (about) one class, so its accuracy is at most the share
of the most common class in the split it is scored on (``majority_share``: 11.35 % on MNIST's
test set, about 11 % on a validation split). A run counts as at chance while its accuracy is below
that share plus ``MARGIN`` (one-sided: a model stuck on a minority class is stuck too). Validation
accuracy is the measure; without a validation split, training accuracy stands in.

The warning waits for ``MIN_STEPS`` optimisation steps. Every recipe that learns is far above
chance by then: the default recipe scores ~97 % after its first epoch (~290 steps), the article's
recipe 85 % test after its first (1,875 steps), and the rebuilt ``smnist`` preset leaves chance
within its first epoch of 430 steps (benchmarks/bench_long.py).
The old ``smnist`` preset sat at chance for 13 epochs (~5,600 steps) on a GPU: 500 steps flags
such a run at the end of its second epoch of 784-step sequences, minutes in on a GPU rather than
after hours, while a run that is merely slow to start is given a fair chance.

Nothing here is saved in checkpoints: the record is rebuilt from metrics.csv, which a resume
truncates to the checkpoint's epoch, so old runs resume and report it like new ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .cells import CELL_SPECS

if TYPE_CHECKING:
    from .config import TrainConfig

MARGIN = 0.02  # 2 points above the majority class's share
MIN_STEPS = 500


def majority_share(labels: torch.Tensor) -> float:
    """Share of the most common class in ``labels`` (N,) int: the accuracy of a constant guess."""
    return float(torch.bincount(labels.long().flatten()).max()) / max(labels.numel(), 1)


def measured_accuracy(row: dict[str, Any]) -> tuple[str, float | None]:
    """Which accuracy of a metrics row stands for the run: validation, else training."""
    key = "val_acc" if row.get("val_acc") is not None else "train_acc"
    return key, row.get(key)


def at_chance(accuracy: float, chance: float) -> bool:
    return accuracy < chance + MARGIN


def likely_causes(config: TrainConfig | None) -> str:
    """The causes worth trying for this run's config: a fix it already has is not suggested
    (chrono init for a run that has it or a cell without gates, clipping at 1 or tighter)."""
    causes = []
    gated = config is None or CELL_SPECS[config.model.cell].memory_gate is not None
    if gated and (config is None or config.model.gate_init != "chrono"):
        causes.append(
            "gates that forget within a few steps on long sequences (try --gate-init chrono)"
        )
    causes.append("a learning rate too high or too low (--lr)")
    if config is None or not 0 < config.grad_clip <= 1:
        causes.append("exploding gradients (--grad-clip 1)")
    return ", ".join(causes)


def stuck_warning(
    row: dict[str, Any], chance: float, steps_done: int, config: TrainConfig | None = None
) -> str | None:
    """One warning line for an epoch's metrics row that is still at chance after ``MIN_STEPS``
    optimisation steps; None otherwise. ``config`` narrows the suggested causes to those the run
    has not ruled out (all of them without it)."""
    key, accuracy = measured_accuracy(row)
    if accuracy is None or steps_done < MIN_STEPS or not at_chance(accuracy, chance):
        return None
    split = "validation" if key == "val_acc" else "training"
    return (
        f"warning: {split} accuracy {accuracy:.2%} is still at chance (the most common class is "
        f"{chance:.2%}) after {steps_done:,} steps: the model is not learning. Likely causes: "
        f"{likely_causes(config)}"
    )


def chance_record(rows: list[dict[str, Any]], chance: float) -> dict[str, Any]:
    """For summary.json: epochs spent at chance, and the first epoch above it (None: never)."""
    stuck, left = 0, None
    for row in rows:
        _, accuracy = measured_accuracy(row)
        if accuracy is None:
            continue
        if at_chance(accuracy, chance):
            stuck += 1
        elif left is None:
            left = int(row["epoch"])
    return {"chance_level": chance, "epochs_at_chance": stuck, "left_chance_epoch": left}
