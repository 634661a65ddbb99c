"""The plots of a finished run: the confusion matrix, the gallery of its mistakes, and
``write_run_plots``, which draws curves.png, confusion.png and errors.png into a folder.

matplotlib is an optional extra (``pip install 'seqmnist[plots]'``), so it is imported inside the
functions that draw, never at module import. Every function writes one picture and returns its path.

Where the rest lives: the training curves in ``seqmnist.curves`` (drawn from what
``seqmnist.curve_data`` reads), pictures of digit images (sample grids, the sequence view, the
error gallery) in ``seqmnist.pictures``, and the helpers every picture shares (``pyplot``,
``prepare_output``, ``save_figure``) in ``seqmnist.figures``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .curve_data import load_run_metrics
from .curves import curves
from .errors import SeqMnistError
from .figures import as_numpy, prepare_output, pyplot, removing_new_folders, save_figure
from .pictures import error_gallery
from .run import SUMMARY_NAME

RUN_PLOT_NAMES = ("curves.png", "confusion.png", "errors.png")


def confusion(
    matrix: Any, out_path: str | os.PathLike, title: str = "Confusion matrix (test set)"
) -> Path:
    """A (10, 10) count matrix: counts written in the cells, colour = fraction of the true digit."""
    plt = pyplot()
    counts = as_numpy(matrix).astype(np.int64)  # (C, C): row = true, column = predicted
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
    return save_figure(fig, out_path)


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
    with removing_new_folders(out):
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
