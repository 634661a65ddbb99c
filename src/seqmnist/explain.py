"""Watch a trained model read one image: what it believes after each step, its hidden state and
gates over time, and which pixels its answer rests on. Computations only; the pictures are drawn
by ``seqmnist.explain_plots``.

    import seqmnist
    clf = seqmnist.load("runs/default")
    reading = seqmnist.watch(clf, "seven.png")
    reading.probabilities   # (S, 10): P(digit) after the prefix of reading.steps[s] steps

Three views, each with one honest definition:

- prefix probabilities: the model run on the first t steps of its sequence, for t in ``steps``.
  That is the model's own answer had the image ended there; it holds for unidirectional and
  bidirectional, stacked models and every readout (a bidirectional model's backward direction
  then starts from step t - 1, not from the image's last step). At t = T it is the model's output.
- recurrent states: every layer and direction's hidden state (and, for an LSTM, its input,
  forget and output gates and its cell state; for a GRU its reset and update gates) recomputed
  step by step from the layer's weights with PyTorch's documented equations
  (``seqmnist.rnn_states``).
- integrated gradients (Captum) of the predicted digit's logit over the model's input, from a
  blank image in the model's input space (``seqmnist.attribution``).

This module computes the first view and ``watch`` gathers all three into one ``Reading``.

Shapes: T steps of F pixels (the reading order's), H hidden units per direction, D directions,
L layers, S prefix lengths (S = T up to ``max_steps``, else every k-th step and the last).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .attribution import Attribution, integrated_gradients
from .data import to_model_input
from .errors import ExplainError
from .rnn_states import LayerStates, layer_states, recurrent_states

# Prefix lengths shown for one image: all of them up to this many steps, else every k-th.
MAX_STEPS = 49


# --- prefix probabilities ----------------------------------------------------------------


def prefix_steps(total: int, max_steps: int = MAX_STEPS) -> list[int]:
    """Prefix lengths to run: 1..T when T <= ``max_steps``, else every k-th step with
    k = ceil(T / max_steps), ending at T (784 steps, max 49 -> 16, 32, ..., 784)."""
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise ExplainError(f"max_steps must be a whole number of at least 1; got {max_steps!r}")
    k = math.ceil(total / max_steps)
    steps = list(range(k, total + 1, k))
    if steps[-1] != total:
        steps.append(total)
    return steps


def logits_of_sequence(model: Any, sequence: torch.Tensor) -> torch.Tensor:
    """The model's head on a sequence it has already read: (B, t, F) -> (B, 10) logits, as
    ``forward`` computes them after ``read`` (before the softmax-output model's softmax)."""
    output, h_n = model.run_rnn(sequence)  # (B, t, D*H), (L*D, B, H)
    return model.head(model.dropout(model.readout(output, h_n)))


@torch.no_grad()
def prefix_probabilities(model: Any, images: torch.Tensor, steps: list[int]) -> torch.Tensor:
    """Model-input images (B, 28, 28) -> (B, S, 10): P(digit) after each prefix in ``steps``.

    One forward pass per prefix (cost: sum of ``steps`` recurrent steps per image)."""
    sequence = model.read(images)  # (B, T, F)
    rows = [torch.softmax(logits_of_sequence(model, sequence[:, :t]), dim=1) for t in steps]
    return torch.stack(rows, dim=1).float()  # (B, S, 10)


# --- one image, all views ----------------------------------------------------------------


@dataclass(repr=False)
class Reading:
    """What ``watch`` found for one image ("watch it read")."""

    image: np.ndarray
    """(28, 28) uint8, MNIST form: exactly what the model saw"""
    source: str | None
    """the file name, or None for an in-memory image"""
    order: str
    """the model's reading order: rows, columns, pixels or permuted"""
    sequence: np.ndarray
    """(T, F) pixel values 0-255: the image as the order made it a sequence"""
    pixel_index: np.ndarray
    """(T, F) int: which pixel of the row-major raster (0..783) step t, feature f reads"""
    steps: list[int]
    """prefix lengths, 1..T or every k-th step ending at T"""
    probabilities: np.ndarray
    """(S, 10): P(digit) after the prefix of ``steps[s]`` steps; the last row is the model's
    answer for the whole image"""
    states: list[LayerStates]
    """every layer and direction, layer by layer, forward first"""
    attribution: Attribution | None
    """integrated gradients of the predicted digit, or None when not asked for"""
    warnings: list[str] = field(default_factory=list)
    """what the preprocessing noticed (several digits, ink at the frame)"""

    @property
    def label(self) -> int:
        """The model's answer (the most probable digit after the whole sequence)."""
        return int(self.probabilities[-1].argmax())

    @property
    def every(self) -> int:
        """k: the prefixes are every k-th step (1 when every step is shown)."""
        return self.steps[1] - self.steps[0] if len(self.steps) > 1 else 1

    def __repr__(self) -> str:
        # one line: a notebook cell ending in `reading` should not print every array
        p = float(self.probabilities[-1].max())
        states = ", ".join(f"layer {s.layer} {s.direction}" for s in self.states) or "none"
        ig = "none" if self.attribution is None else f"{self.attribution.n_steps} IG steps"
        return (
            f"Reading(source={self.source!r}, order={self.order!r}, {self.steps[-1]} steps, "
            f"{len(self.steps)} prefixes, answer {self.label} (p={p:.2f}), states: {states}, "
            f"attribution: {ig})"
        )


def _mnist_pixels(image: Any) -> np.ndarray:
    """A digit in MNIST form (uint8 (28, 28), array or tensor) as a numpy array, else one line."""
    pixels = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.shape != (28, 28):
        raise ExplainError(
            f"mnist_form=True takes a uint8 (28, 28) digit; got {pixels.dtype} {pixels.shape}"
        )
    return pixels


def _source(image: Any) -> str | None:
    return str(image) if isinstance(image, (str, os.PathLike)) else None


def _order_maps(model: Any, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image as the order's sequence (T, F) and the raster index of each entry (T, F)."""
    device = model.head.weight.device  # the reader's permutation buffer lives there
    raster = torch.arange(28 * 28, dtype=torch.float32, device=device).reshape(1, 28, 28)
    with torch.no_grad():
        sequence = model.reader(torch.from_numpy(pixels).float()[None].to(device))[0].cpu()
        index = model.reader(raster)[0].long().cpu()  # float32 holds 0..783 exactly
    return sequence.numpy(), index.numpy()


def watch(
    classifier: Any,
    image: Any,
    *,
    max_steps: int = MAX_STEPS,
    attributions: bool = True,
    layout: str | None = None,
    value_range: Any = None,
    mnist_form: bool = False,
) -> Reading:
    """Watch ``classifier`` (from ``seqmnist.load``) read one image.

    ``image`` is anything ``Classifier.predict`` takes for one image (a file path, bytes, a PIL
    image, an array or a tensor, with ``layout`` / ``value_range`` as there); it goes through the
    same preprocessing. ``max_steps`` caps the prefixes run (every k-th step beyond it);
    ``attributions`` (needs Captum) adds integrated gradients. ``mnist_form``: ``image`` is a
    digit already in MNIST form, uint8 (28, 28) (an MNIST split's image), read exactly as it is
    instead of being prepared again. Raises ``ImageError`` for a bad image, ``ExplainError`` for a
    bad argument or a missing Captum.
    """
    model = classifier.model
    steps = prefix_steps(model.config.steps, max_steps)
    notes: list[str] = []
    if mnist_form:
        pixels = _mnist_pixels(image)
    else:
        pixels = classifier.preprocess(image, layout=layout, value_range=value_range, notes=notes)
    x = to_model_input(
        torch.from_numpy(pixels)[None].to(classifier.device), classifier.config.normalize
    )
    probabilities = prefix_probabilities(model, x, steps)[0].cpu().numpy()  # (S, 10)
    try:
        states = layer_states(recurrent_states(model.rnn, model.read(x)))
    except ExplainError:  # a layer type we cannot recompute: the other views still stand
        states = []
    attribution = None
    if attributions:
        target = int(probabilities[-1].argmax())
        with torch.backends.cudnn.flags(enabled=False):  # cuDNN's RNN backward needs train mode
            attribution = integrated_gradients(model, x, target, classifier.config.normalize)
    sequence, index = _order_maps(model, pixels)
    return Reading(
        pixels,
        _source(image),
        model.config.order,
        sequence,
        index,
        steps,
        probabilities,
        states,
        attribution,
        notes,
    )


# Prefixes the web API runs at most for one image (784-step orders: every 28th step); each
# prefix is a forward pass, so the opt-in reading costs about this many times a plain request.
SERVE_MAX_STEPS = 28


def reading_of(classifier: Any, image: np.ndarray, max_steps: int = SERVE_MAX_STEPS) -> dict:
    """JSON-friendly prefix probabilities of one (28, 28) uint8 MNIST-form image (what
    ``Prediction.image`` holds): {"order", "total_steps", "every", "steps", "probabilities"
    (S lists of 10)}. For the web API's opt-in ``reading`` field."""
    model = classifier.model
    steps = prefix_steps(model.config.steps, max_steps)
    images = torch.as_tensor(np.asarray(image, dtype=np.uint8))[None].to(classifier.device)
    with torch.inference_mode():
        x = to_model_input(images, classifier.config.normalize)
        probabilities = prefix_probabilities(model, x, steps)[0].cpu()  # (S, 10)
    return {
        "order": model.config.order,
        "total_steps": model.config.steps,
        "every": steps[1] - steps[0] if len(steps) > 1 else 1,
        "steps": steps,
        "probabilities": [[round(p, 5) for p in row] for row in probabilities.tolist()],
    }
