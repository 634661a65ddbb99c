"""GRU: PyTorch's ``nn.GRU``, gates packed r, z, n (its documented update rule):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      reset gate
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)      update gate: the memory gate
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

z near 1 keeps h (memory for about 1 / (1 - z) steps), so memory needs b_z > 0; ``--gate-init``
sets b_iz + b_hz (forget-bias: the flag's value; chrono: log U(1, T - 1)). The GRU has no separate
input gate (1 - z plays that part), so chrono sets z alone.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from . import cell_spec
from .torch_rnn import init_gate_biases, rnn_kwargs


def build(config: Any) -> nn.GRU:
    rnn = nn.GRU(**rnn_kwargs(config))
    init_gate_biases(rnn, cell_spec("gru"), config)
    return rnn
