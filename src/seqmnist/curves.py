"""Training curves: loss, accuracy and learning rate per epoch, of one run or several overlaid.

In the curves, a data split always has one line style (``SPLIT_STYLES``). The picture of one run
gives each split its colour too (``SPLIT_COLOURS``); an overlay of several runs gives each run its
own colour instead (``run_colours``: distinct for any number of runs) and labels runs by the
shortest tail of their paths that tells them apart (``compare.run_labels``, via
``curve_data.load_runs``).

matplotlib is imported inside the functions that draw (``figures.pyplot``); ``curves_figure``
returns the matplotlib Figure itself so tests can count its lines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .curve_data import RunCurves, load_runs, lr_steps, series
from .errors import SeqMnistError
from .figures import prepare_output, pyplot, removing_new_folders, save_figure
from .metrics import softmax_loss_floor

if TYPE_CHECKING:  # only for type hints; matplotlib is imported lazily
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# One colour per data split in the picture of one run (matplotlib's tab10 blue, orange, green).
SPLIT_COLOURS = {"train": "#1f77b4", "validation": "#ff7f0e", "test": "#2ca02c"}
# One line style per data split, in every curves picture; in an overlay the colour is the run's.
SPLIT_STYLES = {"train": "-", "validation": "--", "test": ":"}
SPLIT_MARKERS = {"train": "o", "validation": "s", "test": "^"}
# metrics.csv column prefix for each split.
SPLIT_COLUMNS = {"train": "train", "validation": "val", "test": "test"}
LR_COLOUR = "#444444"
FLOOR_COLOUR = "#000000"
LOSS_TITLE = "loss (mean cross-entropy per image)"
# The run legend beside the panels holds this many runs a column before it adds a column.
LEGEND_ROWS = 16


# Label of the star a run that tests only once (at its best epoch) gets; also found by the legend.
ONCE_LABEL = "once, best checkpoint"
# The test-once star: a black rim so it shows over the lines.
STAR_STYLE = {
    "marker": "*",
    "linestyle": "none",
    "markeredgecolor": "black",
    "markeredgewidth": 0.6,
}

CURVES_FOOTNOTE = (
    "train: running mean over the epoch while the weights change; "
    "validation and test: measured after the epoch; learning rate: the range its steps used"
)  # the split legend's title


def run_colours(count: int) -> list[str]:
    """``count`` distinct colours, one per run: tab10, then tab20, then evenly spaced hues."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if count <= 10:
        return [to_hex(colormaps["tab10"](i)) for i in range(count)]
    if count <= 20:  # tab20's ten dark hues first, then their light twins
        order = [*range(0, 20, 2), *range(1, 20, 2)]
        return [to_hex(colormaps["tab20"](i)) for i in order[:count]]
    return [to_hex(colormaps["hsv"](i / count)) for i in range(count)]


def _plot_split_lines(ax_loss: Axes, ax_acc: Axes, run: RunCurves, colour: str | None) -> set[str]:
    """One loss and one accuracy line per split the run recorded; returns the splits drawn.
    ``colour`` None: each split in its own colour (the picture of one run)."""
    drawn = set()
    for split, prefix in SPLIT_COLUMNS.items():
        epochs, loss = series(run.rows, f"{prefix}_loss")
        if not epochs:
            continue  # e.g. no validation split, or test not recorded per epoch
        drawn.add(split)
        line = {
            "color": colour or SPLIT_COLOURS[split],
            "linestyle": SPLIT_STYLES[split],
            "marker": SPLIT_MARKERS[split],
            "markersize": 3.5,
            "linewidth": 1.6,
            "label": f"{run.label}: {split}",
        }
        ax_loss.plot(epochs, loss, **line)
        epochs, acc = series(run.rows, f"{prefix}_acc", scale=100.0)
        ax_acc.plot(epochs, acc, **line)
    return drawn


def _plot_test_once_star(ax_loss: Axes, ax_acc: Axes, run: RunCurves, colour: str | None) -> None:
    """A run that tests only once, at the end, gets one star at its best epoch."""
    summary = run.summary
    if not summary or series(run.rows, "test_acc")[0] or summary.get("test_acc") is None:
        return
    star = {"color": colour or SPLIT_COLOURS["test"], "markersize": 13, **STAR_STYLE}
    best = summary.get("best_epoch") or run.rows[-1]["epoch"]
    star_label = f"{run.label}: test ({ONCE_LABEL})"
    ax_loss.plot([best], [summary["test_loss"]], label=star_label, **star)
    ax_acc.plot([best], [summary["test_acc"] * 100], label=star_label, **star)


def _plot_lr(ax_lr: Axes, run: RunCurves, colour: str, alpha: float = 0.2) -> None:
    """The learning rate's range within each epoch: a band between its lowest and highest value
    (one line where the lr was constant)."""
    edges, low, high = lr_steps(run.rows)
    if not edges:
        return
    ax_lr.fill_between(edges, low, high, step="post", color=colour, alpha=alpha, linewidth=0)
    ax_lr.step(edges, high, where="post", color=colour, linewidth=1.6, label=f"{run.label}: lr")
    ax_lr.step(edges, low, where="post", color=colour, linewidth=1.0, label="_lr min")


def _plot_softmax_floor(ax_loss: Axes, runs: list[RunCurves]) -> None:
    """A dotted line at the loss floor of softmax_output runs; the panel's title names them."""
    with_floor = [r.label for r in runs if r.softmax_output]
    if not with_floor:
        return
    floor = softmax_loss_floor()
    ax_loss.axhline(floor, color=FLOOR_COLOUR, linestyle=":", linewidth=1.2, label="_floor")
    whose = "" if len(runs) == 1 else f" of {_short_list(with_floor)}"
    ax_loss.set_title(
        f"{LOSS_TITLE}\ndotted: the floor{whose}, {floor:.4f} (softmax output: cannot go lower)",
        fontsize=10,
    )


def _short_list(labels: list[str], limit: int = 2) -> str:
    """The labels as "a, b" or "a, b and 3 more": a note that fits inside one panel."""
    names = [label.rsplit(" (", 1)[0] for label in labels]
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def _style_axes(ax_loss: Axes, ax_acc: Axes, ax_lr: Axes) -> None:
    """Titles, axis labels, log scales with plain-number ticks, integer epochs and grids."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator

    if not ax_loss.get_title():  # the softmax floor's note may have set it
        ax_loss.set_title(LOSS_TITLE)
    ax_loss.set_ylabel("loss (log scale)")
    ax_loss.set_yscale("log")
    ax_acc.set_title("accuracy")
    ax_acc.set_ylabel("accuracy (%)")
    ax_lr.set_title("learning rate: lowest..highest within each epoch")
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


def _split_legend(ax_acc: Axes, splits_seen: set[str], one_run: bool, floor: bool) -> None:
    """Which line style (and, for one run, colour) is which split."""
    from matplotlib.lines import Line2D

    grey = "#555555"
    handles = [
        Line2D(
            [],
            [],
            color=SPLIT_COLOURS[s] if one_run else grey,
            linestyle=SPLIT_STYLES[s],
            marker=SPLIT_MARKERS[s],
            markersize=4,
            linewidth=2,
            label=s,
        )
        for s in SPLIT_COLUMNS
        if s in splits_seen
    ]
    if any(ONCE_LABEL in line.get_label() for line in ax_acc.get_lines()):
        colour = SPLIT_COLOURS["test"] if one_run else grey
        handles.append(
            Line2D([], [], color=colour, markersize=12, label="test, once at the end", **STAR_STYLE)
        )
    if floor:
        handles.append(
            Line2D([], [], color=FLOOR_COLOUR, linestyle=":", label="softmax-output loss floor")
        )
    title = "split (colour, line style)" if one_run else "split (line style)"
    ax_acc.get_figure().legend(
        handles=handles,
        title=f"{title}. {CURVES_FOOTNOTE}",  # the footnote says how each split is measured
        title_fontsize=8,
        fontsize=9,
        loc="outside lower center",
        ncols=len(handles),
    )


def _run_legend(fig: Figure, runs: list[RunCurves], colours: list[str]) -> None:
    """One entry per run, in the run's colour, beside the panels (columns of LEGEND_ROWS)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, linewidth=2.5, label=r.label) for r, c in zip(runs, colours)]
    fig.legend(
        handles=handles,
        title="run (colour)",
        loc="outside right upper",
        ncols=-(-len(runs) // LEGEND_ROWS),
        fontsize=8,
        title_fontsize=9,
    )


def _add_titles(fig: Figure, runs: list[RunCurves]) -> None:
    """A title that fits the figure (runs are named in the legend when there are several)."""
    if len(runs) == 1:
        title = f"Training curves: {runs[0].label}"
    else:
        names = ", ".join(r.label for r in runs)
        title = f"Training curves of {len(runs)} runs"
        title += f": {names}" if len(names) <= 90 else " (see the legend)"
    fig.suptitle(title, fontsize=12)


def curves_figsize(count: int) -> tuple[float, float]:
    """(width, height) in inches of the curves figure of ``count`` runs: wider by the run
    legend's columns."""
    if count <= 1:
        return 15.0, 4.8
    return 15.0 + 2.6 * -(-count // LEGEND_ROWS), 4.8


def curves_figure(run_dirs: Sequence[str | os.PathLike]) -> Figure:
    """The curves figure: loss, accuracy and learning rate per epoch, one set of lines per run.

    One run: colour and line style per split. Several: colour per run, line style per split.
    Every data line carries the label ``"<run label>: <split>"`` (``"<run label>: lr"`` in the
    learning-rate panel) so that tests and readers can tell them apart. Any run that cannot be
    read is an error here; ``load_runs`` reads what it can and reports the rest.
    """
    if not run_dirs:
        raise SeqMnistError("pass at least one run directory")
    runs, errors = load_runs(run_dirs)  # errors before any drawing
    if errors:
        raise SeqMnistError(errors[0])
    return draw_curves(runs)


def draw_curves(runs: list[RunCurves]) -> Figure:
    """``curves_figure`` for runs already loaded."""
    plt = pyplot()
    one_run = len(runs) == 1
    colours = [LR_COLOUR] if one_run else run_colours(len(runs))
    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(
        1, 3, figsize=curves_figsize(len(runs)), layout="constrained"
    )
    splits_seen: set[str] = set()
    for run, colour in zip(runs, colours):
        line_colour = None if one_run else colour
        splits_seen |= _plot_split_lines(ax_loss, ax_acc, run, line_colour)
        _plot_test_once_star(ax_loss, ax_acc, run, line_colour)
        _plot_lr(ax_lr, run, colour, alpha=0.2 if len(runs) <= 3 else 0.07)  # bands overlap
    _plot_softmax_floor(ax_loss, runs)
    _style_axes(ax_loss, ax_acc, ax_lr)
    _split_legend(ax_acc, splits_seen, one_run, any(r.softmax_output for r in runs))
    if not one_run:
        _run_legend(fig, runs, colours)
    _add_titles(fig, runs)
    return fig


def curves(run_dirs: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> Path:
    """Loss, accuracy and learning-rate curves of one run, or several overlaid, as a PNG."""
    with removing_new_folders(Path(out_path).parent):
        prepare_output(out_path)
        return save_figure(curves_figure([Path(d) for d in run_dirs]), out_path)


def save_curves(runs: list[RunCurves], out_path: str | os.PathLike) -> Path:
    """``curves`` for runs already read by ``load_runs`` (the readable ones of a longer list)."""
    if not runs:
        raise SeqMnistError("none of the run directories could be read: nothing to draw")
    with removing_new_folders(Path(out_path).parent):
        prepare_output(out_path)
        return save_figure(draw_curves(runs), out_path)
