"""Classify people's own images (files, arrays, tensors) with a trained model.

    import seqmnist
    clf = seqmnist.load("runs/default")          # a run directory or a checkpoint file
    for p in clf.predict(["seven.png", "two.jpg"]):
        print(p.source, p.label, p.top_k)

Every input goes through ``preprocess.to_mnist`` (an image already in MNIST form passes through
unchanged), then through the same normalisation the model was trained with
(``data.to_model_input`` with the run's ``TrainConfig.normalize``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image

from .config import TrainConfig
from .data import to_model_input
from .errors import SeqMnistError
from .images import ImageError
from .inputs import FILE_TYPES, InputError, InputItem, item_pixels, split_images
from .model import SeqClassifier, count_parameters
from .preprocess import load_mnist_image, to_mnist
from .trained import load_trained

# One image: a file path, raw file bytes, a PIL image, an array or a tensor (the rules of
# ``seqmnist.inputs``).
ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike, bytes, torch.Tensor]  # noqa: UP007

BATCH = 1024  # images per forward pass
LOW_CONFIDENCE = 0.5  # a top probability under this is reported as a warning


@dataclass
class Prediction:
    """The model's answer for one image."""

    label: int
    """the most probable digit"""
    probabilities: list[float]
    """probability of each digit 0-9"""
    top_k: list[tuple[int, float]]
    """the k most probable (digit, probability), best first"""
    image: np.ndarray = field(repr=False)
    """(28, 28) uint8: exactly what the model saw"""
    source: str | None = None
    """the file name, or None for in-memory images"""
    warnings: list[str] = field(default_factory=list)
    """things the user should know about this answer (several digits, ink at the frame, a
    low top probability, an ambiguous input layout, 12-bit samples assumed in a 16-bit file);
    each one line, empty when all is clear"""

    ok = True
    """a prediction (``FailedPrediction.ok`` is False)"""
    error = None
    """no error (``FailedPrediction.error`` holds one)"""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (the image left out)."""
        return {
            "source": self.source,
            "label": self.label,
            "probabilities": self.probabilities,
            "top_k": [[d, p] for d, p in self.top_k],
            "warnings": list(self.warnings),
        }


class FailedPrediction:
    """The result for an image in a list that could not be classified (unreadable, blank ...).

    ``ok`` is False and ``error`` is the ``SeqMnistError`` (its message names the file). Reading
    ``label``, ``probabilities``, ``top_k`` or ``image`` raises that error, so code that ignores
    failures still fails loudly at the bad item, not with a meaningless answer.
    """

    ok = False

    def __init__(self, error: SeqMnistError, source: str | None = None) -> None:
        self.error = error
        self.source = source

    def __getattr__(self, name: str) -> Any:
        if name in ("label", "probabilities", "top_k", "image"):
            raise self.error
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"FailedPrediction(source={self.source!r}, error={str(self.error)!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, FailedPrediction)
            and other.source == self.source
            and str(other.error) == str(self.error)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: the source and the error message (as ``seqmnist predict --json``)."""
        return {"source": self.source, "error": str(self.error)}


class PredictArgumentError(SeqMnistError):
    """An argument of ``Classifier.predict`` other than the images is wrong (top_k, errors)."""


ERROR_MODES = ("item", "raise")


class Classifier:
    """A trained ``SeqClassifier`` ready for inference, with the config it was trained under."""

    def __init__(
        self,
        model: SeqClassifier,
        config: TrainConfig,
        *,
        name: str = "model",
        path: str | os.PathLike | None = None,
        test_accuracy: float | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.name = name
        self.path = None if path is None else Path(path)
        self.test_accuracy = test_accuracy

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)

    def __repr__(self) -> str:
        acc = "" if self.test_accuracy is None else f", test_accuracy={self.test_accuracy:.4f}"
        return f"Classifier(name={self.name!r}, parameters={self.parameters:,}{acc})"

    # -- inputs ------------------------------------------------------------------------------

    def preprocess(
        self,
        x: ImageInput,
        *,
        layout: str | None = None,
        value_range: Any = None,
        notes: list[str] | None = None,
    ) -> np.ndarray:
        """One image of any accepted kind -> (28, 28) uint8 in MNIST form (what the model sees).

        ``layout`` and ``value_range`` as for ``predict``; ``notes``, if a list, receives the
        warnings about the image (several digits, ink at the frame). Raises ``ImageError``.
        """
        return preprocess_one(x, layout=layout, value_range=value_range, notes=notes)

    # -- inference ---------------------------------------------------------------------------

    def predict_mnist(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Images already in MNIST form, uint8 (B, 28, 28) -> probabilities (B, 10) on the CPU."""
        images = torch.as_tensor(batch)
        if images.ndim == 2:
            images = images.unsqueeze(0)
        if images.dtype != torch.uint8 or images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
            raise ImageError(
                f"predict_mnist takes uint8 (B, 28, 28); got {images.dtype} {tuple(images.shape)}"
            )
        outputs = []
        with torch.inference_mode():
            for start in range(0, images.shape[0], BATCH):
                x = to_model_input(
                    images[start : start + BATCH].to(self.device), self.config.normalize
                )
                out = self.model(x)  # (b, 10): logits, or probabilities for a softmax-output model
                if not self.model.config.softmax_output:
                    out = torch.softmax(out, dim=1)
                outputs.append(out.float().cpu())
        if not outputs:
            return torch.zeros((0, self.model.config.num_classes))
        return torch.cat(outputs)  # (B, 10)

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        top_k: int = 3,
        errors: str | None = None,
        *,
        layout: str | None = None,
        value_range: Any = None,
    ) -> list[Prediction | FailedPrediction]:
        """Classify one image or many; returns one result per image, in order.

        What ``images`` may be is the input contract of ``seqmnist.inputs`` (the README's
        table): file paths, file bytes, PIL images, numpy arrays and torch tensors, alone or in
        a list; arrays and tensors as (H, W), (H, W, C), (N, H, W), (N, C, H, W), (N, H, W, C)
        or flat rows (N, 784); uint8 0..255, other integers, bool, floats in 0..1, 0..255 or
        MNIST-normalised. Each item of a list is one image; a (3 or 4, H, W) array on its own
        is read as a batch of grey images, with an ``AmbiguousLayoutWarning`` and a line in each
        answer's ``warnings``.

        - ``layout``: "HW", "CHW", "HWC", "NHW", "NCHW", "NHWC" or "flat" states how an array
          or tensor is laid out (for a list: each item's layout), where the shape alone is
          ambiguous or read otherwise.
        - ``value_range``: (black, white), e.g. (0, 1), (0, 255), (-1, 1), or "mnist", for
          array and tensor pixels whose range the rules cannot tell (they then refuse).
        - ``errors``: what a bad image (unreadable, not an image, blank) does. ``"item"``: its
          result is a ``FailedPrediction`` (``ok`` False, ``error`` the ``ImageError`` naming
          it) and the other images still get theirs; ``"raise"``: the first bad image raises.
          ``None`` (default): "item" for a list or batch, "raise" for a single image.

        A call the contract refuses as a whole (a bad ``layout``, an ambiguous shape, Kaggle
        rows with their label column) raises ``InputError`` (an ``ImageError``), whatever
        ``errors`` says; ``top_k`` or ``errors`` of the wrong type or out of range raise
        ``PredictArgumentError``. ``Prediction.warnings`` documents what each answer may warn.
        """
        k = _check_top_k(top_k, self.model.config.num_classes)
        if errors is not None and errors not in ERROR_MODES:
            choices = ", ".join(map(repr, ERROR_MODES))
            raise PredictArgumentError(f"errors must be one of {choices}; got {errors!r}")
        items, single = split_images(images, layout)
        mode = errors or ("raise" if single else "item")
        results: list[Prediction | FailedPrediction | None] = [None] * len(items)
        seen, good, notes = [], [], []  # images (28, 28), their places in ``items``, warnings
        for n, item in enumerate(items):
            item_notes = list(item.notes)  # how it was read (an ambiguous layout), then more
            try:
                seen.append(_preprocess_item(item, value_range, item_notes))
                good.append(n)
                notes.append(item_notes)
            except SeqMnistError as exc:
                if mode == "raise":
                    raise
                results[n] = FailedPrediction(exc, item.source)
        batch = np.stack(seen) if seen else np.zeros((0, 28, 28), np.uint8)  # (G, 28, 28)
        probs = self.predict_mnist(torch.from_numpy(batch))  # (G, 10)
        best_p, best_i = probs.topk(k, dim=1)  # (G, k): once for the batch, then plain lists
        rows = zip(probs.tolist(), best_p.tolist(), best_i.tolist())
        for g, (n, (p, top_p, top_i)) in enumerate(zip(good, rows)):
            top_k = list(zip(top_i, top_p))
            results[n] = _prediction(p, top_k, batch[g], items[n].source, notes[g])
        return results  # type: ignore[return-value]  # every place is filled by now


def _prediction(
    probabilities: list[float],
    top_k: list[tuple[int, float]],
    image: np.ndarray,
    source: str | None,
    notes: list[str],
) -> Prediction:
    """One image's answer, with a warning when its top probability is low."""
    top = top_k[0][1]
    if top < LOW_CONFIDENCE:
        notes = [*notes, f"the model is unsure: its top answer has only {top:.0%} probability"]
    return Prediction(top_k[0][0], probabilities, top_k, image, source, warnings=notes)


def preprocess_one(
    x: ImageInput,
    *,
    layout: str | None = None,
    value_range: Any = None,
    notes: list[str] | None = None,
) -> np.ndarray:
    """One image of any kind the input contract accepts -> (28, 28) uint8 in MNIST form, without
    a model (``Classifier.preprocess``; ``seqmnist show`` and ``inspect`` use it for --image)."""
    items, _ = split_images(x, layout)
    if len(items) != 1:
        raise InputError(
            f"one image expected; got {len(items)}: for one colour or channel-first image pass "
            "layout= (e.g. layout='CHW'); for several, use predict"
        )
    return _preprocess_item(items[0], value_range, notes)


def _preprocess_item(item: InputItem, value_range: Any, notes: list[str] | None) -> np.ndarray:
    """One item of the contract -> (28, 28) uint8; errors name the file it came from."""
    pixels = item_pixels(item, value_range)  # path / bytes / PIL image, or float (H, W[, C])
    if isinstance(pixels, FILE_TYPES):
        return load_mnist_image(pixels, notes=notes)
    if isinstance(pixels, (Image.Image, np.ndarray)):
        return to_mnist(pixels, notes=notes)
    raise InputError(
        f"cannot predict on a {type(pixels).__name__}: pass a file path, bytes, a PIL image, "
        "a numpy array or a torch tensor"
    )


def load(path: str | os.PathLike, device: str = "cpu") -> Classifier:
    """A run directory (its best checkpoint) or a checkpoint file -> a ready ``Classifier``.

    ``device``: cpu, cuda, mps or auto.
    """
    trained = load_trained(path, device)
    return Classifier(
        trained.model,
        trained.config,
        name=trained.name,
        path=trained.checkpoint,
        test_accuracy=trained.test_accuracy(),
        device=trained.device,
    )


def _check_top_k(top_k: Any, classes: int) -> int:
    """``top_k`` as an int from 1 to ``classes``, or PredictArgumentError (never a TypeError)."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
        raise PredictArgumentError(
            f"top_k must be a whole number from 1 to {classes}; "
            f"got {top_k!r} ({type(top_k).__name__})"
        )
    if not 1 <= top_k <= classes:
        raise PredictArgumentError(f"top_k must be from 1 to {classes}; got {top_k}")
    return int(top_k)
