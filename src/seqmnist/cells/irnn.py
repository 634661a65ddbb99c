"""IRNN (Le, Jaitly & Hinton 2015): a ReLU RNN, h' = relu(W_ih x + b_ih + W_hh h + b_hh), whose
initialisation is its point: recurrent weights = identity, biases = 0, input weights a small
Gaussian (std 0.001, as the paper and Keras's mnist_irnn). With zero input it keeps its state."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .torch_rnn import rnn_kwargs

IRNN_INPUT_STD = 0.001


def build(config: Any) -> nn.RNN:
    rnn = nn.RNN(**rnn_kwargs(config), nonlinearity="relu")
    init_irnn(rnn)
    return rnn


@torch.no_grad()
def init_irnn(rnn: nn.RNN) -> None:
    """Identity recurrence, zero biases, N(0, 0.001^2) input weights, in every layer and
    direction (on the meta device too: tensors are made like the parameter they fill)."""
    for name, param in rnn.named_parameters():
        if name.startswith("weight_hh"):
            param.copy_(torch.eye(rnn.hidden_size, dtype=param.dtype, device=param.device))
        elif name.startswith("weight_ih"):
            param.normal_(0.0, IRNN_INPUT_STD)
        else:  # bias_ih_l*, bias_hh_l*
            param.zero_()
