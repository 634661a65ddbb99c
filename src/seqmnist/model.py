"""``SeqClassifier``: a recurrent network that reads an image row by row and returns logits.

Shapes (batch_first throughout): B images, T = 28 time steps (rows), F = 28 features (pixels per
row), H hidden units per direction, D = 2 if bidirectional else 1, L layers.

    x (B, T, F) -> rnn -> output (B, T, D*H), h_n (L*D, B, H) [, c_n (L*D, B, H) for LSTM]
                -> readout (B, D*H) -> dropout -> Linear -> logits (B, 10)
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class SeqClassifier(nn.Module):
    """Recurrent classifier over image rows. ``forward`` returns logits (or, for the article's
    recipe with ``softmax_output``, probabilities - which is exactly its flaw)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.rnn = _CELLS[config.cell](
            input_size=config.input_size,
            hidden_size=config.hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=config.bidirectional,
            # PyTorch only applies this between stacked layers (it warns if layers == 1).
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.num_directions = 2 if config.bidirectional else 1
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.num_directions * config.hidden, config.num_classes)

    def run_rnn(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) -> output (B, T, D*H), h_n (L*D, B, H). For an LSTM, c_n is dropped here."""
        output, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state
        return output, h_n

    def readout(self, output: torch.Tensor, h_n: torch.Tensor) -> torch.Tensor:
        """Reduce the sequence to one vector per image: (B, D*H)."""
        kind = self.config.readout
        if kind == "final":
            # Last layer's final states: forward = h_n[-2] (after row 27), backward = h_n[-1]
            # (after row 0). Concatenated [forward, backward], as nn.LSTM lays out `output`.
            last_layer = h_n[-self.num_directions :]  # (D, B, H)
            return torch.cat(list(last_layer), dim=1)  # (B, D*H)
        if kind == "last":
            # The article's readout: the backward half here has read only the last row.
            return output[:, -1, :]  # (B, D*H)
        return output.mean(dim=1)  # "mean": (B, D*H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 28, 28) float -> logits (B, 10)."""
        output, h_n = self.run_rnn(x)
        logits = self.head(self.dropout(self.readout(output, h_n)))  # (B, 10)
        if self.config.softmax_output:
            return torch.softmax(logits, dim=1)
        return logits


def build_model(config: ModelConfig) -> SeqClassifier:
    """The factory checkpoints use to rebuild a model from its saved ``model_config``."""
    return SeqClassifier(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def recurrent_macs_per_sample(config: ModelConfig, steps: int = 28) -> int:
    """Multiply-adds of the recurrent layers for one image, forward pass only.

    Per step and direction a cell computes G gate blocks of x @ W_ih^T and h @ W_hh^T:
    G * H * (in + H) multiply-adds, with G = 4 (LSTM), 3 (GRU), 1 (RNN). Layer 1 reads F pixels,
    later layers read D*H features. Elementwise gate maths is left out (it is not matmul work).
    """
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[config.cell]
    directions = 2 if config.bidirectional else 1
    total = 0
    for layer in range(config.layers):
        inputs = config.input_size if layer == 0 else directions * config.hidden
        total += gates * config.hidden * (inputs + config.hidden) * steps * directions
    return total
