"""What ``Classifier.predict`` accepts: the input contract, written and enforced in one place.

The Python API, ``seqmnist predict`` and the web API all reach the model through
``Classifier.predict``, and it hands its argument to ``split_images`` here, so every surface
follows the same rules. The rules (the README's "What predict accepts" table says the same):

Forms
    a file path (str or PathLike), the bytes of an image file, a PIL image, a numpy array, a
    torch tensor (any device; numpy and torch follow the same rules), or anything with
    ``__array__``; one of them, or a list / tuple of them.

Lists are images
    each item of a list is one image. A 3-D item is channels-first when its first dimension is
    1 to 4 ((1, 28, 28) as ``dataset[i][0]`` gives, ``ToTensor()(rgb)``), channels-last when its
    last is ((28, 28, 1), ``np.asarray(rgb_image)``); a (784,) or (1, 784) item is a flat row.
    Channels: 1 grey, 2 grey + alpha (Pillow's "LA"), 3 RGB, 4 RGBA.

One array or tensor
    ==========================  ===================================================
    shape                       read as
    ==========================  ===================================================
    (784,)                      one flat 28x28 image (a Kaggle CSV row)
    (N, 784)                    N flat images (N Kaggle CSV rows); 785 columns: the
                                label column is still there, so it is refused; rows
                                that change smoothly like one 784-px-wide picture
                                are refused too (``layout="HW"`` reads the picture)
    (H, W)                      one grey image
    (H, W, C), C in 1..4        one image, channels last
    (N, H, W)                   N grey images (MNIST's ``dataset.data``)
    (2, 3 or 4, H, W)           AMBIGUOUS: N = 2, 3 or 4 grey images (the default, so
                                that loops over batches keep working) or one image
                                channels first; a warning names ``layout=``
    (N, C, H, W)                N images, channels first (a DataLoader batch)
    (N, H, W, C)                N images, channels last (a Keras batch)
    ==========================  ===================================================

    Shapes that fit two readings with different answers and no default (``(3, 28, 3)``,
    ``(2, 3, 28, 3)``) are refused; ``layout=`` (one of LAYOUTS) states the reading and
    silences the warning.

Values (per image, so an image gives the same answer alone or in a batch)
    - bool: True white, False black (as Pillow's mode "1");
    - uint8, uint16 and other integers: 0..255 when no value is above 255 (also 8-bit samples
      in a 16-bit container, as Pillow reads such a PNG), 0..65535 when one is above 4095.
      Refused, to be said with ``value_range``: values from 256 to 4095 (12-bit samples, or a
      very dark 16-bit image?), only 0 and 1 (a mask: as 0..255 it would be blank), negative
      values, values above 65535;
    - floats (16, 32, 64 bit; bfloat16 tensors): MNIST-normalised, ``(x / 255 - 0.1307) /
      0.3081``, when the smallest is MNIST's black, -0.4242, and the largest at most its white,
      2.8215 (both to bfloat16's precision); else 0..1 when all lie in [-0.25, 1.25] (outside
      [0, 1] is the overshoot of bicubic or Lanczos resampling, clipped); else 0..255 when all
      lie in [-64, 319] and span at least 16 (less would be a blank image: small floats are
      normalised pixels, MNIST's without a black pixel or resized, or standardised, refused);
      anything else (``[-1, 1]``, larger values) refused: say which with ``value_range``. NaN
      and infinity are refused.
    - PIL images and files follow the same rules (a mode "F" image of MNIST-normalised floats
      is read as such), except where the file says more: 8-bit images are always 0..255, and a
      16-bit image's samples are 8-bit (none above 255), 12-bit (none above 4095: read so,
      with a warning) or 16-bit. They carry no ``value_range``; a refusal says how to save them.
    - a numpy masked array: its data when nothing is masked; masked pixels are refused (what
      is under the mask is the caller's to say: ``a.filled(0)``).

    ``value_range=(low, high)`` maps ``low`` to black and ``high`` to white for every array and
    tensor; ``value_range="mnist"`` undoes MNIST's normalisation. Values up to a quarter of the
    range outside it are clipped (resampling's overshoot); further out, the range is wrong and
    refused. Files and PIL images carry their own range and ignore it.

A refusal that concerns the whole call (a bad ``layout``, an ambiguous shape, 785 columns, a
nested list of numbers) raises ``InputError``; one that concerns one item of a list or batch
(an item that is not an image) becomes that item's ``FailedPrediction``.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .errors import InputError
from .pixel_values import require_numbers, to_unit_range, unmasked

LAYOUTS = ("HW", "CHW", "HWC", "NHW", "NCHW", "NHWC", "flat")
"""Names for ``layout=``: N images, C channels, H rows, W columns; "flat" is rows of 784 pixels
((784,) for one image, (N, 784) for N)."""

FLAT_PIXELS = 28 * 28
CHANNELS = (1, 2, 3, 4)  # grey, grey + alpha (Pillow's "LA" as an array), RGB, RGBA
COLOUR_NAMES = {2: "grey + alpha", 3: "RGB", 4: "RGBA"}
ROWS_SAMPLE = 8  # (N, 784) with at least this many rows is checked for being one wide image
FILE_TYPES = (str, os.PathLike, bytes, bytearray, memoryview)  # a path or an image file's bytes


class AmbiguousLayoutWarning(UserWarning):
    """A (3 or 4, H, W) array or tensor was read as a batch of grey images; ``layout=`` says
    which reading is meant and silences this."""


@dataclass
class InputItem:
    """One image to classify, as given: a path, bytes, PIL image or (H, W[, C]) array."""

    image: Any
    source: str | None  # the file name, or None for in-memory images
    layout: str | None = None  # for arrays: "HW", "CHW", "HWC" or "flat"; None to decide
    notes: tuple[str, ...] = ()  # what its answer's warnings must say about how it was read


# --- the call: one image or many ------------------------------------------------------------


def split_images(images: Any, layout: str | None = None) -> tuple[list[InputItem], bool]:
    """``predict``'s argument -> (its images one by one, whether it was a single image).

    Raises ``InputError`` for a call the contract refuses as a whole.
    """
    if layout is not None and layout not in LAYOUTS:
        choices = ", ".join(repr(name) for name in LAYOUTS)
        raise InputError(f"layout must be one of {choices}; got {layout!r}")
    if isinstance(images, (list, tuple)):
        _refuse_nested_numbers(images)
        if layout is not None and layout.startswith("N"):
            raise InputError(
                f"layout={layout!r} describes a batch, but a list holds one image per item: "
                "use 'HW', 'CHW', 'HWC' or 'flat'"
            )
        return [_item(x, layout) for x in images], False
    if isinstance(images, (Image.Image, *FILE_TYPES)):
        return [_item(images, layout)], True
    array = as_array(images)
    if array is None:
        return [InputItem(images, None)], True  # not an image: its own error, when it is read
    return _split_array(array, layout)


def _item(x: Any, layout: str | None) -> InputItem:
    source = str(x) if isinstance(x, (str, os.PathLike)) else None
    array = None if isinstance(x, (Image.Image, *FILE_TYPES)) else as_array(x)
    return InputItem(x if array is None else array, source, layout)


def _refuse_nested_numbers(items: Sequence[Any]) -> None:
    """[[0, 12, ...], ...] is pixels typed as Python lists: refuse rather than guess its shape."""
    if items and all(isinstance(x, (int, float, list, tuple)) for x in items):
        raise InputError(
            "a list of numbers (or of lists of numbers) is not an image: pass "
            "np.asarray(pixels) so that its shape says what it holds"
        )


def as_array(x: Any) -> np.ndarray | None:
    """A numpy array of a torch tensor (any device, detached) or array-like; None otherwise."""
    if isinstance(x, np.ndarray):
        return unmasked(x)
    torch = sys.modules.get("torch")  # no import: a tensor can only exist if torch is loaded
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype == torch.bfloat16:  # numpy has no bfloat16
            x = x.float()
        try:
            return x.cpu().resolve_conj().resolve_neg().numpy()
        except (RuntimeError, NotImplementedError, TypeError) as exc:  # meta, sparse, quantised
            raise InputError(
                f"cannot read the pixels of a {x.dtype} tensor on {x.device} "
                f"({type(exc).__name__}): pass a dense tensor with real values"
            ) from None
    if hasattr(x, "__array__"):
        return np.asarray(x)
    return None


def _split_array(a: np.ndarray, layout: str | None) -> tuple[list[InputItem], bool]:
    """One array -> its images (each (H, W), (H, W, C), (C, H, W) or flat) and ``single``."""
    # Before the shape: np.array of images of different sizes is a 1-D array of objects.
    require_numbers(a, " (for images of different sizes, pass a list of arrays)")
    given, layout = layout, layout or _infer_layout(a.shape)
    expected = {"HW": 2, "CHW": 3, "HWC": 3, "NHW": 3, "NCHW": 4, "NHWC": 4}
    if layout == "flat":
        if a.ndim not in (1, 2):
            raise InputError(f"layout='flat' takes (784,) or (N, 784); got shape {a.shape}")
        _check_flat_width(a.shape[-1])
        if a.ndim == 1:
            return [InputItem(a, None, "flat")], True
        if given is None and _rows_look_like_one_image(a):
            raise InputError(
                f"a {a.shape} array is read as {a.shape[0]} flat 28x28 images, but its rows "
                "change smoothly like one picture 784 pixels wide: pass layout='HW' for one "
                "image (or layout='flat' if these are rows)"
            )
        return [InputItem(row, None, "flat") for row in a], False
    if a.ndim != expected[layout]:
        raise InputError(
            f"layout={layout!r} needs {expected[layout]} dimensions; got shape {a.shape}"
        )
    if not layout.startswith("N"):
        return [InputItem(a, None, layout)], True
    notes = () if given else _ambiguity_notes(a.shape)
    return [InputItem(image, None, layout[1:], notes) for image in a], False


def _ambiguity_notes(shape: tuple[int, ...]) -> tuple[str, ...]:
    """A (2 | 3 | 4, H, W) array read as a batch by default: MNIST's ``data[:3]`` and
    ``ToTensor()(rgb)`` share this shape. Never silent: an ``AmbiguousLayoutWarning`` (Python
    shows it once per calling line) and a line in every one of its images' warnings."""
    if len(shape) != 3 or shape[0] not in COLOUR_NAMES:
        return ()
    note = (
        f"a {shape} array or tensor is read as {shape[0]} grey images; if it is one "
        f"{COLOUR_NAMES[shape[0]]} image channels first, pass layout='CHW' "
        "(layout='NHW' says it is a batch and silences this)"
    )
    warnings.warn(note, AmbiguousLayoutWarning, stacklevel=5)  # the line that called predict
    return (note,)


def _rows_look_like_one_image(rows: np.ndarray) -> bool:
    """(N, 784): are the rows neighbouring lines of one picture rather than N flat digits?
    Neighbouring lines of a picture differ far less than lines half the picture apart;
    separate digits (Kaggle rows) differ from their neighbours as much as from any other."""
    if rows.shape[0] < ROWS_SAMPLE:
        return False
    x = rows.astype(np.float32)
    near = float(np.abs(np.diff(x, axis=0)).mean())
    far = float(np.abs(x - np.roll(x, x.shape[0] // 2, axis=0)).mean())
    return far > 0 and near < 0.25 * far


def _infer_layout(shape: tuple[int, ...]) -> str:
    """The layout of one array or tensor from its shape (the module docstring's table)."""
    ndim = len(shape)
    if ndim == 1 or (ndim == 2 and shape[1] in (FLAT_PIXELS, FLAT_PIXELS + 1)):
        return "flat"
    if ndim == 2:
        return "HW"
    if ndim == 3:
        first, last = shape[0], shape[2]
        if last in CHANNELS and first in CHANNELS:
            raise _ambiguous(shape, "HWC", "NHW", "CHW")
        if last in CHANNELS:
            return "HWC"
        return "NHW"
    if ndim == 4 and (layout := _channels_side(shape, shape[1], shape[3], "NCHW", "NHWC")):
        return layout
    raise InputError(
        f"cannot read an array or tensor of shape {shape} as images: pass (H, W), (H, W, C), "
        "(N, H, W), (N, C, H, W), (N, H, W, C) with C = 1, 3 or 4, or flat rows (N, 784)"
    )


def _channels_side(
    shape: tuple[int, ...], first: int, last: int, channels_first: str, channels_last: str
) -> str | None:
    """Which end of an image's shape holds its 1, 3 or 4 channels: the layout named for that
    end, None for neither, or an ``InputError`` when both ends could."""
    if first in CHANNELS and last in CHANNELS:
        raise _ambiguous(shape, channels_first, channels_last)
    if first in CHANNELS:
        return channels_first
    return channels_last if last in CHANNELS else None


def _ambiguous(shape: tuple[int, ...], *readings: str) -> InputError:
    options = " or ".join(f"layout={name!r}" for name in readings)
    return InputError(f"shape {shape} fits more than one layout: pass {options}")


def _check_flat_width(width: int) -> None:
    if width == FLAT_PIXELS + 1:
        raise InputError(
            "rows of 785 values look like Kaggle's train.csv with its label column still in: "
            "drop the label first (rows[:, 1:], or df.drop(columns='label')); for one picture "
            "785 pixels wide, pass layout='HW'"
        )
    if width != FLAT_PIXELS:
        raise InputError(f"a flat image must have 784 values (28 x 28); got {width}")


# --- one image: layout and values -----------------------------------------------------------


def item_pixels(item: InputItem, value_range: Any = None) -> Any:
    """One item -> what preprocessing takes: a path, bytes or PIL image as given, or an array
    as float32 (H, W) / (H, W, 3 | 4) in [0, 1]. Raises ``InputError`` for an item that is
    not an image of the contract."""
    if not isinstance(item.image, np.ndarray):
        return item.image
    image = _channels_last(item.image, item.layout)  # (H, W) or (H, W, 3 | 4)
    return to_unit_range(image, value_range)


def _channels_last(a: np.ndarray, layout: str | None) -> np.ndarray:
    """One image array in any accepted layout -> (H, W) or (H, W, 3 | 4)."""
    layout = layout or _item_layout(a.shape)
    if layout == "flat":
        if a.ndim == 2 and a.shape[0] != 1:
            raise InputError(f"one flat image is (784,) or (1, 784); got shape {a.shape}")
        _check_flat_width(a.shape[-1])
        return a.reshape(28, 28)
    if layout == "CHW":
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 2:  # grey + alpha -> RGBA, which preprocessing composites
        a = a[:, :, [0, 0, 0, 1]]
    if a.ndim == 3 and a.shape[2] not in (3, 4):
        raise InputError(f"an image needs 1 to 4 channels; got shape {a.shape} ({layout})")
    return a


def _item_layout(shape: tuple[int, ...]) -> str:
    """The layout of one image given on its own (a list item): no batches here."""
    if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1 and shape[1] in (784, 785)):
        return "flat"
    if len(shape) == 2:
        return "HW"
    if len(shape) == 3:
        if layout := _channels_side(shape, shape[0], shape[2], "CHW", "HWC"):
            return layout
        raise InputError(
            f"a list item of shape {shape} is not one image (a batch of {shape[0]}?): "
            "pass the batch itself, not inside a list"
        )
    raise InputError(
        f"a list item of shape {shape} is not one image: each item must be (H, W), (C, H, W) "
        "or (H, W, C); pass a batch itself, not inside a list"
    )
