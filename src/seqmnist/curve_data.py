"""What the training curves are drawn from: a run folder's metrics.csv rows, its summary and its
label, read without matplotlib.

``load_runs`` reads several run folders at once, labels each by the shortest tail of its path that
tells the runs apart (``compare.run_labels``) and reports the folders it cannot read instead of
failing on the first; ``lr_steps`` turns the per-epoch learning-rate columns into a step plot.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compare import run_labels
from .config import TrainConfig
from .errors import SeqMnistError
from .run import RunDir, read_json_object


@dataclass
class RunCurves:
    """What the curves of one run are drawn from."""

    label: str  # "<shortest distinguishing path> (<preset>)"
    path: Path  # the run directory
    rows: list[dict[str, float | None]]  # metrics.csv, one row per finished epoch
    summary: dict[str, Any] | None  # summary.json, None until the run has finished
    softmax_output: bool  # the article's softmax-into-loss: its loss has a floor


def load_run_metrics(
    run_dir: str | os.PathLike, label: str | None = None
) -> tuple[str, list[dict[str, float | None]], dict[str, Any] | None]:
    """(label "name (preset)", metrics.csv rows, summary.json or None) of a run directory."""
    run = _load_run(run_dir, label)
    return run.label, run.rows, run.summary


def _load_run(run_dir: str | os.PathLike, label: str | None = None) -> RunCurves:
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise SeqMnistError(
            f"no such run directory: {run.path} (pass a folder made by `seqmnist train`)"
        )
    if not run.metrics_file.is_file():
        raise SeqMnistError(
            f"{run.metrics_file} not found: pass a run directory made by `seqmnist train` "
            "(it writes metrics.csv after every epoch)"
        )
    rows = run.read_metrics()
    if not rows:
        raise SeqMnistError(
            f"{run.metrics_file} holds no epochs yet: let training finish at least one epoch"
        )
    config = _read_config_or_preset(run)
    preset = config.preset if isinstance(config, TrainConfig) else config
    softmax = isinstance(config, TrainConfig) and config.model.softmax_output
    name = label if label is not None else run.path.name
    return RunCurves(f"{name} ({preset})", run.path, rows, run.read_summary(), softmax)


def _read_config_or_preset(run: RunDir) -> TrainConfig | str:
    """The run's config; only its preset name (or "?") when config.json is partial or missing:
    curves need only metrics.csv."""
    if not run.config_file.is_file():
        return "?"
    try:
        return run.read_config()
    except SeqMnistError:
        data = read_json_object(run.config_file, "config")
        return str(data.get("preset", "?"))


def load_runs(run_dirs: Sequence[str | os.PathLike]) -> tuple[list[RunCurves], list[str]]:
    """The runs that can be drawn, labelled by the shortest path tails that tell them apart, and
    one error message per folder that cannot (missing, no finished epoch, damaged)."""
    runs, errors = [], []
    for label, run_dir in zip(run_labels(run_dirs), run_dirs):
        try:
            runs.append(_load_run(run_dir, label))
        except SeqMnistError as exc:
            errors.append(str(exc))
    return runs, errors


def series(
    rows: list[dict[str, float | None]], column: str, scale: float = 1.0
) -> tuple[list[float], list[float]]:
    """(epochs, values) for the epochs where ``column`` was recorded."""
    points = [(r["epoch"], r[column] * scale) for r in rows if r.get(column) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def lr_steps(rows: list[dict[str, float | None]]) -> tuple[list[float], list[float], list[float]]:
    """(edges, low, high) of the learning rate the steps of each epoch used, for a step plot:
    epoch e spans [e - 1, e]; the last value is repeated to close the last epoch.

    metrics.csv written before the lr_min / lr_max columns has only the lr at each epoch's start:
    that value is then both ends of the range."""
    rows = [r for r in rows if r.get("lr") is not None]
    if not rows:
        return [], [], []
    edges = [rows[0]["epoch"] - 1] + [r["epoch"] for r in rows]
    low = [r["lr_min"] if r.get("lr_min") is not None else r["lr"] for r in rows]
    high = [r["lr_max"] if r.get("lr_max") is not None else r["lr"] for r in rows]
    return edges, low + low[-1:], high + high[-1:]
