"""Pictures of a ``Reading`` (``seqmnist.explain``): the prediction after each step, the hidden
state and gates over time, the pixel attributions, and an animated GIF of the image being read.

matplotlib is imported lazily (the ``plots`` extra), as in ``seqmnist.pictures``; each function
writes one file and returns its path. ``write_explanation`` writes all four for one image into a
folder and refuses to replace files already there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SeqMnistError
from .explain import Reading
from .figures import prepare_output, pyplot, save_figure
from .pictures import DIGIT_CMAP
from .run import atomic_write

DIGIT_COLOURS = "tab10"  # one colour per digit, the same in every picture
GIF_FRAME_MS = 180
GIF_LAST_FRAME_MS = 1500


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _steps_text(reading: Reading) -> str:
    total = reading.steps[-1]
    if reading.every == 1:
        return f"after each of its {total} steps"
    return f"after every {ordinal(reading.every)} of its {total} steps"


def _read_mask(reading: Reading, steps_read: int) -> np.ndarray:
    """(28, 28) bool: the pixels the first ``steps_read`` steps of the order have read."""
    mask = np.zeros(28 * 28, bool)
    mask[reading.pixel_index[:steps_read].ravel()] = True
    return mask.reshape(28, 28)


def _draw_digit(ax: Any, reading: Reading, steps_read: int | None = None) -> None:
    """The image; with ``steps_read``, the pixels not read yet are faded."""
    image = reading.image / 255.0 if steps_read is None else _faded(reading, steps_read)
    ax.imshow(image, cmap=DIGIT_CMAP, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_probabilities(ax: Any, reading: Reading, upto: int | None = None) -> None:
    """P(digit) against prefix length, one line per digit; the 3 most probable at some step are
    labelled at their end."""
    plt = pyplot()
    colours = plt.get_cmap(DIGIT_COLOURS)
    shown = len(reading.steps) if upto is None else upto
    steps, probs = np.array(reading.steps[:shown]), reading.probabilities[:shown]  # (s,), (s, 10)
    peaks = reading.probabilities.max(axis=0)  # (10,)
    named = set(np.argsort(-peaks)[:3].tolist())
    for digit in range(probs.shape[1]):
        ax.plot(steps, probs[:, digit], color=colours(digit), lw=2.2 if digit in named else 0.8)
        if digit in named and len(steps):
            peak = int(probs[:, digit].argmax())  # labelled where it peaks: the ends crowd at 0
            ax.annotate(
                str(digit), (steps[peak], probs[peak, digit]), xytext=(4, 0),
                textcoords="offset points", color=colours(digit), fontsize=11, weight="bold",
            )  # fmt: skip
    ax.set_xlim(0, reading.steps[-1] * 1.06)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"steps read ({reading.order})")
    ax.set_ylabel("probability")
    ax.grid(alpha=0.3)


def probabilities(reading: Reading, out_path: str | os.PathLike) -> Path:
    """The image, and the probability of each digit after each prefix of its sequence."""
    plt = pyplot()
    prepare_output(out_path)
    fig, (ax_img, ax) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 3]})
    _draw_digit(ax_img, reading)
    ax_img.set_title(f"answer: {reading.label}")
    _draw_probabilities(ax, reading)
    ax.set_title(f"P(digit) {_steps_text(reading)}: the model run on each prefix", fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out_path)


def _state_rows(reading: Reading) -> list[tuple[str, str, float, float]]:
    """(attribute, title, vmin, vmax) of each row of the states figure."""
    rows = [("hidden", "hidden state h", -1.0, 1.0)]
    first = reading.states[0]
    for gate in first.gates:
        if gate in ("cell_input", "new"):
            rows.append((gate, f"{gate.replace('_', ' ')} (tanh)", -1.0, 1.0))
        else:
            rows.append((gate, f"{gate} gate", 0.0, 1.0))
    if first.cell is not None:
        limit = max(float(np.abs(s.cell).max()) for s in reading.states) or 1.0
        rows.append(("cell", "cell state c", -limit, limit))
    return rows


def _state(layer_states: Any, name: str) -> np.ndarray:
    if name in ("hidden", "cell"):
        return getattr(layer_states, name)
    return layer_states.gates[name]


def states(reading: Reading, out_path: str | os.PathLike) -> Path:
    """Hidden state (and gates, cell state) over time, H units x T steps, one column per layer
    and direction."""
    plt = pyplot()
    if not reading.states:
        raise SeqMnistError("this model's recurrent layer cannot be recomputed: no states to draw")
    prepare_output(out_path)
    rows = _state_rows(reading)
    cols = len(reading.states)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(3.6 * cols + 1.2, 1.7 * len(rows) + 0.8), squeeze=False
    )
    for c, layer_states in enumerate(reading.states):
        axes[0, c].set_title(f"layer {layer_states.layer}, {layer_states.direction}", fontsize=10)
        for r, (name, title, vmin, vmax) in enumerate(rows):
            ax = axes[r, c]
            cmap = "viridis" if vmin == 0 else "RdBu_r"
            shown = ax.imshow(
                _state(layer_states, name).T, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                interpolation="nearest",
            )  # fmt: skip
            ax.set_ylabel(f"{title}\nunit", fontsize=8)
            ax.tick_params(labelsize=7)
            if r == len(rows) - 1:
                ax.set_xlabel(f"time step t ({reading.order})", fontsize=8)
            if c == cols - 1:
                fig.colorbar(shown, ax=ax, fraction=0.04, pad=0.02)
    fig.suptitle(_states_title(reading, fig.get_figwidth()), fontsize=11)
    fig.tight_layout()
    return save_figure(fig, out_path)


def _states_title(reading: Reading, width_inches: float) -> str:
    """The states picture's title, wrapped to the figure's width (one column of panels is
    narrow); it speaks of backward directions only when the model has them."""
    import textwrap

    title = f"Recurrent states over time, recomputed from the weights (answer {reading.label})"
    if any(s.direction == "backward" for s in reading.states):
        title += "; backward directions read from the right"
    chars_per_line = int(width_inches * 72 / 6.5)  # about 6.5 points a character at 11 pt
    return textwrap.fill(title, chars_per_line)


def attributions(reading: Reading, out_path: str | os.PathLike) -> Path:
    """Integrated gradients over the image and over the sequence the order made of it."""
    plt = pyplot()
    found = reading.attribution
    if found is None:
        raise SeqMnistError("no attributions in this reading: explain it with attributions=True")
    prepare_output(out_path)
    limit = float(np.abs(found.pixels).max()) or 1.0
    seq_attr = found.pixels.ravel()[reading.pixel_index]  # (T, F): attribution of each entry
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    _draw_digit(axes[0], reading)
    axes[0].set_title(f"image (answer {reading.label})", fontsize=10)
    axes[1].imshow(reading.image, cmap="gray_r", alpha=0.25)
    axes[1].imshow(found.pixels, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.9)
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    axes[1].set_title(
        f"attributions to digit {found.target}\n(red: for, blue: against)", fontsize=10
    )
    # (F, T): time across, the pixels of a step down (one row for 784 steps of one pixel)
    shown = axes[2].imshow(seq_attr.T, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[2].set_xlabel(f"time step t ({reading.order})")
    axes[2].set_ylabel("feature (pixel in step)")
    axes[2].set_title("the same over the sequence the model read", fontsize=10)
    fig.colorbar(shown, ax=axes[2], fraction=0.04)
    fig.suptitle(
        f"Integrated gradients (Captum, {found.n_steps} steps) from a blank image; "
        f"sum {found.pixels.sum():.3f} vs output gap {found.gap:.3f} (delta {found.delta:+.4f})",
        fontsize=11,
    )
    fig.tight_layout()
    return save_figure(fig, out_path)


def _faded(reading: Reading, steps_read: int) -> np.ndarray:
    """(28, 28) in 0..1: the image with the pixels not read yet faded."""
    image = reading.image.astype(np.float64) / 255.0
    return np.where(_read_mask(reading, steps_read), image, image * 0.25)


def reading_gif(reading: Reading, out_path: str | os.PathLike) -> Path:
    """An animated GIF: the image read step by step (unread pixels faded), the probability lines
    growing beside it; one frame per prefix in ``reading.steps`` (already every k-th step for
    long orders), the last frame held longer."""
    from PIL import Image

    plt = pyplot()
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".gif":
        raise SeqMnistError(f"cannot write {out_path}: the animation is a GIF; name it *.gif")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_img, ax) = plt.subplots(
        1, 2, figsize=(7, 2.8), dpi=80, gridspec_kw={"width_ratios": [1, 2.6]}
    )
    try:
        # Draw the whole reading once, then per frame only change the image and the lines' data
        # (a fresh layout per frame costs ~0.5 s each).
        _draw_digit(ax_img, reading)
        _draw_probabilities(ax, reading)
        ax.set_title(f"P(digit) {_steps_text(reading)}", fontsize=9)
        fig.tight_layout()
        shown_image, lines = ax_img.images[0], ax.lines
        labels = list(ax.texts)
        frames = []
        for n, steps_read in enumerate(reading.steps, start=1):
            shown_image.set_data(_faded(reading, steps_read))
            best = int(reading.probabilities[n - 1].argmax())
            ax_img.set_title(f"{steps_read} of {reading.steps[-1]} steps: {best}", fontsize=10)
            for digit, line in enumerate(lines):
                line.set_data(reading.steps[:n], reading.probabilities[:n, digit])
            for label in labels:  # the digit names follow their lines' ends
                digit = int(label.get_text())
                label.xy = (steps_read, reading.probabilities[n - 1, digit])
            fig.canvas.draw()
            rgba = np.asarray(fig.canvas.buffer_rgba())  # (h, w, 4)
            frames.append(Image.fromarray(rgba[..., :3].copy()))
    finally:
        plt.close(fig)
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [GIF_LAST_FRAME_MS]

    def write(f: Any) -> None:
        frames[0].save(
            f, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0
        )

    atomic_write(out_path, write)
    return out_path


# --- all of them, for the CLI ------------------------------------------------------------

PICTURES = {
    "probabilities": ("probabilities.png", probabilities),
    "states": ("states.png", states),
    "attributions": ("attributions.png", attributions),
    "reading": ("reading.gif", reading_gif),
}


def explanation_paths(reading: Reading, out_dir: str | os.PathLike, stem: str) -> dict[str, Path]:
    """name -> out_dir/<stem>-<file> for each picture this reading can give."""
    out = {}
    for name, (file, _) in PICTURES.items():
        if name == "states" and not reading.states:
            continue
        if name == "attributions" and reading.attribution is None:
            continue
        out[name] = Path(out_dir) / f"{stem}-{file}"
    return out


def write_explanation(
    reading: Reading, out_dir: str | os.PathLike, stem: str, overwrite: bool = False
) -> list[Path]:
    """Every picture of ``reading`` into ``out_dir`` as <stem>-probabilities.png, -states.png,
    -attributions.png and -reading.gif. Refuses (before drawing anything) to replace a file
    already there unless ``overwrite``."""
    paths = explanation_paths(reading, out_dir, stem)
    taken = [str(p) for p in paths.values() if p.exists()]
    if taken and not overwrite:
        raise SeqMnistError(
            f"{taken[0]} already exists: choose another --out folder or pass --overwrite"
        )
    return [PICTURES[name][1](reading, path) for name, path in paths.items()]
