"""An RNN's states recomputed from its weights, step by step, with PyTorch's documented equations:
every layer and direction's hidden state and, for an LSTM, its input, forget and output gates
and cell state; for a GRU its reset and update gates. ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``
return only the hidden states of the last layer, so "watch it read" recomputes the rest here.

Layer l + 1 reads [forward | backward] of layer l, as ``nn.LSTM`` does. Tests check the
recomputation against PyTorch's own output, h_n and c_n.

Shapes: B images, T steps, H hidden units per direction, D directions, L layers, G gates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ExplainError

LSTM_GATES = ("input", "forget", "cell_input", "output")  # PyTorch's row blocks i, f, g, o
GRU_GATES = ("reset", "update", "new")  # r, z, n


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


def layer_states(layers: list[list[dict[str, Any]]]) -> list[LayerStates]:
    """Image 0 of recomputed states as ``LayerStates`` (numpy, (T, H) each)."""
    result = []
    for layer, states in enumerate(layers):
        for d, state in enumerate(states):
            arrays = {k: v[0].cpu().numpy() for k, v in state.items()}
            hidden, cell = arrays.pop("hidden"), arrays.pop("cell", None)
            direction = "backward" if d == 1 else "forward"
            result.append(LayerStates(layer, direction, hidden, arrays, cell))
    return result
