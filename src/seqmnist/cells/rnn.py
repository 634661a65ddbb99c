"""Plain (Elman) RNN: ``nn.RNN`` with tanh, h' = tanh(W_ih x + b_ih + W_hh h + b_hh). No gates,
so it takes no ``--gate-init`` but PyTorch's."""

from __future__ import annotations

from typing import Any

from torch import nn

from .torch_rnn import rnn_kwargs


def build(config: Any) -> nn.RNN:
    return nn.RNN(**rnn_kwargs(config), nonlinearity="tanh")
