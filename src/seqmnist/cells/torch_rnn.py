"""What the cells built on PyTorch's ``nn.RNNBase`` share: constructor arguments, and the
initialisation of the memory gate's bias (``--gate-init``).

PyTorch keeps two bias vectors per layer and direction, ``bias_ih`` and ``bias_hh``, each the gate
blocks stacked in the cell's order (LSTM: i, f, g, o; GRU: r, z, n), (G*H,); a gate's
pre-activation adds both. An initial bias therefore goes into ``bias_ih`` and the same slice of
``bias_hh`` is zeroed, so the effective bias is the flag's value (public chrono code writes it
into both and so doubles it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import CellSpec


def rnn_kwargs(config: Any) -> dict[str, Any]:
    """``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` arguments from a ``ModelConfig``."""
    return {
        "input_size": config.features_per_step,
        "hidden_size": config.hidden,
        "num_layers": config.layers,
        "batch_first": True,
        "bidirectional": config.bidirectional,
        # PyTorch only applies this between stacked layers (it warns if layers == 1).
        "dropout": config.dropout if config.layers > 1 else 0.0,
    }


def _gate_slices(spec: CellSpec, hidden: int) -> dict[str, slice]:
    """Gate name -> its rows in a packed (G*H,) bias."""
    return {gate: slice(k * hidden, (k + 1) * hidden) for k, gate in enumerate(spec.gates)}


def _bias_pairs(rnn: nn.RNNBase) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(bias_ih, bias_hh) of every layer and direction: suffixes l0, l0_reverse, l1, ..."""
    params = dict(rnn.named_parameters())
    return [
        (params[name], params[name.replace("bias_ih_", "bias_hh_")])
        for name in params
        if name.startswith("bias_ih_")
    ]


@torch.no_grad()
def init_gate_biases(rnn: nn.RNNBase, spec: CellSpec, config: Any) -> None:
    """Set the memory gate's effective bias as ``config.gate_init`` says, in every layer and
    direction; "pytorch" touches nothing (no random draws either, so seeded runs reproduce).

    forget-bias: b = ``config.forget_bias``. chrono (Tallec & Ollivier, ICLR 2018):
    b ~ log U(1, T - 1) with T = ``config.steps``, one draw per unit, layer and direction; an LSTM's
    input gate gets b_i = -b. Runs on the meta device too (a checkpoint's skeleton): every tensor
    is made like the parameter it fills.
    """
    if config.gate_init == "pytorch":
        return
    rows = _gate_slices(spec, rnn.hidden_size)
    memory = rows[spec.memory_gate]
    for b_ih, b_hh in _bias_pairs(rnn):
        if config.gate_init == "forget-bias":
            bias = torch.full_like(b_ih[memory], config.forget_bias)  # (H,)
        else:  # chrono
            bias = b_ih.new_empty(rnn.hidden_size).uniform_(1.0, config.steps - 1).log_()  # (H,)
        b_ih[memory], b_hh[memory] = bias, 0.0
        if config.gate_init == "chrono" and "i" in rows:
            b_ih[rows["i"]], b_hh[rows["i"]] = -bias, 0.0


@torch.no_grad()
def effective_memory_bias(rnn: nn.Module, spec: CellSpec) -> torch.Tensor | None:
    """b_ih + b_hh of the memory gate, (L*D, H) in ``h_n``'s row order; None for a cell without
    one."""
    if spec.memory_gate is None:
        return None
    memory = _gate_slices(spec, rnn.hidden_size)[spec.memory_gate]
    return torch.stack([b_ih[memory] + b_hh[memory] for b_ih, b_hh in _bias_pairs(rnn)])
