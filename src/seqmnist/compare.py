"""``seqmnist compare``: finished runs side by side, one row each, best test accuracy first.

Each row is read from a run directory. A path that is not a readable run becomes one error line
and the other runs are still shown: one stray folder in a shell glob must not hide the table.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .cells import gate_init_text
from .errors import SeqMnistError
from .options import is_number
from .run import RunDir

COLUMNS = (
    "run",
    "order",
    "steps x pixels",
    "cell",
    "size",
    "params",
    "epochs",
    "test acc",
    "train time",
    "epochs at chance",
)


def compare_runs(
    run_dirs: Sequence[str | os.PathLike],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of the runs that could be read, sorted by test accuracy (best first, unfinished
    runs last, ties in the order given), and one error message per path that could not."""
    rows, errors = [], []
    for path in run_dirs:
        try:
            rows.append(_row(RunDir(path)))
        except SeqMnistError as exc:
            errors.append(str(exc))
    rows.sort(key=lambda row: (row["test acc"] is None, -(row["test acc"] or 0.0)))
    return rows, errors


def _row(run: RunDir) -> dict[str, Any]:
    """What a run read, how big it was, how well and how fast it did."""
    if not run.path.is_dir():
        raise SeqMnistError(
            f"no such run directory: {run.path} (pass folders made by `seqmnist train`)"
        )
    config = run.read_config()
    summary = run.read_summary() or {}
    for key in ("parameters", "test_acc", "train_seconds"):
        value = summary.get(key)
        if value is not None and not is_number(value):
            raise SeqMnistError(
                f"{run.summary_file}: {key} is {value!r}, not a number; "
                "delete the file or train the run again"
            )
    m = config.model
    directions = "bi" if m.bidirectional else "uni"
    return {
        "run": run.path.name,
        "order": m.order if m.order != "permuted" else f"permuted (seed {m.permutation_seed})",
        "steps x pixels": f"{m.steps} x {m.features_per_step}",
        "cell": m.cell
        if m.gate_init == "pytorch"
        else f"{m.cell} ({gate_init_text(m.gate_init, m.forget_bias)})",
        "size": f"{m.layers} x {m.hidden} {directions}",
        "params": summary.get("parameters"),
        "epochs": config.epochs,
        "test acc": summary.get("test_acc"),  # None until the run has finished
        "train time": summary.get("train_seconds"),
        "epochs at chance": _chance_text(summary),
    }


def _chance_text(summary: dict[str, Any]) -> str | None:
    """'0', or '13 (left at 14)' / '30 (never left)'; None for runs from before it was kept."""
    stuck, left = summary.get("epochs_at_chance"), summary.get("left_chance_epoch")
    if not is_number(stuck):
        return None
    if not stuck:
        return "0"
    return f"{stuck} (left at {left})" if is_number(left) else f"{stuck} (never left)"


def format_comparison(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """An aligned text table, or a Markdown table for a README."""
    cells = [[_cell(column, row[column]) for column in COLUMNS] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
    return "\n".join(lines + ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells])


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "unfinished" if column == "test acc" else "-"
    if column == "test acc":
        return f"{value:.2%}"
    if column == "train time":
        return f"{value:.0f} s"
    if column == "params":
        return f"{value:,}"
    return str(value)
