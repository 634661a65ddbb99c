"""Run plots: training curves, the confusion matrix and the gallery of a run's mistakes.

matplotlib is an optional extra (``pip install 'seqmnist[plots]'``), so it is imported inside the
functions that draw, never at module import. Every function writes one PNG and returns its path;
``curves_figure`` returns the matplotlib Figure itself so tests can count its lines.

Colours mean the same thing in every picture: ``SPLIT_COLOURS`` maps a data split to one colour.
In an overlay of several runs the run is told apart by line style and marker (``RUN_STYLES``).

Pictures of digit images (sample grids, the sequence view, the error gallery) and the helpers
every picture shares (``_pyplot``, ``prepare_output``, ``_save``) live in ``seqmnist.pictures``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import SeqMnistError
from .pictures import _as_numpy, _pyplot, _save, error_gallery, prepare_output
from .run import SUMMARY_NAME, RunDir

if TYPE_CHECKING:  # only for type hints; matplotlib is imported lazily
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# One colour per data split, used by every plot (matplotlib's tab10 blue, orange, green).
SPLIT_COLOURS = {"train": "#1f77b4", "validation": "#ff7f0e", "test": "#2ca02c"}
# metrics.csv column prefix for each split.
SPLIT_COLUMNS = {"train": "train", "validation": "val", "test": "test"}
# Runs in an overlay: (line style, marker), cycled.
RUN_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v")]
LR_COLOUR = "#444444"

RUN_PLOT_NAMES = ("curves.png", "confusion.png", "errors.png")


# --- training curves ----------------------------------------------------------------------


def load_run_metrics(
    run_dir: str | os.PathLike,
) -> tuple[str, list[dict[str, float | None]], dict[str, Any] | None]:
    """(label "name (preset)", metrics.csv rows, summary.json or None) of a run directory."""
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
    preset = run.read_config().preset if run.config_file.is_file() else "?"
    return f"{run.path.name} ({preset})", rows, run.read_summary()


def _series(
    rows: list[dict[str, float | None]], column: str, scale: float = 1.0
) -> tuple[list[float], list[float]]:
    """(epochs, values) for the epochs where ``column`` was recorded."""
    points = [(r["epoch"], r[column] * scale) for r in rows if r.get(column) is not None]
    return [p[0] for p in points], [p[1] for p in points]


# Label of the star a run that tests only once (at its best epoch) gets; also found by the legend.
ONCE_LABEL = "once, best checkpoint"
# The test-once star: same colour as the test lines, a black rim so it shows over them.
STAR_STYLE = {
    "marker": "*",
    "linestyle": "none",
    "markeredgecolor": "black",
    "markeredgewidth": 0.6,
}

CURVES_FOOTNOTE = (
    "train: running mean over the epoch while the weights change; "
    "validation and test: measured after the epoch"
)

Runs = list[tuple[str, list[dict[str, float | None]], dict[str, Any] | None]]


def _run_style(i: int) -> tuple[Any, str]:
    """(line style, marker) of the ``i``-th run in an overlay."""
    return RUN_STYLES[i % len(RUN_STYLES)]


def _plot_split_lines(
    ax_loss: Axes, ax_acc: Axes, label: str, rows: list[dict[str, float | None]], line: dict
) -> set[str]:
    """One loss and one accuracy line per split the run recorded; returns the splits drawn."""
    drawn = set()
    for split, prefix in SPLIT_COLUMNS.items():
        epochs, loss = _series(rows, f"{prefix}_loss")
        if not epochs:
            continue  # e.g. no validation split, or test not recorded per epoch
        drawn.add(split)
        colour = SPLIT_COLOURS[split]
        ax_loss.plot(epochs, loss, color=colour, label=f"{label}: {split}", **line)
        epochs, acc = _series(rows, f"{prefix}_acc", scale=100.0)
        ax_acc.plot(epochs, acc, color=colour, label=f"{label}: {split}", **line)
    return drawn


def _plot_test_once_star(
    ax_loss: Axes,
    ax_acc: Axes,
    label: str,
    rows: list[dict[str, float | None]],
    summary: dict[str, Any] | None,
) -> None:
    """A run that tests only once, at the end, gets one star at its best epoch."""
    if not summary or _series(rows, "test_acc")[0] or summary.get("test_acc") is None:
        return
    star = {"color": SPLIT_COLOURS["test"], "markersize": 13, **STAR_STYLE}
    best = summary.get("best_epoch") or rows[-1]["epoch"]
    star_label = f"{label}: test ({ONCE_LABEL})"
    ax_loss.plot([best], [summary["test_loss"]], label=star_label, **star)
    ax_acc.plot([best], [summary["test_acc"] * 100], label=star_label, **star)


def _style_axes(ax_loss: Axes, ax_acc: Axes, ax_lr: Axes) -> None:
    """Titles, axis labels, log scales with plain-number ticks, integer epochs and grids."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator

    ax_loss.set_title("loss (mean cross-entropy per image)")
    ax_loss.set_ylabel("loss (log scale)")
    ax_loss.set_yscale("log")
    ax_acc.set_title("accuracy")
    ax_acc.set_ylabel("accuracy (%)")
    ax_lr.set_title("learning rate at the start of each epoch")
    ax_lr.set_ylabel("learning rate (log scale)")
    ax_lr.set_yscale("log")
    for ax in (ax_loss, ax_lr):  # plain numbers (0.06, 0.002) instead of 6x10^-2 on log axes
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # label 0.2, 0.5 between decades
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
        ax.tick_params(axis="y", which="minor", labelsize=9)
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)


def _add_legends(ax_acc: Axes, ax_lr: Axes, runs: Runs, splits_seen: set[str]) -> None:
    """Two small legends instead of one per line: colour = split, line style/marker = run."""
    from matplotlib.lines import Line2D

    split_handles = [
        Line2D([], [], color=SPLIT_COLOURS[s], linewidth=2.5, label=s)
        for s in SPLIT_COLOURS
        if s in splits_seen
    ]
    if any(ONCE_LABEL in line.get_label() for line in ax_acc.get_lines()):
        split_handles.append(
            Line2D(
                [],
                [],
                color=SPLIT_COLOURS["test"],
                markersize=12,
                label="test, once at the end",
                **STAR_STYLE,
            )
        )
    run_handles = []
    for i, (label, _, _) in enumerate(runs):
        style, marker = _run_style(i)
        run_handles.append(
            Line2D([], [], color=LR_COLOUR, linestyle=style, marker=marker, label=label)
        )
    ax_acc.legend(handles=split_handles, title="split (colour)", loc="lower right", fontsize=9)
    ax_lr.legend(handles=run_handles, title="run (line style)", loc="best", fontsize=9)


def _add_titles(fig: Figure, runs: Runs) -> None:
    """The figure title naming the runs, and a footnote on how train and test are measured."""
    title = "Training curves" if len(runs) == 1 else f"Training curves of {len(runs)} runs"
    fig.suptitle(f"{title}: " + ", ".join(label for label, _, _ in runs), fontsize=12)
    fig.text(0.5, 0.01, CURVES_FOOTNOTE, ha="center", va="bottom", fontsize=8, color="#555555")


def curves_figure(run_dirs: Sequence[str | os.PathLike]) -> Figure:
    """The curves figure: loss, accuracy and learning rate per epoch, one set of lines per run.

    Every data line carries the label ``"<run label>: <split>"`` (``"<run label>: lr"`` in the
    learning-rate panel) so that tests and readers can tell them apart.
    """
    if not run_dirs:
        raise SeqMnistError("pass at least one run directory")
    runs = [load_run_metrics(d) for d in run_dirs]  # errors before any drawing
    plt = _pyplot()

    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.8))
    splits_seen: set[str] = set()
    for i, (label, rows, summary) in enumerate(runs):
        style, marker = _run_style(i)
        line = {"linestyle": style, "marker": marker, "markersize": 4, "linewidth": 1.6}
        splits_seen |= _plot_split_lines(ax_loss, ax_acc, label, rows, line)
        _plot_test_once_star(ax_loss, ax_acc, label, rows, summary)
        epochs, lr = _series(rows, "lr")
        ax_lr.plot(epochs, lr, color=LR_COLOUR, label=f"{label}: lr", **line)

    _style_axes(ax_loss, ax_acc, ax_lr)
    _add_legends(ax_acc, ax_lr, runs, splits_seen)
    _add_titles(fig, runs)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def curves(run_dirs: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> Path:
    """Loss, accuracy and learning-rate curves of one run, or several overlaid, as a PNG."""
    prepare_output(out_path)
    return _save(curves_figure([Path(d) for d in run_dirs]), out_path)


# --- confusion matrix and errors ---------------------------------------------------------


def confusion(
    matrix: Any, out_path: str | os.PathLike, title: str = "Confusion matrix (test set)"
) -> Path:
    """A (10, 10) count matrix: counts written in the cells, colour = fraction of the true digit."""
    plt = _pyplot()
    counts = _as_numpy(matrix).astype(np.int64)  # (C, C): row = true, column = predicted
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise SeqMnistError(f"a confusion matrix must be square; got shape {counts.shape}")
    n = counts.shape[0]
    row_sums = counts.sum(axis=1, keepdims=True)
    fractions = counts / np.maximum(row_sums, 1)  # row-normalised: each row sums to 1
    accuracy = np.trace(counts) / max(counts.sum(), 1)

    fig, ax = plt.subplots(figsize=(7.6, 6.4))
    shown = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    for r in range(n):
        for c in range(n):
            if counts[r, c] == 0:
                continue
            ax.text(
                c,
                r,
                str(counts[r, c]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if fractions[r, c] > 0.5 else ("#b00000" if r != c else "black"),
            )
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(
        f"{title}: accuracy {accuracy:.2%} of {int(counts.sum()):,} images\n"
        "(cells: counts, red = errors; colour: fraction of the true digit)",
        fontsize=11,
    )
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("fraction of the row (true digit)")
    fig.tight_layout()
    return _save(fig, out_path)


def misclassified(
    run_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> dict[str, Any]:
    """The best checkpoint's mistakes on the test set: images, true/pred labels, confidences."""
    import torch

    from .data import load_mnist
    from .engine import evaluate
    from .trained import load_trained

    trained = load_trained(run_dir)  # a run directory resolves to its best checkpoint
    test = load_mnist(data_dir, train=False, download=download)
    result = evaluate(trained.model, test, normalize=trained.config.normalize, return_outputs=True)
    predictions = result["predictions"]  # (N,)
    wrong = (predictions != test.labels).nonzero().flatten()  # indices of mistakes
    return {
        "images": test.images[wrong],  # (E, 28, 28) uint8
        "true": test.labels[wrong],
        "pred": predictions[wrong],
        "confidence": result["probabilities"][wrong, predictions[wrong]],  # (E,)
        "total": len(test),
        "indices": wrong.to(torch.int64),
    }


def write_run_plots(
    run_dir: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> list[Path]:
    """curves.png, confusion.png and errors.png of a finished run, into ``out_dir`` (default: the
    run directory). errors.png re-evaluates the best checkpoint on the test set."""
    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir
    _, _, summary = load_run_metrics(run_dir)  # checks metrics.csv first
    if summary is None or "confusion_matrix" not in summary:
        raise SeqMnistError(
            f"{run_dir / SUMMARY_NAME} not found or without a confusion matrix: the run has not "
            "finished; resume it with `seqmnist train --resume` (curves need only metrics.csv)"
        )
    for name in RUN_PLOT_NAMES:  # fail on an unwritable folder before the slow test-set pass
        prepare_output(out / name)
    # The model first: a damaged checkpoint fails the command before any picture is written.
    errors = misclassified(run_dir, data_dir=data_dir, download=download)
    written = [curves([run_dir], out / "curves.png")]
    written.append(
        confusion(
            summary["confusion_matrix"],
            out / "confusion.png",
            title=f"Confusion matrix, {run_dir.name}, test set",
        )
    )
    written.append(
        error_gallery(
            errors["images"],
            errors["true"],
            errors["pred"],
            errors["confidence"],
            out / "errors.png",
            total=errors["total"],
            indices=errors["indices"],
        )
    )
    return written
