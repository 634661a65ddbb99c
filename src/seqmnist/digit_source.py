"""Which digit a view shows: ``--index N`` of an MNIST split, or ``--image FILE`` read through
predict's input contract (inputs.py), so every view (``show --as-sequence``, ``inspect``) can
open the same digit another view named (the error gallery's captions, ``evaluate --json``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from .data import Split
from .errors import SeqMnistError


@dataclass
class Digit:
    """One image in MNIST form, (28, 28) uint8, its label if known and where it came from."""

    image: torch.Tensor
    label: int | None
    source: str  # "test image 8" or the file's path
    warnings: list[str] = field(default_factory=list)  # what reading the file noticed, as predict's


def pick_digit(
    split: Split | None,
    split_name: str,
    index: int | None,
    image_file: str | os.PathLike | None,
) -> Digit:
    """The digit ``--index`` or ``--image`` names (index 0 when neither is given)."""
    if image_file is not None:
        if index is not None:
            raise SeqMnistError("--index and --image both name a digit: pass one of them")
        from .predict import preprocess_one  # the same contract as `seqmnist predict`

        notes: list[str] = []
        pixels = preprocess_one(os.fspath(image_file), notes=notes)  # (28, 28) uint8
        return Digit(torch.from_numpy(pixels), None, os.fspath(image_file), notes)
    assert split is not None, "a split is needed without --image"
    index = 0 if index is None else index
    if not 0 <= index < len(split):
        raise SeqMnistError(
            f"--index {index} is outside the {split_name} split: it has {len(split):,} images "
            f"(0 to {len(split) - 1})"
        )
    return Digit(split.images[index], int(split.labels[index]), f"{split_name} image {index}")
