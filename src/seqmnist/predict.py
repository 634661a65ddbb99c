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
from .images import ImageError, open_image
from .model import SeqClassifier, count_parameters
from .preprocess import to_mnist
from .trained import load_trained

# One image: a PIL image, an array (H, W) / (H, W, C), a file path, raw file bytes, or a
# tensor (28, 28).
ImageInput = Union[Image.Image, np.ndarray, str, os.PathLike, bytes, torch.Tensor]  # noqa: UP007

BATCH = 1024  # images per forward pass


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

    def preprocess(self, x: ImageInput) -> np.ndarray:
        """One image of any accepted kind -> (28, 28) uint8 in MNIST form (what the model sees)."""
        if isinstance(x, (str, os.PathLike, bytes, bytearray, memoryview)):
            return _with_source(x, lambda: to_mnist(open_image(x)))
        if isinstance(x, torch.Tensor):
            x = _tensor_to_uint8(x)
            if x.ndim != 2:
                raise ImageError(
                    f"a single image tensor must be (28, 28) or (H, W); got shape {tuple(x.shape)}"
                )
        if isinstance(x, (Image.Image, np.ndarray)):
            return to_mnist(x)
        raise ImageError(
            f"cannot predict on a {type(x).__name__}: pass a file path, bytes, a PIL image, "
            "a numpy array or a torch tensor"
        )

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
    ) -> list[Prediction | FailedPrediction]:
        """Classify one image or a list of them; returns one result per image, in order.

        A batch tensor (B, 28, 28) or array (B, 28, 28) counts as B images. ``errors`` says what
        a bad image (unreadable, not an image, blank, a wrong type) does:

        - ``"item"``: its result is a ``FailedPrediction`` (``ok`` False, ``error`` the
          ``ImageError`` naming it); the other images still get their ``Prediction``.
        - ``"raise"``: the first bad image raises its ``ImageError``.
        - ``None`` (default): ``"item"`` for a list or batch, ``"raise"`` for a single image
          (there is nothing else to return).

        ``top_k`` or ``errors`` of the wrong type or out of range raise ``PredictArgumentError``.
        """
        k = _check_top_k(top_k, self.model.config.num_classes)
        if errors is not None and errors not in ERROR_MODES:
            choices = ", ".join(map(repr, ERROR_MODES))
            raise PredictArgumentError(f"errors must be one of {choices}; got {errors!r}")
        items, sources, single = _as_list(images)
        mode = errors or ("raise" if single else "item")
        results: list[Prediction | FailedPrediction | None] = [None] * len(items)
        seen, good = [], []  # the preprocessed images (28, 28) and their places in ``items``
        for n, item in enumerate(items):
            try:
                seen.append(self.preprocess(item))
                good.append(n)
            except SeqMnistError as exc:
                if mode == "raise":
                    raise
                results[n] = FailedPrediction(exc, sources[n])
        batch = np.stack(seen) if seen else np.zeros((0, 28, 28), np.uint8)  # (G, 28, 28)
        probs = self.predict_mnist(torch.from_numpy(batch))  # (G, 10)
        best_p, best_i = probs.topk(k, dim=1)  # (G, k)
        for g, n in enumerate(good):
            results[n] = Prediction(
                label=int(best_i[g, 0]),
                probabilities=[float(p) for p in probs[g]],
                top_k=[(int(d), float(p)) for d, p in zip(best_i[g], best_p[g])],
                image=batch[g],
                source=sources[n],
            )
        return results  # type: ignore[return-value]  # every place is filled by now


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


def _as_list(images: Any) -> tuple[list[Any], list[str | None], bool]:
    """Split the input into single images, each with its source name (None for in-memory), and
    whether it was a single image (not a list, tuple or batch)."""
    if isinstance(images, np.ndarray) and not _numeric(images.dtype):
        raise ImageError(
            f"an image array must hold numbers; got dtype {images.dtype} "
            "(for images of different sizes, pass a list of arrays)"
        )
    single = False
    if isinstance(images, torch.Tensor) and images.ndim == 3 and images.shape[-1] not in (3, 4):
        items: list[Any] = list(images)  # (B, H, W) batch
    elif isinstance(images, np.ndarray) and images.ndim == 3 and images.shape[-1] not in (1, 3, 4):
        items = list(images)  # (B, H, W) batch
    elif isinstance(images, (list, tuple)):
        items = list(images)
    else:
        items, single = [images], True
    sources = [str(x) if isinstance(x, (str, os.PathLike)) else None for x in items]
    return items, sources, single


def _numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "buif"  # bool, unsigned, int, float


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


def _tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """A tensor image, uint8 or float in [0, 1] -> uint8 numpy array."""
    x = x.detach().cpu()
    if x.dtype == torch.uint8:
        return x.numpy()
    if x.is_floating_point():
        return (x.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    raise ImageError(f"image tensors must be uint8 or float in [0, 1]; got {x.dtype}")


def _with_source(source: Any, fn: Any) -> np.ndarray:
    """Run ``fn`` and put the file name in front of a "no ink" error that lacks it."""
    try:
        return fn()
    except ImageError as exc:
        name = "upload" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
        message = str(exc)
        raise ImageError(message if message.startswith(name) else f"{name}: {message}") from None
