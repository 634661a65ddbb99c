"""The input contract's value rules: which black and white an array's numbers stand for.

``inputs.py`` writes the whole contract down (its "Values" section); this module is the one
place that applies its value rules, so that ``Classifier.predict`` and a direct call of
``preprocess.to_mnist`` / ``images.to_grey`` on an array read the same numbers the same way
(a uint16 array of 8-bit samples was once read right by one and as blank by the other).
PIL images and files carry their own range and are scaled by their mode in ``images.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .data import MNIST_MEAN, MNIST_STD
from .errors import InputError

MNIST_BLACK = (0.0 - MNIST_MEAN) / MNIST_STD  # -0.4242: a 0 pixel after MNIST's normalisation
MNIST_WHITE = (1.0 - MNIST_MEAN) / MNIST_STD  # 2.8215
OVERSHOOT = 0.25  # floats this far outside their range are resampling's overshoot: clipped
BFLOAT16_TOLERANCE = 2**-7  # relative: bfloat16 keeps 8 significant bits
FLOAT64_MAX = float(np.finfo(np.float64).max)
PASS_VALUE_RANGE = "pass value_range=(black, white), e.g. (0, 1), (0, 255), (-1, 1) or 'mnist'"
MIN_SPREAD_0_255 = 16.0  # floats read as 0..255 span at least this: 6 % of white, the least
# contrast preprocessing calls ink (preprocess.MIN_INK_CONTRAST); less would be a blank image


def require_numbers(a: np.ndarray, hint: str = "") -> None:
    """Refuse complex, strings, objects, dates ...: pixels are bool, int or float."""
    if a.dtype.kind not in "biuf":
        raise InputError(
            f"an image array must hold numbers (bool, int or float); got dtype {a.dtype}{hint}"
        )


def to_unit_range(a: np.ndarray, value_range: Any = None, *, remedy: str = "") -> np.ndarray:
    """Pixels of any accepted dtype -> a new float32 array in [0, 1] by the contract's value
    rules (the shape is kept: (H, W) or (H, W, C)). ``remedy`` replaces the refusal's advice
    to pass ``value_range`` (for a file or PIL image, which carry no such argument)."""
    require_numbers(a)
    if a.size == 0:
        raise InputError(f"image has no pixels (shape {a.shape})")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise InputError("image array holds NaN or infinite values")
    if a.dtype.kind == "f" and a.dtype.itemsize > 8:  # long double: its extremes overflow float64
        a = np.clip(a, -FLOAT64_MAX, FLOAT64_MAX).astype(np.float64)
    if value_range is None and a.dtype == np.uint8 and a.max() > 1:  # common, kept cheap
        return a.astype(np.float32) / 255.0
    low, high = _value_range(a, value_range, remedy or PASS_VALUE_RANGE)
    if (low, high) == (0.0, 1.0) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1:
        return a.copy()  # already in range: what preprocessing hands on (kept cheap)
    x = (a.astype(np.float64) - low) / (high - low)
    # With a range given, a little outside it is resampling's overshoot (bicubic, Lanczos) and
    # is clipped; far outside, the range is wrong (0..255 pixels given as (0, 1)).
    if value_range is not None and (x.min() < -OVERSHOOT or x.max() > 1 + OVERSHOOT):
        raise InputError(
            f"pixel values {_span(a)} lie far outside value_range=({low:g}, {high:g}): "
            "give the range the values really have"
        )
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _value_range(a: np.ndarray, value_range: Any, remedy: str) -> tuple[float, float]:
    """(black, white) for an image array: the one given, else the contract's rule."""
    if value_range is not None:
        return _given_range(value_range)
    if a.dtype == np.bool_:
        return 0.0, 1.0
    low, high = float(a.min()), float(a.max())
    if a.dtype.kind in "iu":
        if low < 0:
            raise _unclear(a, "integer pixels are never negative here", remedy)
        if high == 1:  # 0..255 would make it blank: say what it is instead of guessing
            why = "only 0 and 1, a mask? (value_range=(0, 1), or .astype(bool))"
            raise _unclear(a, why, remedy)
        if high > 65535:
            raise _unclear(a, "integer pixels above 65535 (16 bits)", remedy)
        if high <= 255:
            return 0.0, 255.0  # 8-bit samples, also in a 16-bit container (as Pillow reads)
        if high > 4095:
            return 0.0, 65535.0
        raise _unclear(a, "12-bit samples (value_range=(0, 4095)) or a dark 16-bit image?", remedy)
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
            "as 0..255 they would be a blank image: MNIST-normalised (value_range='mnist') or "
            "standardised (value_range=(a.min(), a.max()))?",
            remedy,
        )
    if low >= -OVERSHOOT * 255 and high <= 255 * (1 + OVERSHOOT):
        return 0.0, 255.0
    raise _unclear(a, "not 0..1, 0..255 or MNIST-normalised ((x / 255 - 0.1307) / 0.3081)", remedy)


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


def _unclear(a: np.ndarray, why: str, remedy: str) -> InputError:
    return InputError(f"{a.dtype} pixels {_span(a)}: {why}; {remedy}")
