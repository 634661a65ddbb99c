"""Reading orders: how a model turns an image into the sequence its recurrent layer reads.

Every order reads all 784 pixels, as T steps of F pixels (T * F = 784):

    rows      (B, 28, 28) the image itself: step t = row t, top to bottom (the article's)
    columns   (B, 28, 28) the transpose: step t = column t, left to right
    pixels    (B, 784/K, K) the row-major raster (sequential MNIST), K pixels a step
    permuted  (B, 784/K, K) raster pixel ``perm[i]`` at position i (permuted MNIST), K a step

``perm = numpy.random.RandomState(seed).permutation(784)``; seed 92916 is the permutation of the
uRNN / expRNN line of work and the S4 code. The permutation is a non-persistent buffer: it is
rebuilt from the config (so old checkpoints, which lack it, still load strictly) and it follows
the model to its device. The reader is the first step of ``SeqClassifier.forward``, so exported
models (ONNX, TorchScript) keep taking plain images (B, 28, 28).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .config import IMAGE_PIXELS, ModelConfig


def pixel_permutation(seed: int) -> torch.Tensor:
    """The fixed pMNIST permutation: (784,) int64, ``RandomState(seed).permutation(784)``."""
    perm = np.random.RandomState(seed).permutation(IMAGE_PIXELS)
    return torch.from_numpy(perm.astype(np.int64))


class SequenceReader(nn.Module):
    """Images (B, 28, 28) float -> sequence (B, T, F), in the order ``config.order`` names."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.order = config.order
        self.steps = config.steps  # T
        self.features = config.features_per_step  # F
        perm = torch.empty(0, dtype=torch.long)  # unused by the other orders
        if config.order == "permuted":
            perm = pixel_permutation(config.permutation_seed)  # (784,)
        self.register_buffer("perm", perm, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.order == "rows":
            return images  # (B, 28 rows, 28 pixels)
        if self.order == "columns":
            return images.transpose(1, 2)  # (B, 28 columns, 28 pixels top to bottom)
        raster = images.flatten(1)  # (B, 784), row-major
        if self.order == "permuted":
            raster = raster.index_select(1, self.perm)  # (B, 784): raster[:, perm[i]] at i
        return raster.reshape(raster.shape[0], self.steps, self.features)  # (B, T, F)

    def extra_repr(self) -> str:
        return f"order={self.order}, steps={self.steps}, features={self.features}"
