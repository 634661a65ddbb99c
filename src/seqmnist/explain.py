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
  step by step from the layer's weights with PyTorch's documented equations. Layer l + 1 reads
  [forward | backward] of layer l, as ``nn.LSTM`` does. Tests check the recomputation against
  ``nn.LSTM`` / ``nn.GRU``'s own output, h_n and c_n.
- integrated gradients (Captum) of the predicted digit's logit over the model's input, from a
  baseline that is a blank image in the model's input space: (0 - 0.1307) / 0.3081 per pixel
  for a normalising recipe, 0 for the article's ToTensor scaling.

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
from torch import nn

from .data import to_model_input
from .errors import SeqMnistError

# Prefix lengths shown for one image: all of them up to this many steps, else every k-th.
MAX_STEPS = 49
# Integrated gradients: start with this many steps and double until the completeness gap
# (Captum's delta) is under IG_TOLERANCE of |F(image) - F(baseline)|, up to IG_MAX_STEPS.
IG_START_STEPS = 32
IG_MAX_STEPS = 1024
IG_TOLERANCE = 0.05
# Below this |gap| the output barely moves (an untrained model): 5 % of it would be float
# noise that no number of steps meets, so the tolerance is 5 % of this much instead.
IG_MIN_GAP = 1e-3

LSTM_GATES = ("input", "forget", "cell_input", "output")  # PyTorch's row blocks i, f, g, o
GRU_GATES = ("reset", "update", "new")  # r, z, n


class ExplainError(SeqMnistError):
    """Something ``explain`` cannot do with this model or these arguments."""


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


# --- recurrent states recomputed from the weights ----------------------------------------


@dataclass
class LayerStates:
    """One layer and direction of the recurrent stack, over time; each array (T, H), in sequence
    order (index t is the state after reading step t; the backward direction reads T-1 down to
    t, so its state at t has seen steps t..T-1)."""

    layer: int
    direction: str  # "forward" or "backward"
    hidden: np.ndarray
    gates: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (T, H), in 0..1
    cell: np.ndarray | None = None  # the LSTM's cell state c_t; None for other cells


def _weights(rnn: nn.RNNBase, layer: int, reverse: bool) -> tuple[torch.Tensor, ...]:
    """(W_ih (G*H, in), W_hh (G*H, H), b_ih (G*H,), b_hh (G*H,)); zero biases if bias=False."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    w_ih, w_hh = getattr(rnn, "weight_ih" + suffix), getattr(rnn, "weight_hh" + suffix)
    if rnn.bias:
        return w_ih, w_hh, getattr(rnn, "bias_ih" + suffix), getattr(rnn, "bias_hh" + suffix)
    zero = torch.zeros(w_ih.shape[0], dtype=w_ih.dtype, device=w_ih.device)
    return w_ih, w_hh, zero, zero


def _lstm_steps(x: torch.Tensor, w: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """nn.LSTM's equations over x (B, T, in), zero initial state -> name -> (B, T, H)."""
    w_ih, w_hh, b_ih, b_hh = w
    hidden_size = w_hh.shape[1]
    inputs = x @ w_ih.T + b_ih  # (B, T, 4H): the input's part of every gate, all steps at once
    h = c = x.new_zeros(x.shape[0], hidden_size)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in (*LSTM_GATES, "cell", "hidden")}
    for t in range(x.shape[1]):
        i, f, g, o = (inputs[:, t] + h @ w_hh.T + b_hh).chunk(4, dim=1)  # each (B, H)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        h = o * torch.tanh(c)
        for name, value in zip((*LSTM_GATES, "cell", "hidden"), (i, f, g, o, c, h)):
            out[name].append(value)
    return {name: torch.stack(values, dim=1) for name, values in out.items()}


def _gru_steps(x: torch.Tensor, w: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """nn.GRU's equations: r, z from input + hidden; n = tanh(W_in x + b_in + r * (W_hn h +
    b_hn)); h = (1 - z) * n + z * h."""
    w_ih, w_hh, b_ih, b_hh = w
    inputs = x @ w_ih.T + b_ih  # (B, T, 3H)
    h = x.new_zeros(x.shape[0], w_hh.shape[1])
    out: dict[str, list[torch.Tensor]] = {k: [] for k in (*GRU_GATES, "hidden")}
    for t in range(x.shape[1]):
        xr, xz, xn = inputs[:, t].chunk(3, dim=1)
        hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        for name, value in zip((*GRU_GATES, "hidden"), (r, z, n, h)):
            out[name].append(value)
    return {name: torch.stack(values, dim=1) for name, values in out.items()}


def _rnn_steps(x: torch.Tensor, w: tuple[torch.Tensor, ...], relu: bool) -> dict[str, Any]:
    """nn.RNN's equation: h = tanh (or relu)(W_ih x + b_ih + W_hh h + b_hh)."""
    w_ih, w_hh, b_ih, b_hh = w
    inputs = x @ w_ih.T + b_ih  # (B, T, H)
    act = torch.relu if relu else torch.tanh
    h = x.new_zeros(x.shape[0], w_hh.shape[1])
    hidden = []
    for t in range(x.shape[1]):
        h = act(inputs[:, t] + h @ w_hh.T + b_hh)
        hidden.append(h)
    return {"hidden": torch.stack(hidden, dim=1)}


def _cell_steps(rnn: nn.RNNBase) -> Any:
    """The step function for this layer type, or ExplainError for one we cannot recompute."""
    if getattr(rnn, "proj_size", 0):
        raise ExplainError("cannot recompute the states of an LSTM with proj_size")
    if isinstance(rnn, nn.LSTM):
        return _lstm_steps
    if isinstance(rnn, nn.GRU):
        return _gru_steps
    if isinstance(rnn, nn.RNN):
        relu = rnn.nonlinearity == "relu"
        return lambda x, w: _rnn_steps(x, w, relu)
    raise ExplainError(f"cannot recompute the states of a {type(rnn).__name__} layer")


@torch.no_grad()
def recurrent_states(rnn: nn.RNNBase, sequence: torch.Tensor) -> list[list[dict[str, Any]]]:
    """Recompute every layer and direction of ``rnn`` (batch_first) on ``sequence`` (B, T, F)
    from its weights: [layer][direction] -> name -> (B, T, H) tensors, in sequence order.

    Names: "hidden" always; LSTM: "input", "forget", "cell_input" (g), "output", "cell"; GRU:
    "reset", "update", "new". Layer l + 1 reads cat([forward, backward], dim=2) of layer l
    (dropout between layers is a training-time thing and is left out, as in eval mode).
    """
    steps = _cell_steps(rnn)
    directions = 2 if rnn.bidirectional else 1
    layers, x = [], sequence
    for layer in range(rnn.num_layers):
        states = []
        for d in range(directions):
            reverse = d == 1
            seen = x.flip(1) if reverse else x  # the backward direction reads T-1 first
            result = steps(seen, _weights(rnn, layer, reverse))
            states.append({k: v.flip(1) if reverse else v for k, v in result.items()})
        layers.append(states)
        x = torch.cat([s["hidden"] for s in states], dim=2)  # (B, T, D*H)
    return layers


def final_states(layers: list[list[dict[str, Any]]], name: str = "hidden") -> torch.Tensor:
    """h_n (or c_n with name="cell") as nn.LSTM lays it out, (L*D, B, H), from recomputed
    states: forward's state after step T-1, backward's after step 0."""
    finals = []
    for states in layers:
        for d, state in enumerate(states):
            finals.append(state[name][:, 0 if d == 1 else -1])
    return torch.stack(finals)


def _layer_states(layers: list[list[dict[str, Any]]]) -> list[LayerStates]:
    """Image 0 of recomputed states as ``LayerStates`` (numpy, (T, H) each)."""
    result = []
    for layer, states in enumerate(layers):
        for d, state in enumerate(states):
            arrays = {k: v[0].cpu().numpy() for k, v in state.items()}
            hidden, cell = arrays.pop("hidden"), arrays.pop("cell", None)
            direction = "backward" if d == 1 else "forward"
            result.append(LayerStates(layer, direction, hidden, arrays, cell))
    return result


# --- integrated gradients ----------------------------------------------------------------


def blank_baseline(normalize: bool, device: Any = "cpu") -> torch.Tensor:
    """A blank (all-black) image in the model's input space, (1, 28, 28): the pixel value 0
    after the run's normalisation ((0 - 0.1307) / 0.3081 = -0.4242 when it standardises)."""
    return to_model_input(torch.zeros(1, 28, 28, dtype=torch.uint8, device=device), normalize)


@dataclass
class Attribution:
    """Integrated gradients of one digit's output over the model's input."""

    pixels: np.ndarray  # (28, 28): each pixel's share of output(image) - output(baseline)
    target: int  # the digit whose output is explained (the prediction by default)
    delta: float  # Captum's convergence delta: sum(pixels) - (output(image) - output(baseline))
    gap: float  # output(image) - output(baseline)
    n_steps: int  # integration steps used (doubled until |delta| < 5 % of |gap|)


def integrated_gradients(
    model: Any, image: torch.Tensor, target: int, normalize: bool
) -> Attribution:
    """Captum's IntegratedGradients of ``model``'s output ``target`` for one model-input image
    (1, 28, 28), from ``blank_baseline``. n_steps doubles from 32 until Captum's delta is under
    5 % of |output(image) - output(baseline)| (of 1e-3 when the gap is smaller), or 1024 steps:
    then the delta says how far."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        raise ExplainError(
            "pixel attributions need Captum: pip install 'seqmnist[notebook]'"
        ) from None
    baseline = blank_baseline(normalize, image.device)
    with torch.no_grad():
        outputs = model(torch.cat([image, baseline]))[:, target]  # (2,)
    gap = float(outputs[0] - outputs[1])
    ig = IntegratedGradients(model)
    n_steps = IG_START_STEPS
    with torch.enable_grad():
        while True:
            attr, delta = ig.attribute(
                image, baseline, target=target, n_steps=n_steps, return_convergence_delta=True
            )
            tolerance = IG_TOLERANCE * max(abs(gap), IG_MIN_GAP)
            done = abs(float(delta)) < tolerance or n_steps >= IG_MAX_STEPS
            if done:
                break
            n_steps *= 2
    pixels = attr[0].detach().cpu().numpy()  # (28, 28)
    return Attribution(pixels, int(target), float(delta), gap, n_steps)


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
        states = _layer_states(recurrent_states(model.rnn, model.read(x)))
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
