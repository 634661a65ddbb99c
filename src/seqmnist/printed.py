"""Printed digits beside MNIST's handwriting in the training split (``--printed-digits N``).

MNIST holds only handwriting. Trained on it alone, a model reads a serif "1" as 2, a closed "4" as
9 and a bold "8" as 0, and which of those it gets wrong changes from seed to seed. The default
recipe therefore adds a fixed bank of printed digits to its training split: 2,700 images in MNIST
form (28 x 28 uint8, white on black), nine faces that matplotlib ships (STIX General in four styles,
Computer Modern roman, bold, sans, italic and typewriter), each digit drawn 30 times at its own
size, weight, width, slant and turn and read through ``preprocess.to_mnist``, the path a user's
photo takes. ``scripts/make_printed_digits.py`` rebuilt it; the bank is part of the package, so a
run never depends on the fonts a machine has. The validation and test splits stay pure MNIST.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np
import torch

from .config import PRINTED_BANK_SIZE
from .data import Split, derived_seed

BANK_FILE = "printed_digits.npz"
BANK_SIZE = PRINTED_BANK_SIZE  # images in the bank (config.py states the flags' ranges in it)
BANK_STREAM = 3  # derived_seed stream of the draw (0-2 belong to data.py's other draws)


@functools.cache
def printed_bank() -> tuple[Split, tuple[str, ...]]:
    """The whole bank, (2700, 28, 28) uint8 images and (2700,) labels, and its faces' families."""
    with resources.files(__package__).joinpath("samples", BANK_FILE).open("rb") as handle:
        stored = np.load(handle)
        images, labels = stored["images"], stored["labels"]
        families = tuple(str(name) for name in stored["families"])
    return Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())), families


def with_printed_digits(train: Split, count: int, seed: int) -> Split:
    """``train`` followed by ``count`` bank images, a seeded draw (all of them when ``count`` is
    the bank's size); ``count`` 0 returns ``train`` itself. The draw depends only on the seed, so
    a resumed run trains on the images it started with."""
    if count <= 0:
        return train
    bank, _ = printed_bank()
    generator = torch.Generator().manual_seed(derived_seed(seed, 0, stream=BANK_STREAM))
    keep = torch.randperm(len(bank), generator=generator)[:count]
    return Split(
        torch.cat([train.images, bank.images[keep]]), torch.cat([train.labels, bank.labels[keep]])
    )
