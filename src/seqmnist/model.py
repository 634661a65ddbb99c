"""``SeqClassifier``: reads an image as a sequence with a recurrent network, returns logits.

Shapes (batch_first throughout): B images, T time steps, F features (pixels) per step, with
T * F = 784 fixed by the reading order (``config.steps``, ``config.features_per_step``): 28 x 28
for rows and columns, 784/K x K for pixels and permuted. H hidden units per direction, D = 2 if
bidirectional else 1, L layers.

    images (B, 28, 28) -> read -> x (B, T, F)
        -> rnn -> output (B, T, D*H), h_n (L*D, B, H) [, c_n (L*D, B, H) for LSTM]
        -> readout (B, D*H) -> dropout -> Linear -> logits (B, 10)
"""

from __future__ import annotations

import torch
from torch import nn

from .cells import cell_spec
from .config import ModelConfig
from .sequence import SequenceReader


def build_rnn(config: ModelConfig) -> nn.Module:
    """The recurrent layers the config's cell declares (cells/), initialised as it says."""
    return cell_spec(config.cell).builder()(config)


class SeqClassifier(nn.Module):
    """Recurrent classifier over an image read in ``config.order``. ``forward`` returns logits
    (or, for the article's recipe with ``softmax_output``, probabilities - which is exactly its
    flaw)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.reader = SequenceReader(config)  # no parameters, no state_dict entries
        self.rnn = build_rnn(config)
        self.num_directions = 2 if config.bidirectional else 1
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.num_directions * config.hidden, config.num_classes)

    def read(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 28, 28) -> the sequence the rnn reads, (B, T, F)."""
        return self.reader(images)

    def run_rnn(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sequence (B, T, F), from ``read`` -> output (B, T, D*H), h_n (L*D, B, H).
        For an LSTM, c_n is dropped here."""
        output, state = self.rnn(x)
        h_n, _c_n = cell_spec(self.config.cell).final_states(state)
        return output, h_n

    def readout(self, output: torch.Tensor, h_n: torch.Tensor) -> torch.Tensor:
        """Reduce the sequence to one vector per image: (B, D*H)."""
        kind = self.config.readout
        if kind == "final":
            # Last layer's final states: forward = h_n[-2] (after step T-1), backward = h_n[-1]
            # (after step 0). Concatenated [forward, backward], as nn.LSTM lays out `output`.
            last_layer = h_n[-self.num_directions :]  # (D, B, H)
            return torch.cat(list(last_layer), dim=1)  # (B, D*H)
        if kind == "last":
            # The article's readout: the backward half here has read only the last step.
            return output[:, -1, :]  # (B, D*H)
        return output.mean(dim=1)  # "mean": (B, D*H)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 28, 28) float -> logits (B, 10)."""
        output, h_n = self.run_rnn(self.read(images))
        logits = self.head(self.dropout(self.readout(output, h_n)))  # (B, 10)
        if self.config.softmax_output:
            return torch.softmax(logits, dim=1)
        return logits


def build_model(config: ModelConfig) -> SeqClassifier:
    """The factory checkpoints use to rebuild a model from its saved ``model_config``."""
    return SeqClassifier(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def recurrent_macs_per_sample(config: ModelConfig, steps: int | None = None) -> int:
    """Multiply-adds of the recurrent layers for one image, forward pass only.

    Per step and direction: the cell's declared multiply-adds (cells/: G gate blocks of
    x @ W_ih^T and h @ W_hh^T, G * H * (in + H), with G = 4 for an LSTM, 3 for a GRU, 1 for an RNN).
    Layer 1 reads F pixels, later layers read D*H features; ``steps`` defaults to the order's T.
    """
    steps = config.steps if steps is None else steps
    spec = cell_spec(config.cell)
    directions = 2 if config.bidirectional else 1
    total = 0
    for layer in range(config.layers):
        inputs = config.features_per_step if layer == 0 else directions * config.hidden
        total += spec.macs_per_step(inputs, config.hidden) * steps * directions
    return total
