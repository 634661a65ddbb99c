"""Pictures of digit images: sample grids, the sequence view, error galleries.

Every drawing function writes one picture and returns its path, through the helpers every picture
shares (``seqmnist.figures``: matplotlib imported lazily, checked output paths, atomic saves).
The training curves live in ``seqmnist.curves``, the other plots of a run (confusion matrix,
``write_run_plots``) in ``seqmnist.plots``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import SeqMnistError
from .figures import as_numpy, pyplot, save_figure

if TYPE_CHECKING:  # only for type hints; matplotlib is imported lazily
    from matplotlib.figure import Figure

DIGIT_CMAP = "gray_r"  # ink dark on white: digits read like handwriting and the PNGs stay small


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


def _mosaic(
    images: np.ndarray,
    captions: Sequence[str],
    ncols: int,
    cell_inches: float,
    title: str,
    fontsize: float,
) -> Figure:
    """28x28 images in a grid on one axes, each with its caption above it, framed in grey."""
    plt = pyplot()
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
        ax.add_patch(
            Rectangle(
                (left - 0.5, top - 0.5), 28, 28, fill=False, edgecolor="#999999", linewidth=0.8
            )
        )
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
    """Pick the images ``seqmnist show`` draws: (images (K, 28, 28), labels (K,), indices (K,)).

    The indices count within the split. ``digit`` keeps only that class; ``index`` then picks one
    image (counted within the kept ones); otherwise the first ``count`` are kept. Out-of-range
    values raise ``SeqMnistError``.
    """
    images, labels = as_numpy(images), as_numpy(labels)
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
                f"--index must be from 0 to {len(indices) - 1} "
                f"(there are {len(indices):,} {where}); got {index}"
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
    images, labels = as_numpy(images), as_numpy(labels)
    captions = [f"label {int(label)}" for label in labels]
    return save_figure(
        _mosaic(images, captions, ncols, SAMPLE_CELL_INCHES, title, fontsize=10), out_path
    )


# How each reading order names a time step and a feature, for the sequence view's axes.
SEQUENCE_AXES = {
    "rows": ("time step t (row)", "feature (pixel in row)"),
    "columns": ("time step t (column, left to right)", "feature (pixel in column, top down)"),
    "pixels": ("time step t (pixels of the raster)", "feature (pixel in step)"),
    "permuted": ("time step t (permuted pixels)", "feature (pixel in step)"),
}
# Up to this many steps each step gets its own line plot; longer sequences are drawn as a strip.
LINE_PLOT_MAX_STEPS = 56


def sequence_view(
    sequence: Any,
    label: int | None,
    out_path: str | os.PathLike,
    order: str = "rows",
    directions: int | None = None,
) -> Path:
    """One image as the network reads it: ``sequence`` (T, F), pixel values 0-255, the output of
    the model's ``SequenceReader`` (for rows, the image itself).

    Short sequences (28 rows or columns): left, the sequence as a heatmap with time on the y
    axis; right, one line plot per time step, literally the sequence of input vectors. Long ones
    (784 steps of one pixel, permuted or not): a strip over time and each step's mean value.
    ``directions``: the model's direction count (1 or 2), for the words about who reads which
    way; None when no model is named (a reading order only). ``label`` None: an image file.
    """
    sequence = as_numpy(sequence).astype(np.float64)  # (T, F)
    if sequence.shape[0] <= LINE_PLOT_MAX_STEPS:
        fig = _short_sequence_figure(sequence, order, directions)
    else:
        fig = _long_sequence_figure(sequence, order)
    steps, features = sequence.shape
    fig.suptitle(
        f"What the network reads ({order}): {steps} time steps × {features} "
        f"feature{'s' if features != 1 else ''}"
        + ("" if label is None else f" (label {int(label)})"),
        fontsize=12,
    )
    fig.tight_layout()
    return save_figure(fig, out_path)


def reading_directions_text(steps: int, directions: int | None) -> str:
    """Who reads the steps which way, in words that follow the model's direction count."""
    forward = f"t = 0 → {steps - 1}"
    if directions == 1:
        return f"the model reads {forward}"
    if directions == 2:
        return f"forward direction reads {forward}, backward t = {steps - 1} → 0"
    return f"a model reads {forward}; a bidirectional one also t = {steps - 1} → 0"


def _short_sequence_figure(sequence: np.ndarray, order: str, directions: int | None) -> Any:
    plt = pyplot()
    steps, features = sequence.shape
    step_axis, feature_axis = SEQUENCE_AXES[order]
    fig, (ax_map, ax_seq) = plt.subplots(
        1, 2, figsize=(11, 5.6), gridspec_kw={"width_ratios": [1.15, 1]}
    )
    shown = ax_map.imshow(
        sequence, cmap=DIGIT_CMAP, vmin=0, vmax=255, interpolation="nearest", aspect="auto"
    )
    ax_map.set_title("the sequence as a heatmap", fontsize=11)
    ax_map.set(xlabel=feature_axis, ylabel=step_axis)
    ax_map.set_xticks(_ticks(features))
    ax_map.set_yticks(_ticks(steps))
    fig.colorbar(shown, ax=ax_map, fraction=0.046, pad=0.04).set_label("pixel value (0-255)")

    # Each time step's features as a line, offset so that t = 0 is at the top.
    scale = 0.9 / 255.0  # a full-intensity pixel rises 0.9 of the gap between steps
    cmap = plt.get_cmap("viridis")
    x = np.arange(features)
    for t in range(steps):
        base, colour = steps - 1 - t, cmap(t / max(steps - 1, 1))
        ax_seq.fill_between(x, base, base + sequence[t] * scale, color=colour, alpha=0.35, lw=0)
        ax_seq.plot(x, base + sequence[t] * scale, color=colour, linewidth=1.0)
    ax_seq.set_yticks([steps - 1 - t for t in _ticks(steps)], [str(t) for t in _ticks(steps)])
    ax_seq.set(ylim=(-0.5, steps + 0.5), xlim=(0, max(features - 1, 1)))
    ax_seq.set_xticks(_ticks(features))
    ax_seq.set(xlabel=feature_axis, ylabel=step_axis)
    ax_seq.set_title(
        f"the input sequence: one {features}-feature vector per step\n"
        f"({reading_directions_text(steps, directions)})",
        fontsize=10,
    )
    return fig


def _long_sequence_figure(sequence: np.ndarray, order: str) -> Any:
    plt = pyplot()
    steps, features = sequence.shape
    step_axis, feature_axis = SEQUENCE_AXES[order]
    fig, (ax_strip, ax_mean) = plt.subplots(
        2, 1, figsize=(12, 5.2), sharex=True, gridspec_kw={"height_ratios": [1, 1.4]}
    )
    ax_strip.imshow(
        sequence.T,  # (F, T): time runs left to right
        cmap=DIGIT_CMAP,
        vmin=0,
        vmax=255,
        interpolation="nearest",
        aspect="auto",
        extent=(-0.5, steps - 0.5, features - 0.5, -0.5),
    )
    ax_strip.set_ylabel(feature_axis if features > 1 else "pixel")
    ax_strip.set_yticks(_ticks(features) if features > 1 else [])
    ax_strip.set_title(f"the input sequence as a strip, {steps} steps", fontsize=11)
    ax_mean.plot(np.arange(steps), sequence.mean(axis=1), color="tab:blue", linewidth=0.8)
    ax_mean.set(xlabel=step_axis, ylabel="pixel value" if features == 1 else "mean pixel value")
    ax_mean.set(xlim=(-0.5, steps - 0.5), ylim=(-5, 260))
    ax_mean.grid(alpha=0.3)
    return fig


def _ticks(n: int) -> list[int]:
    """About eight tick positions over 0..n-1, always including both ends."""
    step = max(1, round(n / 8 / 4) * 4) if n > 8 else 1
    return sorted({*range(0, n - step // 2, step), n - 1})


# --- errors -----------------------------------------------------------------------------


def error_gallery(
    images: Any,
    true_labels: Any,
    pred_labels: Any,
    confidences: Any,
    out_path: str | os.PathLike,
    max_items: int = 30,
    ncols: int = 6,
    total: int | None = None,
    indices: Any = None,
) -> Path:
    """Misclassified images, most confident mistakes first, titled "true 7 → pred 1 (0.83)", or
    with ``indices`` (each image's test index) "#1234  7 → 1 (0.83)", so that another view can
    open the same digit (``seqmnist inspect RUN --index 1234``).

    ``confidences`` is the probability the model gave its (wrong) prediction; ``total`` the number
    of images evaluated, for the title.
    """
    images = as_numpy(images)  # (N, 28, 28) uint8
    true_labels, pred_labels = as_numpy(true_labels), as_numpy(pred_labels)
    confidences = as_numpy(confidences).astype(np.float64)
    order = np.argsort(-confidences, kind="stable")[:max_items]
    of_total = f" of {total:,} test images" if total is not None else ""
    if len(order) == 0:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.axis("off")
        ax.text(
            0.5, 0.5, f"no misclassified images{of_total}", ha="center", va="center", fontsize=12
        )
        return save_figure(fig, out_path)
    if indices is None:
        caption = "true → predicted (probability)"
        captions = [
            f"true {int(true_labels[i])} → pred {int(pred_labels[i])} ({confidences[i]:.2f})"
            for i in order
        ]
    else:
        caption = "#test index  true → predicted (probability)"
        indices = as_numpy(indices)
        captions = [
            f"#{int(indices[i])}  {int(true_labels[i])} → {int(pred_labels[i])} "
            f"({confidences[i]:.2f})"
            for i in order
        ]
    title = (
        f"{len(images):,} misclassified{of_total}; the {len(order)} most confident mistakes "
        f"(caption: {caption})"
    )
    fig = _mosaic(images[order], captions, ncols, ERROR_CELL_INCHES, title, fontsize=9)
    return save_figure(fig, out_path)
