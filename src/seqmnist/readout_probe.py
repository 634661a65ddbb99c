"""What the readout's choice costs, measured on real images (``seqmnist inspect`` prints it).

inspect.py shows which slices of ``output`` equal ``h_n``; this module shows the consequence:

- the value range of ``h`` (every step of ``output``) and ``c`` (``c_n``): ``h = o * tanh(c)``
  lies in (-1, 1) for an LSTM (and GRU and tanh RNN), ``c`` is unbounded, a ReLU RNN's ``h`` too;
- how constant the article's backward half ``output[:, -1, H:]`` is over many test images: it
  has read only the last step, which is blank in most digits, so it is nearly the same vector for
  every image (its standard deviation over the images, per unit), against the forward half;
- the accuracy when each half of the model's own readout is replaced by its mean over the
  images: a half whose replacement costs nothing carries no information about the digit;
- a picture of ``output`` for one image (T x D*H), with the cells that are ``h_n`` and the
  article's slice marked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .cells import cell_spec
from .model import SeqClassifier


@torch.no_grad()
def _run(model: SeqClassifier, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """output (N, T, D*H), h_n (L*D, N, H), c_n or None, readout (N, D*H)."""
    output, state = model.rnn(model.read(images))
    h_n, c_n = state if isinstance(state, tuple) else (state, None)
    return output, h_n, c_n, model.readout(output, h_n)


def _half_std(half: torch.Tensor) -> dict[str, float]:
    """Standard deviation over the images of each unit (N, H) -> its largest and mean."""
    std = half.std(dim=0)  # (H,)
    return {"max_std": float(std.max()), "mean_std": float(std.mean())}


@torch.no_grad()
def _accuracy(model: SeqClassifier, readout: torch.Tensor, labels: torch.Tensor) -> float:
    logits = model.head(model.dropout(readout))  # (N, 10); softmax does not change the argmax
    return float((logits.argmax(dim=1) == labels).float().mean())


def readout_probe(
    model: SeqClassifier, images: torch.Tensor, labels: torch.Tensor, blank_last: float
) -> dict[str, Any]:
    """The figures above on ``images`` (N, 28, 28, as the model was trained on) and ``labels``.

    ``blank_last``: the share of these images whose last time step has no ink (the caller knows
    the raw pixels). Each readout half is replaced by its mean over the N images.
    """
    model.eval()
    output, h_n, c_n, readout = _run(model, images)
    H, D = model.config.hidden, model.num_directions
    result: dict[str, Any] = {
        "images": int(images.shape[0]),
        "h_range": [float(output.min()), float(output.max())],
        "h_bound": cell_spec(model.config.cell).h_bound,  # declared with the cell (cells/)
        "c_range": None if c_n is None else [float(c_n.min()), float(c_n.max())],
        "blank_last_step": blank_last,
        "accuracy": _accuracy(model, readout, labels),
        "mean_replaced": {},
    }
    if D == 2:
        result["article_halves"] = {
            "forward": _half_std(output[:, -1, :H]),
            "backward": _half_std(output[:, -1, H:]),
        }
    names = ["forward", "backward"] if D == 2 else ["the only direction"]
    for d, name in enumerate(names):
        if readout.shape[1] != D * H:  # a readout of another width: nothing to split
            break
        replaced = readout.clone()
        part = slice(d * H, (d + 1) * H)
        replaced[:, part] = readout[:, part].mean(dim=0)  # every image gets the same half
        result["mean_replaced"][name] = _accuracy(model, replaced, labels)
    return result


def format_readout_probe(probe: dict[str, Any], readout: str) -> str:
    """The probe's figures as text, each with its scale."""
    n = probe["images"]
    lo, hi = probe["h_range"]
    lines = [
        f"on {n:,} test images:",
        f"  h (every step of output) lies in [{lo:.3f}, {hi:.3f}]; its bound: {probe['h_bound']}",
    ]
    if probe["c_range"] is not None:
        clo, chi = probe["c_range"]
        lines.append(f"  c (c_n, the LSTM's cell state) lies in [{clo:.3f}, {chi:.3f}]; unbounded")
    halves = probe.get("article_halves")
    if halves:
        f, b = halves["forward"], halves["backward"]
        lines += [
            f"  the last step has no ink in {probe['blank_last_step']:.1%} of these images, so "
            "the article's output[:, -1, :] is",
            f"    forward half  output[:, -1, :H]: std over the images per unit, largest "
            f"{f['max_std']:.3f}, mean {f['mean_std']:.3f}",
            f"    backward half output[:, -1, H:]: std over the images per unit, largest "
            f"{b['max_std']:.3f}, mean {b['mean_std']:.3f}"
            + (
                "  (nearly constant: it has read one step)"
                if b["max_std"] < f["max_std"] / 5
                else ""
            ),
        ]
    lines.append(f"  accuracy of this model's readout ({readout}): {probe['accuracy']:.2%}")
    for name, acc in probe["mean_replaced"].items():
        if name == "the only direction":  # one direction: the mean leaves nothing to read
            lines.append(f"    with the readout replaced by its mean over the images: {acc:.2%}")
        else:
            lines.append(
                f"    with its {name} half replaced by its mean over the images: {acc:.2%}"
            )
    return "\n".join(lines)


def output_picture(
    model: SeqClassifier, image: torch.Tensor, out_path: str | os.PathLike, title: str
) -> Path:
    """``output`` of one image (1, 28, 28) as a T x D*H heatmap; boxes mark the cells that are
    ``h_n``'s last-layer rows and, for a bidirectional model, the article's ``output[:, -1, :]``."""
    from matplotlib.patches import Rectangle

    from .figures import pyplot, save_figure

    output, _, _, _ = _run(model, image)
    out = output[0].float().numpy()  # (T, D*H)
    T, H, D = out.shape[0], model.config.hidden, model.num_directions
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(min(4 + D * H / 12, 16), 5.5))
    shown = ax.imshow(out, aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(shown, ax=ax, fraction=0.04).set_label("h (clipped to [-1, 1] for colour)")
    boxes = [
        (T - 1, 0, H, "tab:green", "-", "h_n[-2]: forward final state" if D == 2 else "h_n[-1]")
    ]
    if D == 2:
        boxes += [
            (0, H, H, "tab:purple", "-", "h_n[-1]: backward final state (after step 0)"),
            (T - 1, 0, 2 * H, "black", "--", "output[:, -1, :]: the article's readout"),
        ]
    for row, col, width, colour, style, label in boxes:
        inset = 0.0 if style == "--" else 0.2  # h_n's boxes inside the article's, both visible
        ax.add_patch(
            Rectangle(
                (col - 0.5 + inset, row - 0.5 + inset),
                width - 2 * inset,
                1 - 2 * inset,
                fill=False,
                lw=2,
                ls=style,
                ec=colour,
                label=label,
            )
        )
    if D == 2:
        ax.axvline(H - 0.5, color="black", lw=0.8)
    ax.set_xlabel("unit: " + ("forward 0..H-1 | backward H..2H-1" if D == 2 else "0..H-1"))
    ax.set_ylabel("time step t")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), fontsize=8, ncol=1)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_path)
