"""Pictures: training curves, confusion matrix, sample grids, the sequence view and error galleries.

matplotlib is an optional extra (``pip install 'seqmnist[plots]'``), so it is imported inside the
functions that draw, never at module import. Every function writes one PNG and returns its path;
``curves_figure`` returns the matplotlib Figure itself so tests can count its lines.

Colours mean the same thing in every picture: ``SPLIT_COLOURS`` maps a data split to one colour.
In an overlay of several runs the run is told apart by line style and marker (``RUN_STYLES``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .run import SUMMARY_NAME, RunDir
from .errors import SeqMnistError

if TYPE_CHECKING:  # only for type hints; matplotlib is imported lazily
    from matplotlib.figure import Figure

# One colour per data split, used by every plot (matplotlib's tab10 blue, orange, green).
SPLIT_COLOURS = {"train": "#1f77b4", "validation": "#ff7f0e", "test": "#2ca02c"}
# metrics.csv column prefix for each split.
SPLIT_COLUMNS = {"train": "train", "validation": "val", "test": "test"}
# Runs in an overlay: (line style, marker), cycled.
RUN_STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v")]
LR_COLOUR = "#444444"
DPI = 120
DIGIT_CMAP = "gray_r"  # ink dark on white: digits read like handwriting and the PNGs stay small

RUN_PLOT_NAMES = ("curves.png", "confusion.png", "errors.png")


class PlotsUnavailable(SeqMnistError, ImportError):
    """matplotlib is not installed. An ImportError too, so training only warns about it."""


def _pyplot() -> Any:
    """Import pyplot with the non-interactive Agg backend (no display needed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotsUnavailable(
            "matplotlib is not installed: pip install 'seqmnist[plots]' to draw pictures"
        ) from None
    return plt


# Output file suffix -> matplotlib format (JPEG through Pillow, a core dependency).
PLOT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def _unwritable(out_path: Path, exc: OSError) -> SeqMnistError:
    return SeqMnistError(
        f"cannot write {out_path} ({exc.strerror or exc}): choose a writable output path"
    )


def plot_format(out_path: str | os.PathLike) -> str:
    """The format ``out_path``'s suffix names (``.png`` -> "png"); other suffixes are refused."""
    suffix = Path(out_path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        named = f"ends in {suffix!r}" if suffix else "has no file suffix"
        raise SeqMnistError(f"cannot write {out_path}: it {named}; give a file name ending in "
                            f"{', '.join(PLOT_FORMATS)}")
    return PLOT_FORMATS[suffix]


def prepare_output(out_path: str | os.PathLike) -> Path:
    """Check the suffix and create the folder ``out_path`` goes into, so a bad or unwritable path
    fails before any drawing (call it before slow work too)."""
    out_path = Path(out_path)
    if out_path.is_dir():
        raise SeqMnistError(f"cannot write {out_path}: it is a folder; give a file name ending in "
                            f"{', '.join(PLOT_FORMATS)}")
    plot_format(out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(out_path, exc) from None
    return out_path


def _save(fig: Figure, out_path: str | os.PathLike) -> Path:
    """Write ``fig`` in the format its suffix names (PNG, JPEG, PDF or SVG) and close it; errors
    name the path."""
    plt = _pyplot()
    try:
        out_path = prepare_output(out_path)
        fig.savefig(out_path, dpi=DPI, format=plot_format(out_path))
    except OSError as exc:
        raise _unwritable(Path(out_path), exc) from None
    finally:
        plt.close(fig)
    return out_path


def _as_numpy(array: Any) -> np.ndarray:
    """Tensors (any device) and lists become numpy arrays."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


# Image grids are drawn as ONE picture (a mosaic) on one axes: 25 separate axes would cost
# seconds to lay out and render, a mosaic a fraction of that. Sizes are in image pixels.
CELL_GAP = 4  # blank pixels between neighbouring images
LABEL_BAND = 6  # blank pixels above each image for its caption
TITLE_INCHES = 0.4  # band above the mosaic for the figure title
SAMPLE_CELL_INCHES = 1.5  # width of one image cell in sample_grid
ERROR_CELL_INCHES = 1.9  # error_gallery's captions are longer


def grid_figsize(count: int, ncols: int, cell_inches: float) -> tuple[float, float]:
    """(width, height) in inches of a mosaic of ``count`` 28x28 images in ``ncols`` columns, each
    cell ``cell_inches`` wide; the height follows so that pixels stay square."""
    ncols = max(1, min(ncols, count))
    nrows = -(-count // ncols)
    width_units = ncols * (28 + CELL_GAP)
    height_units = nrows * (28 + LABEL_BAND + CELL_GAP)
    width = ncols * cell_inches
    return width, height_units * width / width_units + TITLE_INCHES


def _mosaic(images: np.ndarray, captions: Sequence[str], ncols: int, cell_inches: float,
            title: str, fontsize: float) -> Figure:
    """28x28 images in a grid on one axes, each with its caption above it, framed in grey."""
    plt = _pyplot()
    from matplotlib.patches import Rectangle

    count = len(images)
    ncols = max(1, min(ncols, count))
    nrows = -(-count // ncols)
    cell_w, cell_h = 28 + CELL_GAP, 28 + LABEL_BAND + CELL_GAP
    canvas = np.zeros((nrows * cell_h, ncols * cell_w), dtype=np.uint8)  # (rows, cols) of pixels
    width, height = grid_figsize(count, ncols, cell_inches)
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - TITLE_INCHES / height))
    for k, (image, caption) in enumerate(zip(images, captions)):
        top = (k // ncols) * cell_h + LABEL_BAND + CELL_GAP // 2  # first pixel row of the image
        left = (k % ncols) * cell_w + CELL_GAP // 2
        canvas[top : top + 28, left : left + 28] = image
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), 28, 28, fill=False, edgecolor="#999999", linewidth=0.8))
        ax.text(left + 14, top - 1.5, caption, ha="center", va="bottom", fontsize=fontsize)
    ax.imshow(canvas, cmap=DIGIT_CMAP, vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    ax.set_xlim(-0.5, canvas.shape[1] - 0.5)
    ax.set_ylim(canvas.shape[0] - 0.5, -0.5)
    ax.axis("off")
    fig.suptitle(title, fontsize=12, y=1.0 - 0.12 * TITLE_INCHES / height, va="top")
    return fig


# --- samples and the sequence view -----------------------------------------------------------


def select_samples(
    images: Any,
    labels: Any,
    *,
    count: int = 25,
    digit: int | None = None,
    index: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick the images ``seqmnist show`` draws: (images (K, 28, 28), labels (K,), split indices (K,)).

    ``digit`` keeps only that class; ``index`` then picks one image (counted within the kept ones);
    otherwise the first ``count`` are kept. Out-of-range values raise ``SeqMnistError``.
    """
    images, labels = _as_numpy(images), _as_numpy(labels)
    if not 1 <= count <= 100:
        raise SeqMnistError(f"--count must be an integer from 1 to 100; got {count}")
    indices = np.arange(len(labels))
    if digit is not None:
        if not 0 <= digit <= 9:
            raise SeqMnistError(f"--digit must be an integer from 0 to 9; got {digit}")
        indices = indices[labels == digit]
    if index is not None:
        if not 0 <= index < len(indices):
            where = f"images of digit {digit}" if digit is not None else "images in this split"
            raise SeqMnistError(
                f"--index must be from 0 to {len(indices) - 1} (there are {len(indices):,} {where}); got {index}"
            )
        indices = indices[index : index + 1]
    else:
        indices = indices[:count]
    if len(indices) == 0:
        raise SeqMnistError("no images to show: the split is empty")
    return images[indices], labels[indices], indices


def sample_grid(
    images: Any,
    labels: Any,
    out_path: str | os.PathLike,
    ncols: int = 5,
    title: str = "MNIST samples (label above each image)",
) -> Path:
    """Images (N, 28, 28) uint8 in a grid, each with its label above it."""
    images, labels = _as_numpy(images), _as_numpy(labels)
    captions = [f"label {int(label)}" for label in labels]
    return _save(_mosaic(images, captions, ncols, SAMPLE_CELL_INCHES, title, fontsize=10), out_path)


def sequence_view(image: Any, label: int, out_path: str | os.PathLike) -> Path:
    """One image as the network reads it: 28 time steps (rows), each a vector of 28 features.

    Left: the image as a heatmap with time on the y axis. Right: the same 28 rows drawn as 28
    stacked line plots, one per time step, which is literally the sequence of input vectors.
    """
    plt = _pyplot()
    image = _as_numpy(image).astype(np.float64)  # (28, 28): (time step, feature)
    steps, features = image.shape
    fig, (ax_map, ax_seq) = plt.subplots(
        1, 2, figsize=(11, 5.6), gridspec_kw={"width_ratios": [1.15, 1]}
    )

    shown = ax_map.imshow(image, cmap=DIGIT_CMAP, vmin=0, vmax=255, interpolation="nearest", aspect="equal")
    ax_map.set_title(f"digit {int(label)} as a heatmap", fontsize=11)
    ax_map.set_xlabel("feature (pixel in row)")
    ax_map.set_ylabel("time step t (row)")
    ax_map.set_xticks([*range(0, features - 3, 4), features - 1])
    ax_map.set_yticks([*range(0, steps - 3, 4), steps - 1])
    bar = fig.colorbar(shown, ax=ax_map, fraction=0.046, pad=0.04)
    bar.set_label("pixel value (0-255)")

    # Each time step's 28 features as a line, offset so that t = 0 is at the top.
    scale = 0.9 / 255.0  # a full-intensity pixel rises 0.9 of the gap between steps
    cmap = plt.get_cmap("viridis")
    x = np.arange(features)
    for t in range(steps):
        base = steps - 1 - t
        colour = cmap(t / (steps - 1))
        ax_seq.fill_between(x, base, base + image[t] * scale, color=colour, alpha=0.35, linewidth=0)
        ax_seq.plot(x, base + image[t] * scale, color=colour, linewidth=1.0)
    step_ticks = [*range(0, steps - 3, 4), steps - 1]
    ax_seq.set_yticks([steps - 1 - t for t in step_ticks], [str(t) for t in step_ticks])
    ax_seq.set_ylim(-0.5, steps + 0.5)
    ax_seq.set_xlim(0, features - 1)
    ax_seq.set_xticks([*range(0, features - 3, 4), features - 1])
    ax_seq.set_xlabel("feature (pixel in row)")
    ax_seq.set_ylabel("time step t (row)")
    ax_seq.set_title(
        f"the input sequence: one {features}-feature vector per step\n"
        f"(forward direction reads t = 0 → {steps - 1}, backward t = {steps - 1} → 0)",
        fontsize=10,
    )
    fig.suptitle(f"What the network reads: {steps} time steps × {features} features (label {int(label)})", fontsize=12)
    fig.tight_layout()
    return _save(fig, out_path)


# --- training curves ----------------------------------------------------------------------


def load_run_metrics(run_dir: str | os.PathLike) -> tuple[str, list[dict[str, float | None]], dict[str, Any] | None]:
    """(label "name (preset)", metrics.csv rows, summary.json or None) of a run directory."""
    run = RunDir(run_dir)
    if not run.path.is_dir():
        raise SeqMnistError(f"no such run directory: {run.path} (pass a folder made by `seqmnist train`)")
    if not run.metrics_file.is_file():
        raise SeqMnistError(
            f"{run.metrics_file} not found: pass a run directory made by `seqmnist train` "
            "(it writes metrics.csv after every epoch)"
        )
    rows = run.read_metrics()
    if not rows:
        raise SeqMnistError(f"{run.metrics_file} holds no epochs yet: let training finish at least one epoch")
    preset = run.read_config().preset if run.config_file.is_file() else "?"
    return f"{run.path.name} ({preset})", rows, run.read_summary()


def _series(rows: list[dict[str, float | None]], column: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    """(epochs, values) for the epochs where ``column`` was recorded."""
    points = [(r["epoch"], r[column] * scale) for r in rows if r.get(column) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def curves_figure(run_dirs: Sequence[str | os.PathLike]) -> Figure:
    """The curves figure: loss, accuracy and learning rate per epoch, one set of lines per run.

    Every data line carries the label ``"<run label>: <split>"`` (``"<run label>: lr"`` in the
    learning-rate panel) so that tests and readers can tell them apart.
    """
    if not run_dirs:
        raise SeqMnistError("pass at least one run directory")
    runs = [load_run_metrics(d) for d in run_dirs]  # errors before any drawing
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator

    fig, (ax_loss, ax_acc, ax_lr) = plt.subplots(1, 3, figsize=(15, 4.8))
    splits_seen: set[str] = set()
    for i, (label, rows, summary) in enumerate(runs):
        style, marker = RUN_STYLES[i % len(RUN_STYLES)]
        common = {"linestyle": style, "marker": marker, "markersize": 4, "linewidth": 1.6}
        for split, prefix in SPLIT_COLUMNS.items():
            epochs, loss = _series(rows, f"{prefix}_loss")
            if not epochs:
                continue  # e.g. no validation split, or test not recorded per epoch
            splits_seen.add(split)
            colour = SPLIT_COLOURS[split]
            ax_loss.plot(epochs, loss, color=colour, label=f"{label}: {split}", **common)
            epochs, acc = _series(rows, f"{prefix}_acc", scale=100.0)
            ax_acc.plot(epochs, acc, color=colour, label=f"{label}: {split}", **common)
        # A run that tests only once, at the end, gets one star at its best epoch.
        if summary and not _series(rows, "test_acc")[0] and summary.get("test_acc") is not None:
            star = {"color": SPLIT_COLOURS["test"], "marker": "*", "markersize": 13, "linestyle": "none",
                    "markeredgecolor": "black", "markeredgewidth": 0.6}
            best = summary.get("best_epoch") or rows[-1]["epoch"]
            ax_loss.plot([best], [summary["test_loss"]], label=f"{label}: test (once, best checkpoint)", **star)
            ax_acc.plot([best], [summary["test_acc"] * 100], label=f"{label}: test (once, best checkpoint)", **star)
        epochs, lr = _series(rows, "lr")
        ax_lr.plot(epochs, lr, color=LR_COLOUR, label=f"{label}: lr", **common)

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

    # Two small legends instead of one per line: colour = split, line style/marker = run.
    split_handles = [
        Line2D([], [], color=SPLIT_COLOURS[s], linewidth=2.5, label=s) for s in SPLIT_COLOURS if s in splits_seen
    ]
    if any("once, best checkpoint" in line.get_label() for line in ax_acc.get_lines()):
        split_handles.append(Line2D([], [], color=SPLIT_COLOURS["test"], marker="*", markersize=12, linestyle="none",
                                    markeredgecolor="black", markeredgewidth=0.6, label="test, once at the end"))
    run_handles = [
        Line2D([], [], color=LR_COLOUR, linestyle=RUN_STYLES[i % len(RUN_STYLES)][0],
               marker=RUN_STYLES[i % len(RUN_STYLES)][1], label=label)
        for i, (label, _, _) in enumerate(runs)
    ]
    ax_acc.legend(handles=split_handles, title="split (colour)", loc="lower right", fontsize=9)
    ax_lr.legend(handles=run_handles, title="run (line style)", loc="best", fontsize=9)
    title = "Training curves" if len(runs) == 1 else f"Training curves of {len(runs)} runs"
    fig.suptitle(f"{title}: " + ", ".join(label for label, _, _ in runs), fontsize=12)
    fig.text(0.5, 0.01, "train: running mean over the epoch while the weights change; "
             "validation and test: measured after the epoch", ha="center", va="bottom", fontsize=8, color="#555555")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def curves(run_dirs: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> Path:
    """Loss, accuracy and learning-rate curves of one run, or several overlaid, as a PNG."""
    prepare_output(out_path)
    return _save(curves_figure([Path(d) for d in run_dirs]), out_path)


# --- confusion matrix and errors ---------------------------------------------------------


def confusion(matrix: Any, out_path: str | os.PathLike, title: str = "Confusion matrix (test set)") -> Path:
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
            ax.text(c, r, str(counts[r, c]), ha="center", va="center", fontsize=8,
                    color="white" if fractions[r, c] > 0.5 else ("#b00000" if r != c else "black"))
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(f"{title}: accuracy {accuracy:.2%} of {int(counts.sum()):,} images\n"
                 "(cells: counts, red = errors; colour: fraction of the true digit)", fontsize=11)
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("fraction of the row (true digit)")
    fig.tight_layout()
    return _save(fig, out_path)


def error_gallery(
    images: Any,
    true_labels: Any,
    pred_labels: Any,
    confidences: Any,
    out_path: str | os.PathLike,
    max_items: int = 30,
    ncols: int = 6,
    total: int | None = None,
) -> Path:
    """Misclassified images, most confident mistakes first, titled "true 7 → pred 1 (0.83)".

    ``confidences`` is the probability the model gave its (wrong) prediction; ``total`` the number
    of images evaluated, for the title.
    """
    images = _as_numpy(images)  # (N, 28, 28) uint8
    true_labels, pred_labels = _as_numpy(true_labels), _as_numpy(pred_labels)
    confidences = _as_numpy(confidences).astype(np.float64)
    order = np.argsort(-confidences, kind="stable")[:max_items]
    of_total = f" of {total:,} test images" if total is not None else ""
    if len(order) == 0:
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"no misclassified images{of_total}", ha="center", va="center", fontsize=12)
        return _save(fig, out_path)
    title = (f"{len(images):,} misclassified{of_total}; the {len(order)} most confident mistakes "
             "(caption: true → predicted (probability))")
    captions = [f"true {int(true_labels[i])} → pred {int(pred_labels[i])} ({confidences[i]:.2f})" for i in order]
    fig = _mosaic(images[order], captions, ncols, ERROR_CELL_INCHES, title, fontsize=9)
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
    written = [curves([run_dir], out / "curves.png")]
    written.append(confusion(summary["confusion_matrix"], out / "confusion.png",
                             title=f"Confusion matrix, {run_dir.name}, test set"))
    errors = misclassified(run_dir, data_dir=data_dir, download=download)
    written.append(error_gallery(errors["images"], errors["true"], errors["pred"], errors["confidence"],
                                 out / "errors.png", total=errors["total"]))
    return written
