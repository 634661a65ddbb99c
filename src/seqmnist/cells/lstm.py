"""LSTM: PyTorch's ``nn.LSTM``, gates packed i, f, g, o.

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate: the memory gate
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c' = f * c + i * g,   h' = o * tanh(c')

With f near 1 the cell state is kept for about 1 / (1 - f) steps; PyTorch's init starts f near
0.5. ``--gate-init`` sets b_if + b_hf (and, for chrono, b_ii + b_hi = -that).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from . import cell_spec
from .torch_rnn import init_gate_biases, rnn_kwargs


def build(config: Any) -> nn.LSTM:
    rnn = nn.LSTM(**rnn_kwargs(config))
    init_gate_biases(rnn, cell_spec("lstm"), config)
    return rnn
