"""``seqmnist compare``: finished runs side by side, one row each, best test accuracy first.

Each row is read from a run directory. A path that is not a readable run becomes one error line
and the other runs are still shown: one stray folder in a shell glob must not hide the table.

The table says what differs and what is noise: fixed columns (``COLUMNS``, one entry each, so a new
column is one line), then one column per config field that differs between the runs shown, and a
95 % Wilson interval beside each test accuracy. Train times carry a mark when the runs were timed
under different conditions (device, threads, processes, day), with a footnote saying which.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cells import gate_init_text
from .config import TrainConfig
from .errors import SeqMnistError
from .metrics import INTERVAL_NOTE, wilson_interval
from .options import is_number
from .run import RunDir


def run_labels(paths: Sequence[str | os.PathLike]) -> list[str]:
    """For each path, the shortest tail of its absolute path that no other path ends with.

    ``a/runs/default`` and ``b/runs/default`` become ``a/runs/default`` and ``b/runs/default``;
    ``runs/x`` beside them stays ``x``. The same folder given twice gets `` (2)``, `` (3)``.
    """
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    labels = []
    for i, mine in enumerate(parts):
        others = [p for j, p in enumerate(parts) if j != i and p != mine]
        k = 1
        while k < len(mine) and any(p[-k:] == mine[-k:] for p in others):
            k += 1
        labels.append("/".join(mine[-k:]) if k < len(mine) else str(Path(*mine)))
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):  # the same run twice: number the repeats
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} ({seen[label]})"
    return labels


@dataclass
class RunRecord:
    """What one row is computed from: the run's label, config and summary (empty if unfinished)."""

    label: str
    run: RunDir
    config: TrainConfig
    summary: dict[str, Any]

    def finished(self) -> datetime.datetime | None:
        """When summary.json was written (local time), None for an unfinished run."""
        if not self.run.summary_file.is_file():
            return None
        return datetime.datetime.fromtimestamp(self.run.summary_file.stat().st_mtime)


@dataclass(frozen=True)
class Column:
    """One fixed column: its heading, its value for a run, and how a value is written."""

    name: str
    value: Callable[[RunRecord], Any]
    text: Callable[[Any], str] = str


def _percent(value: float) -> str:
    return f"{value:.2%}"


def _interval(value: tuple[float, float]) -> str:
    return f"{value[0]:.2%} .. {value[1]:.2%}"


def _test_interval(r: RunRecord) -> tuple[float, float] | None:
    """The 95 % Wilson interval of the test accuracy, on summary's test_samples (older summaries:
    the confusion matrix's total)."""
    acc, n = r.summary.get("test_acc"), r.summary.get("test_samples")
    if n is None and isinstance(r.summary.get("confusion_matrix"), list):
        n = sum(sum(row) for row in r.summary["confusion_matrix"])
    if acc is None or not is_number(n) or n <= 0:
        return None
    return wilson_interval(round(acc * n), int(n))


def _order(r: RunRecord) -> str:
    m = r.config.model
    return m.order if m.order != "permuted" else f"permuted (seed {m.permutation_seed})"


def _steps(r: RunRecord) -> str:
    return f"{r.config.model.steps} x {r.config.model.features_per_step}"


def _cell_text(r: RunRecord) -> str:
    """The cell, and its gate initialisation when it is not PyTorch's own."""
    m = r.config.model
    if m.gate_init == "pytorch":
        return m.cell
    return f"{m.cell} ({gate_init_text(m.gate_init, m.forget_bias)})"


def _chance_text(summary: dict[str, Any]) -> str | None:
    """'0', or '13 (left at 14)' / '30 (never left)'; None for runs from before it was kept."""
    stuck, left = summary.get("epochs_at_chance"), summary.get("left_chance_epoch")
    if not is_number(stuck):
        return None
    if not stuck:
        return "0"
    return f"{stuck} (left at {left})" if is_number(left) else f"{stuck} (never left)"


def _size(r: RunRecord) -> str:
    m = r.config.model
    return f"{m.layers} x {m.hidden} {'bi' if m.bidirectional else 'uni'}"


# The fixed columns, in order. Config fields they already show are left out of the "differs"
# columns (SHOWN_FIELDS).
COLUMNS: tuple[Column, ...] = (
    Column("run", lambda r: r.label),
    Column("preset", lambda r: r.config.preset),
    Column("order", _order),
    Column("steps x pixels", _steps),
    Column("cell", _cell_text),
    Column("size", _size),
    Column("params", lambda r: r.summary.get("parameters"), lambda v: f"{v:,}"),
    Column("epochs", lambda r: r.config.epochs),
    Column("test acc", lambda r: r.summary.get("test_acc"), _percent),
    Column("95 % interval", _test_interval, _interval),
    Column("train time", lambda r: r.summary.get("train_seconds"), lambda v: f"{v:.0f} s"),
    Column("epochs at chance", lambda r: _chance_text(r.summary)),
)
SHOWN_FIELDS = {
    "preset",
    "epochs",
    "model.order",
    "model.permutation_seed",
    "model.pixels_per_step",
    "model.cell",
    "model.gate_init",
    "model.forget_bias",
    "model.hidden",
    "model.layers",
    "model.bidirectional",
}
# Where and how a run ran, not what it learned: never a "differs" column (the time footnote
# covers the ones that change speed).
RUNTIME_FIELDS = {"device", "threads", "amp", "cuda_graphs"}
# What makes train times of two runs not comparable: summary key -> how the footnote names it.
TIMING_CONDITIONS = {
    "device": "device",
    "device_name": "processor",
    "threads": "threads",
    "world_size": "processes",
    "host": "machine",
}
# Runs that finished further apart than the longest of them took plus this shared slack were
# timed at different moments (another load on the machine, another day).
APART_SECONDS = 3600.0


def compare_runs(
    run_dirs: Sequence[str | os.PathLike],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of the runs that could be read, sorted by test accuracy (best first, unfinished
    runs last, ties in the order given), and one error message per path that could not.

    A row maps each fixed column and each differing config field (``"--flag"``) to its value; the
    key ``"_record"`` holds the RunRecord it came from (for the footnotes)."""
    records, errors = [], []
    for label, path in zip(run_labels(run_dirs), run_dirs):
        try:
            records.append(_record(RunDir(path), label))
        except SeqMnistError as exc:
            errors.append(str(exc))
    differing = differing_fields([r.config for r in records])
    rows = [_row(r, differing) for r in records]
    rows.sort(key=lambda row: (row["test acc"] is None, -(row["test acc"] or 0.0)))
    return rows, errors


def _record(run: RunDir, label: str) -> RunRecord:
    if not run.path.is_dir():
        raise SeqMnistError(
            f"no such run directory: {run.path} (pass folders made by `seqmnist train`)"
        )
    config = run.read_config()
    summary = run.read_summary() or {}
    for key in ("parameters", "test_acc", "test_samples", "train_seconds"):
        value = summary.get(key)
        if value is not None and not is_number(value):
            raise SeqMnistError(
                f"{run.summary_file}: {key} is {value!r}, not a number; "
                "delete the file or train the run again"
            )
    return RunRecord(label, run, config, summary)


def _flat_config(config: TrainConfig) -> dict[str, Any]:
    """Config fields as ``{"lr": ..., "model.readout": ...}``."""
    flat = {k: v for k, v in config.to_dict().items() if k != "model"}
    flat.update({f"model.{k}": v for k, v in config.to_dict()["model"].items()})
    return flat


def differing_fields(configs: Sequence[TrainConfig]) -> list[str]:
    """Config fields (``"lr"``, ``"model.readout"``) whose values differ between ``configs``,
    leaving out those the fixed columns show and those that only say where a run ran."""
    flats = [_flat_config(c) for c in configs]
    if len(flats) < 2:
        return []
    skip = SHOWN_FIELDS | RUNTIME_FIELDS
    return [
        key
        for key in flats[0]
        if key not in skip and any(f.get(key) != flats[0][key] for f in flats[1:])
    ]


def _flag(field: str) -> str:
    """``model.softmax_output`` -> ``--softmax-output``: the flag that sets the field."""
    return "--" + field.removeprefix("model.").replace("_", "-")


def _row(record: RunRecord, differing: list[str]) -> dict[str, Any]:
    row = {column.name: column.value(record) for column in COLUMNS}
    flat = _flat_config(record.config)
    row.update({_flag(field): flat[field] for field in differing})
    row["_record"] = record
    return row


# The columns ``--diff`` keeps beside the differing fields.
DIFF_COLUMNS = ("run", "preset", "test acc", "95 % interval")
# Fixed columns that show config fields (SHOWN_FIELDS): ``--diff`` keeps one when its values differ,
# since those fields get no "differs" column of their own.
CONFIG_COLUMNS = ("order", "steps x pixels", "cell", "size", "epochs")


def _kept_columns(rows: list[dict[str, Any]], diff_only: bool) -> list[str]:
    """Every fixed column; with ``diff_only`` DIFF_COLUMNS and the CONFIG_COLUMNS that differ."""
    return [
        c.name
        for c in COLUMNS
        if not diff_only
        or c.name in DIFF_COLUMNS
        or (c.name in CONFIG_COLUMNS and len({str(row[c.name]) for row in rows}) > 1)
    ]


def format_comparison(
    rows: list[dict[str, Any]], markdown: bool = False, diff_only: bool = False
) -> str:
    """An aligned text table, or a Markdown table for a README, with its footnotes;
    ``diff_only``: only the run, its accuracy and the config fields that differ (shown in fixed
    columns or not)."""
    fixed = _kept_columns(rows, diff_only)
    names = fixed + [k for k in (rows[0] if rows else {}) if k.startswith("--")]
    formats = {c.name: c.text for c in COLUMNS}
    times_note = timing_footnote([row["_record"] for row in rows])
    cells = [[_cell(n, row.get(n), formats.get(n, _plain)) for n in names] for row in rows]
    if times_note and "train time" in names:  # mark every time as not comparable
        index = names.index("train time")
        for r in cells:
            r[index] = r[index] + " *" if r[index] != "-" else r[index]
    if markdown:
        lines = ["| " + " | ".join(names) + " |", "|" + "|".join("---" for _ in names) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
    else:
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(names)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(names, widths)).rstrip()]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    notes = [INTERVAL_NOTE] if any(row.get("95 % interval") for row in rows) else []
    if times_note and "train time" in names:
        notes.append(times_note)
    return "\n".join(lines + ([""] if notes else []) + notes)


def _plain(value: Any) -> str:
    return str(value)


def _cell(column: str, value: Any, text: Callable[[Any], str]) -> str:
    if value is None:
        return "unfinished" if column == "test acc" else "-"
    return text(value)


def timing_footnote(records: Sequence[RunRecord]) -> str | None:
    """The note "* train times are not comparable ..." when the finished runs were timed on
    different machines, devices, thread or process counts, or moments; None when they agree."""
    finished = [r for r in records if r.summary.get("train_seconds") is not None]
    if len(finished) < 2:
        return None
    differ = []
    for key, name in TIMING_CONDITIONS.items():
        # A summary written before a key existed (host) says nothing either way about it.
        values = sorted({str(r.summary[key]) for r in finished if r.summary.get(key) is not None})
        if len(values) > 1:
            differ.append(f"{name} {' / '.join(values)}")
    moments = _far_apart(finished)
    if moments:
        differ.append(moments)
    if not differ:
        return None
    return (
        "* train times are not comparable across these runs (" + "; ".join(differ) + "): "
        "compare them only between runs made together on one idle machine"
    )


def _far_apart(finished: Sequence[RunRecord]) -> str | None:
    """That note's "finished <first> .. <last>" when the runs were not made together."""
    moments = sorted(m for m in (r.finished() for r in finished) if m is not None)
    if len(moments) < 2:
        return None
    longest = max(float(r.summary.get("total_seconds") or 0.0) for r in finished)
    if (moments[-1] - moments[0]).total_seconds() <= longest + APART_SECONDS:
        return None
    return f"finished {moments[0]:%Y-%m-%d %H:%M} .. {moments[-1]:%Y-%m-%d %H:%M}"
