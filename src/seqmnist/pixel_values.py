"""The input contract's value rules: which black and white an array's numbers stand for.

``inputs.py`` writes the whole contract down (its "Values" section); this module is the one
place that applies its value rules, so that ``Classifier.predict`` and a direct call of
``preprocess.to_mnist`` / ``images.to_grey`` on an array read the same numbers the same way
(a uint16 array of 8-bit samples was once read right by one and as blank by the other).
PIL images and files follow the same rules where their mode says no more than an array would
(``pil_pixels_to_unit``): 8-bit modes are 0..255, a 16-bit image's samples are judged by its
brightest, float ("F") images are arrays.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .data import MNIST_MEAN, MNIST_STD
from .errors import InputError

MNIST_BLACK = (0.0 - MNIST_MEAN) / MNIST_STD  # -0.4242: a 0 pixel after MNIST's normalisation
MNIST_WHITE = (1.0 - MNIST_MEAN) / MNIST_STD  # 2.8215
OVERSHOOT = 0.25  # floats this far outside their range are resampling's overshoot: clipped
BFLOAT16_TOLERANCE = 2**-7  # relative: bfloat16 keeps 8 significant bits
FLOAT64_MAX = float(np.finfo(np.float64).max)
PIL_REMEDY = (
    "save it with 8-bit samples (0 to 255); in Python, np.array(image) with "
    "value_range=(black, white) also says what they are"
)
PASS_VALUE_RANGE = "pass value_range=(black, white), e.g. (0, 1), (0, 255), (-1, 1) or 'mnist'"
MIN_SPREAD_0_255 = 16.0  # floats read as 0..255 span at least this: 6 % of white, the least
# contrast preprocessing calls ink (preprocess.MIN_INK_CONTRAST); less would be a blank image


def require_numbers(a: np.ndarray, hint: str = "") -> None:
    """Refuse complex, strings, objects, dates ...: pixels are bool, int or float."""
    if a.dtype.kind not in "biuf":
        raise InputError(
            f"an image array must hold numbers (bool, int or float); got dtype {a.dtype}{hint}"
        )


class Refusal(NamedTuple):
    """How a refusal names the pixels ("uint16 pixels", "a 16-bit image") and their fix."""

    what: str
    remedy: str  # empty: pass value_range


def unmasked(a: np.ndarray) -> np.ndarray:
    """A numpy masked array -> its data when nothing is masked; masked pixels are refused: what
    lies under the mask (black, white, the data) is the caller's to say, never guessed."""
    if not isinstance(a, np.ma.MaskedArray):
        return a
    if np.ma.is_masked(a):
        raise InputError(
            "a masked array: say what its masked pixels are, e.g. a.filled(0) for black, "
            "or a.data to keep the values under the mask"
        )
    return np.ma.getdata(a)


def to_unit_range(
    a: np.ndarray, value_range: Any = None, *, what: str = "", remedy: str = ""
) -> np.ndarray:
    """Pixels of any accepted dtype -> a new float32 array in [0, 1] by the contract's value
    rules (the shape is kept: (H, W) or (H, W, C)). A refusal names the pixels (``what``, else
    their dtype) and the fix (``remedy``, else ``value_range``: a file or PIL image has none)."""
    require_numbers(a)
    if a.size == 0:
        raise InputError(f"image has no pixels (shape {a.shape})")
    if value_range is None:  # the two commonest forms, kept cheap (predict reads every image
        # twice: its argument, then the float32 in [0, 1] that to_mnist is handed)
        if a.dtype == np.uint8 and a.max() > 1:
            return a.astype(np.float32) / 255.0
        if a.dtype == np.float32 and a.min() >= 0.0 and a.max() <= 1.0:  # False for NaN
            return a.copy()
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise InputError("image array holds NaN or infinite values")
    if a.dtype.kind == "f" and a.dtype.itemsize > 8:  # long double: its extremes overflow float64
        a = np.clip(a, -FLOAT64_MAX, FLOAT64_MAX).astype(np.float64)
    low, high = _value_range(a, value_range, Refusal(what or f"{a.dtype} pixels", remedy))
    x = (a.astype(np.float64) - low) / (high - low)
    # With a range given, a little outside it is resampling's overshoot (bicubic, Lanczos) and
    # is clipped; far outside, the range is wrong (0..255 pixels given as (0, 1)).
    if value_range is not None and (x.min() < -OVERSHOOT or x.max() > 1 + OVERSHOOT):
        raise InputError(
            f"pixel values {_span(a)} lie far outside value_range=({low:g}, {high:g}): "
            "give the range the values really have"
        )
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def pil_pixels_to_unit(
    arr: np.ndarray, extrema: tuple[int, int] | None, mode: str, notes: list[str] | None
) -> np.ndarray:
    """The array of a PIL image (``images._pil_to_array``: uint8 from "L" or "RGBA", int32 from "I",
    float32 from "F") -> float32 in [0, 1], by the input contract's value rules, except where a
    file says more than an array can: 8-bit images are 0..255, and a 16-bit image's samples
    are 8-bit (none above 255), 12-bit (none above 4095: read as such, with a note) or 16-bit,
    judged on the whole image's ``extrema``. A file carries no ``value_range``: a refusal says
    how to save it instead."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if extrema is None:  # "F"
        return to_unit_range(arr, what=f"a mode {mode} image with values", remedy=PIL_REMEDY)
    low, high = extrema
    if low < 0 or high > 65535:
        raise InputError(
            f"a mode {mode} image with samples from {low} to {high}: integer samples outside "
            f"0 to 65535; {PIL_REMEDY}"
        )
    bits = 8 if high <= 255 else 12 if high <= 4095 else 16
    if bits == 12 and notes is not None:
        notes.append(
            f"a 16-bit image whose brightest sample is {high}: read as 12-bit samples "
            "(0 to 4095); were it a very dark 16-bit image, its digit is read brighter"
        )
    return np.clip(arr.astype(np.float32) / float(2**bits - 1), 0.0, 1.0)


def _value_range(a: np.ndarray, value_range: Any, refusal: Refusal) -> tuple[float, float]:
    """(black, white) for an image array: the one given, else the contract's rule."""
    if value_range is not None:
        return _given_range(value_range)
    if a.dtype == np.bool_:
        return 0.0, 1.0
    low, high = float(a.min()), float(a.max())
    if a.dtype.kind in "iu":
        if low < 0:
            raise _unclear(a, "integer pixels are never negative here", refusal)
        if high == 1:  # 0..255 would make it blank: say what it is instead of guessing
            why = "only 0 and 1, a mask? (value_range=(0, 1), or .astype(bool))"
            raise _unclear(a, why, refusal)
        if high > 65535:
            raise _unclear(a, "integer pixels above 65535 (16 bits)", refusal)
        if high <= 255:
            return 0.0, 255.0  # 8-bit samples, also in a 16-bit container (as Pillow reads)
        if high > 4095:
            return 0.0, 65535.0
        raise _unclear(a, "12-bit samples (value_range=(0, 4095)) or a dark 16-bit image?", refusal)
    # MNIST's normalisation first: its black, -0.4242, is exact (to bfloat16's precision).
    near_black = abs(low - MNIST_BLACK) <= abs(MNIST_BLACK) * BFLOAT16_TOLERANCE
    if near_black and high <= MNIST_WHITE * (1 + BFLOAT16_TOLERANCE):
        return MNIST_BLACK, MNIST_WHITE
    # Bicubic or Lanczos resampling overshoots its range by up to ~20 %: clipped below. An image
    # of 0..255 whose brightest pixel is under 1.25 would be blank either way.
    if low >= -OVERSHOOT and high <= 1 + OVERSHOOT:
        return 0.0, 1.0
    if high - low < MIN_SPREAD_0_255:
        # As 0..255 this would be a blank image (less contrast than preprocessing calls ink).
        # Small floats are normalised pixels: MNIST's without a black pixel, resized (bicubic
        # overshoots MNIST's black), or standardised per image. Say which, never guess.
        raise _unclear(
            a,
            f"as 0..255 they span under {MIN_SPREAD_0_255:g}, too faint to hold a digit: a "
            "faint image, or normalised pixels (MNIST's: value_range='mnist'; "
            "Normalize(0.5, 0.5): (-1, 1); standardised: (a.min(), a.max()))?",
            refusal,
        )
    if low >= -OVERSHOOT * 255 and high <= 255 * (1 + OVERSHOOT):
        return 0.0, 255.0
    raise _unclear(a, "not 0..1, 0..255 or MNIST-normalised ((x / 255 - 0.1307) / 0.3081)", refusal)


def _given_range(value_range: Any) -> tuple[float, float]:
    if isinstance(value_range, str) and value_range.lower() == "mnist":
        return MNIST_BLACK, MNIST_WHITE
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise InputError(
            f"value_range must be (low, high) numbers or 'mnist'; got {value_range!r}"
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise InputError(f"value_range needs finite low < high; got {value_range!r}")
    return low, high


def _span(a: np.ndarray) -> str:
    return f"from {float(a.min()):g} to {float(a.max()):g}"


def _unclear(a: np.ndarray, why: str, refusal: Refusal) -> InputError:
    remedy = refusal.remedy or PASS_VALUE_RANGE
    return InputError(f"{refusal.what} {_span(a)}: {why}; {remedy}")
