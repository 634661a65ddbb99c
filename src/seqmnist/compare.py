"""``seqmnist compare``: finished runs side by side, one row each.

Each row is read from a run directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .errors import SeqMnistError
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
)


def compare_runs(run_dirs: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    """One row per run: what it read, how big it was, how well and how fast it did."""
    return [_row(RunDir(path)) for path in run_dirs]


def _row(run: RunDir) -> dict[str, Any]:
    if not run.path.is_dir():
        raise SeqMnistError(
            f"no such run directory: {run.path} (pass folders made by `seqmnist train`)"
        )
    config = run.read_config()
    summary = run.read_summary() or {}
    m = config.model
    directions = "bi" if m.bidirectional else "uni"
    return {
        "run": run.path.name,
        "order": m.order if m.order != "permuted" else f"permuted (seed {m.permutation_seed})",
        "steps x pixels": f"{m.steps} x {m.features_per_step}",
        "cell": m.cell,
        "size": f"{m.layers} x {m.hidden} {directions}",
        "params": summary.get("parameters"),
        "epochs": config.epochs,
        "test acc": summary.get("test_acc"),  # None until the run has finished
        "train time": summary.get("train_seconds"),
    }


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
