"""What training shows a person: the start line, a progress bar per epoch, one line per epoch,
and the command that resumes an interrupted run. Only the primary rank calls these."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .cells import gate_init_text
from .config import TrainConfig
from .metrics import softmax_floor_note
from .model import count_parameters
from .runtime import Runtime
from .state import TrainState


def resume_command(run_dir: Path, rt: Runtime) -> str:
    """The command that continues this run: with the same process count under torchrun."""
    if not rt.dist.enabled:
        return f"seqmnist train --resume {run_dir}"
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", rt.dist.world_size))
    if per_node == rt.dist.world_size:
        return (
            f"torchrun --standalone --nproc_per_node={per_node} "
            f"-m seqmnist train --resume {run_dir}"
        )
    return f"the same torchrun command as before, with `-m seqmnist train --resume {run_dir}`"


def start_line(state: TrainState, rt: Runtime, train_images: int) -> str:
    config, m = state.config, state.config.model
    return (
        f"training {m.cell.upper()} hidden={m.hidden} layers={m.layers} "
        f"{'bi' if m.bidirectional else 'uni'}directional readout={m.readout} "
        f"gate-init={gate_init_text(m.gate_init, m.forget_bias)}, {m.order} "
        f"({m.steps} steps of {m.features_per_step} pixels; "
        f"{count_parameters(state.model):,} parameters) "
        f"on {rt.device} x{rt.dist.world_size}, {_count(rt.threads, 'thread')}; "
        f"preset {config.preset}, "
        f"{config.epochs} epochs, batch {config.batch_size * rt.dist.world_size}, "
        f"{train_images:,} training images"
    )


def epoch_line(row: dict[str, Any], epochs: int) -> str:
    parts = [
        f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}",
        f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%}",
    ]
    for name in ("val", "test"):
        if f"{name}_acc" in row:
            parts.append(f"{name} loss {row[f'{name}_loss']:.4f} acc {row[f'{name}_acc']:.2%}")
    parts += [
        _lr_text(row),
        f"{row['epoch_seconds']:.1f}s",
        f"{row['samples_per_s']:,.0f} samples/s",
    ]
    return "  ".join(parts)


def result_lines(summary: dict[str, Any], config: TrainConfig) -> list[str]:
    """The run's last line (test accuracy of the best checkpoint, times, where it is saved), then
    the notes a reader needs to judge those figures."""
    lines = [
        f"test accuracy {summary['test_acc']:.2%} (loss {summary['test_loss']:.4f}) with the "
        f"best checkpoint (epoch {summary['best_epoch']}); training "
        f"{summary['train_seconds']:.1f}s, total {summary['total_seconds']:.1f}s; run saved in "
        f"{summary['run_dir']}"
    ]
    if config.val_size == 0 and config.eval_test_every_epoch:
        lines[0] += " " + TEST_SELECTION_NOTE
    if config.model.softmax_output:
        lines.append(softmax_floor_note())
    return lines


# The article's recipe (--preset seed) holds out no validation split and scores the test set
# every epoch: any choice made from those figures is made on the test set (its flaw 3).
TEST_SELECTION_NOTE = (
    "(no validation split: the 'best checkpoint' is the last epoch and every epoch was scored on "
    "the test set, so an epoch or setting chosen from these figures is chosen on the test set and "
    "its accuracy is optimistic)"
)


def _lr_text(row: dict[str, Any]) -> str:
    """The lr of an epoch: one value, or the range its steps used (lr 5.00e-04..5.00e-03)."""
    low, high = row.get("lr_min", row["lr"]), row.get("lr_max", row["lr"])
    return f"lr {low:.2e}" if f"{low:.2e}" == f"{high:.2e}" else f"lr {low:.2e}..{high:.2e}"


class ProgressBar:
    """A tqdm bar per epoch on the primary rank when stderr is a terminal (and not --quiet)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def start(self, epoch: int, epochs: int, total: int) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                desc=f"epoch {epoch}/{epochs}",
                unit="img",
                leave=False,
                dynamic_ncols=True,
            )

    def update(self, n: int, running_loss: float | None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if running_loss is not None:
                self.bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _count(n: int, noun: str) -> str:
    """'1 thread', '2 threads'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
