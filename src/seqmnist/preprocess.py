"""Any user image -> an MNIST-style 28x28 digit: light ink on black, fitted to 20x20, centred by
mass.

MNIST's own recipe (LeCun et al.): each digit was size-normalised to fit a 20x20 box keeping its
aspect ratio (anti-aliasing makes grey edges), then placed in a 28x28 field so that its centre of
mass sits at the centre. A model trained on MNIST only works on images that look like that, so a
photo of a digit on paper goes through the same steps here:

    open_image (images.py: path or bytes, size-checked before decoding)
      -> to_grey (images.py): float (H, W) in [0, 1], any mode; transparent pixels become the
                                       paper they stand for (straight alpha)
      -> light ink on dark             inverted unless the dark (Otsu) class covers most of the
                                       border and most of the image; no margin of paper assumed
      -> paper flattened               a quadratic surface fitted to the paper pixels only
                                       (shading, light fall-off), however much of the frame ink
                                       fills
      -> ink found                     Otsu threshold of the image smoothed by 1 px, kept above the
                                       noise (measured from neighbouring pixels); specks dropped.
                                       Blank, uniform and pure-noise images: "no ink"
      -> frame junk painted over       ink hugging the image's edge (a dark border, the desk, a
                                       rotation's fill) becomes paper and the ink is found
                                       again; where it joins the digit it stays: a warning
      -> cropped to the ink's box      several digit-sized parts side by side: a warning
      -> strokes thinner or thicker than MNIST's brought to its width
      -> resized so the longer side is 20 px (anti-aliased)
      -> pasted into 28x28, shifted so the centre of mass is at (14, 14)

Thresholds, connected components, distance transforms, morphology and centres of mass come from
scikit-image and SciPy. An image that is already in MNIST form (28x28, light on dark, centred)
is returned unchanged. ``predict`` and ``serve`` both use ``open_image`` + ``to_mnist``, so the web
demo and the CLI see the same 28x28 image (and the same warnings, through ``notes``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.morphology import disk, skeletonize

from .frame_ink import frame_junk, mostly_beside, paper_over, with_rim
from .images import MAX_PIXELS, WORK_MAX_SIDE, ImageError, open_image, sample_pixels, to_grey
from .several_digits import SEVERAL_DIGITS, digits_side_by_side

MNIST_SIZE = 28
DIGIT_BOX = 20  # MNIST fits each digit's longer side to 20 px
MNIST_CENTRE = 14.0  # mean centre of mass of MNIST test digits, in pixels (measured: 13.99, 14.01)

MIN_INK_CONTRAST = 0.06  # ink must differ from the paper by 6% of full scale, else "no ink"
NOISE_SIGMAS = 4.0  # the ink threshold is at least this many noise standard deviations up ...
INK_SIGMAS = 8.0  # ... and the ink itself this many: pure noise never passes for ink
SMOOTH_SIGMA = 1.0  # px: the Gaussian that ink is found on (noise / 3.5, strokes kept)
SMOOTHED_NOISE = 1 / (2 * np.sqrt(np.pi) * SMOOTH_SIGMA)  # how much it shrinks pixel noise
DARK_PAPER_BORDER = 0.6  # dark paper: the dark class covers 60% of the border (and half the image)
MIN_SPECK = 4  # ink components smaller than this many pixels ...
SPECK_FRACTION = 0.03  # ... or 3% of the largest one are specks (noise, dust, JPEG ringing)
DOMINANT_INK = 0.1  # a digit's largest stroke holds at least 10% of the ink; noise's specks do not

STROKE_WORK = 4  # stroke widths are measured at 4 working px per final px (80 px a side)
MIN_STROKE = 1.2  # strokes thinner than this (px, at the 20-px scale) are thickened ...
MAX_STROKE = 3.6  # ... and thicker than this (a marker, a bold font; ~97% of MNIST's are less) ...
TARGET_STROKE = 2.25  # ... thinned, to MNIST's median width (``_stroke_width`` of 1,000 test
# digits at 80 px: 5th percentile 1.25, median 2.25, 95th 3.3, 99th 4.05)

FRAME_PASSES = 2  # frame junk removed at most twice (what a dark frame hid may reach the edge)

FRAME_INK = (
    "ink runs along the image's edge (a border, the desk or a rotation's fill?): if it is not "
    "part of the digit, crop to the digit"
)
NO_INK = (
    "no ink found: the image is blank or too faint (draw or photograph a digit with clear "
    "contrast against the paper)"
)


# --- MNIST form ------------------------------------------------------------------------------


def is_mnist_form(grey: np.ndarray) -> bool:
    """True for a 28x28 float image that already looks like MNIST: mostly black, some bright ink,
    dark border, centre of mass within a pixel of (14, 14). Such images are not re-cropped."""
    if grey.shape != (MNIST_SIZE, MNIST_SIZE):
        return False
    if (grey < 0.1).mean() < 0.5 or grey.max() < 0.5:
        return False
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.1:
        return False
    cy, cx = ndimage.center_of_mass(grey)
    return abs(cy - MNIST_CENTRE) <= 1.0 and abs(cx - MNIST_CENTRE) <= 1.0


# --- the pipeline ----------------------------------------------------------------------------


def to_mnist(image: Image.Image | np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Any image of one digit -> (28, 28) uint8, light ink on black, MNIST-style.

    Accepts a PIL image of any mode or an array (H, W), (H, W, 3) RGB or (H, W, 4) RGBA of any
    dtype, its values read by the input contract's rules (``inputs.py``, "Values"; refused with
    ``InputError`` where they cannot tell). Raises ``ImageError`` when no ink is found (a blank,
    uniform or pure-noise image). When ``notes`` is a list, one-line
    warnings about the image are appended to it: ink at the image's edge that may not be the
    digit's, several digits side by side. The answer is given either way.
    """
    grey = to_grey(image, notes)  # (H, W) float32 in [0, 1]
    if is_mnist_form(grey):
        return np.rint(grey * 255.0).astype(np.uint8)
    if max(grey.shape) > WORK_MAX_SIDE:  # arrays (PIL images were reduced on reading)
        factor = -(-max(grey.shape) // WORK_MAX_SIDE)
        grey = np.array(Image.fromarray(grey, mode="F").reduce(factor))

    flat, (ink, paper, threshold, ink_level), found_notes = _find_digit(grey)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = flat[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w) the ink's bounding box
    # Grey levels: paper -> 0, solid ink -> 1, edges in between (kept: MNIST's anti-aliasing).
    low = paper + 0.5 * (threshold - paper)
    levels = np.clip((crop - low) / max(ink_level - low, 1e-6), 0.0, 1.0)  # (h, w)
    if notes is not None:
        notes.extend(found_notes)
        digits = digits_side_by_side(levels)
        if digits > 1:
            notes.append(SEVERAL_DIGITS.format(digits))
    levels = _normalise_strokes(levels)  # a ballpoint's line is far thinner than MNIST's
    return _fit_and_centre(levels)


class Found(NamedTuple):
    """What ``_find_ink`` finds in a flattened image (light ink, paper ~0)."""

    ink: np.ndarray  # (H, W) bool
    paper: float  # the paper's level
    threshold: float  # ink is above this
    level: float  # solid ink's level (90th percentile of the ink)


def _find_digit(grey: np.ndarray) -> tuple[np.ndarray, Found, list[str]]:
    """(flattened image (H, W), ``_find_ink``'s answer, warnings) for a working-size grey image.

    Ink that comes from the frame (a dark border, the desk, a rotation's fill at the corners) is
    replaced by paper and the ink is looked for again: such ink, darker than a faint pencil,
    would otherwise set the threshold and become "the digit". Where frame-like ink cannot be
    told from the digit (it joins the strokes, or is all the ink there is), it stays, with a
    warning.
    """
    light_paper, flat, found = _ink_in_either_polarity(grey, _paper_is_light(grey))
    for _ in range(FRAME_PASSES):
        junk, doubtful = frame_junk(found.ink)
        if not junk.any():
            return flat, found, [FRAME_INK] if doubtful else []
        painted = with_rim(junk)
        cleaned = paper_over(grey, flat, found.paper, painted, light_paper)
        try:
            cleaned_flat, cleaned_found = _flatten_and_find_ink(cleaned, light_paper)
        except ImageError:  # the frame-like ink was all the ink there was: kept
            return flat, found, [FRAME_INK]
        if mostly_beside(cleaned_found.ink, painted):
            # What is left is the painted part's own fringe: it was the digit itself (a 7 cut
            # so close that its bar and stem run along two edges). Kept.
            return flat, found, [FRAME_INK]
        grey, flat, found = cleaned, cleaned_flat, cleaned_found
    junk, doubtful = frame_junk(found.ink)  # still frame-like ink after the last pass
    return flat, found, [FRAME_INK] if doubtful or junk.any() else []


def _ink_in_either_polarity(grey: np.ndarray, light_paper: bool) -> tuple[bool, np.ndarray, Found]:
    """(whether the paper is light, then ``_flatten_and_find_ink``'s answer): in the likelier
    polarity, else in the other one."""
    try:
        return light_paper, *_flatten_and_find_ink(grey, light_paper)
    except ImageError:
        # No ink in the likelier polarity: a tight crop of a digit whose strokes fill most of the
        # frame may have fooled the guess. Ink of the other polarity is still a digit, if it is
        # the minority (else it is the paper of an image with dark specks: impulse noise).
        flat, found = _flatten_and_find_ink(grey, not light_paper)
        if found.ink.mean() >= 0.5:
            raise ImageError(NO_INK) from None
        return not light_paper, flat, found


def _flatten_and_find_ink(grey: np.ndarray, light_paper: bool) -> tuple[np.ndarray, Found]:
    """(flattened image (H, W): light ink, paper ~0; ``_find_ink``'s answer) for one polarity."""
    flat = 1.0 - grey if light_paper else grey.copy()  # now the ink is light and the paper dark
    flat -= _paper_surface(flat)
    return flat, _find_ink(flat)  # raises ImageError(NO_INK)


def _paper_is_light(grey: np.ndarray) -> bool:
    """Is the paper the light side (dark ink)? Decided without assuming a margin of paper.

    The pixels are split into a light and a dark class (Otsu). The paper is dark only when the
    dark class both covers most of the image border and most of the image: a light digit on a
    dark canvas or board. A digit cropped close, touching the edges, leaves its ink on part of
    the border but seldom covers most of both; when neither side clearly is the paper (a tight
    crop of a thick "1"), light paper is the better guess: dark ink on paper is by far the
    commonest scan and photo.
    """
    small = sample_pixels(grey, 16_384)
    if float(small.max() - small.min()) < 1e-6:
        return True
    dark = small <= threshold_otsu(small)  # (h, w) bool
    k = max(1, round(0.03 * min(dark.shape)))  # border ring: 3% of the shorter side
    ring = np.ones(dark.shape, bool)
    ring[k:-k, k:-k] = False
    return not (dark[ring].mean() > DARK_PAPER_BORDER and dark.mean() > 0.5)


def _paper_surface(x: np.ndarray) -> np.ndarray:
    """A smooth estimate of the paper under light ink (paper shading, light fall-off): (H, W).

    A quadratic surface in (y, x) is fitted by least squares to the paper's pixels only, which
    are found by Otsu's threshold on what the previous fit leaves (three rounds, starting from
    Otsu's threshold of the image itself); when few paper pixels are left (ink fills most of a
    close crop) only a plane or a constant is fitted. Unlike block-wise minima this needs no
    margin of paper. The surface is clamped to the range it takes where paper was seen: no wild
    extrapolation into the parts that the ink covers. Fitted on at most ~64 x 64 points.
    """
    h, w = x.shape
    step = max(1, max(h, w) // 64)
    ys, xs = np.mgrid[0:h:step, 0:w:step]
    values = ndimage.uniform_filter(x, size=min(step, 3))[::step, ::step].ravel()  # less noisy
    ys, xs = ys.ravel() / max(h - 1, 1) - 0.5, xs.ravel() / max(w - 1, 1) - 0.5
    basis = np.stack([np.ones_like(ys), ys, xs, ys * ys, ys * xs, xs * xs], axis=1)  # (n, 6)
    if float(values.max() - values.min()) < 1e-6:
        return np.full(x.shape, float(values[0]), np.float32)
    paper = values <= threshold_otsu(values)
    coeffs = np.zeros(6)
    for _ in range(3):
        if paper.sum() < 12:
            break
        # Few paper pixels (ink covers most of a close crop) pin down fewer terms: a plane, or a
        # constant, is all they can support.
        share = paper.mean()
        terms = 6 if share >= 0.25 else 3 if share >= 0.1 else 1
        b = basis[paper, :terms]  # normal equations: small, well conditioned (coordinates in +-0.5)
        coeffs = np.zeros(6)
        coeffs[:terms] = np.linalg.solve(b.T @ b + 1e-9 * np.eye(terms), b.T @ values[paper])
        residual = values - basis @ coeffs
        if float(residual.max() - residual.min()) < 1e-6:
            break
        paper = residual <= threshold_otsu(residual)
    if paper.sum() < 12:
        return np.full(x.shape, float(np.median(values)), np.float32)
    supported = basis[paper] @ coeffs  # the surface where paper was seen
    low, high = float(supported.min()), float(supported.max())
    yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    c = coeffs.astype(np.float32)
    surface = c[0] + c[1] * yy + c[2] * xx + c[3] * yy * yy + c[4] * yy * xx + c[5] * xx * xx
    return np.clip(surface, low, high)  # (H, W)


def _find_ink(flat: np.ndarray) -> Found:
    """(ink mask (H, W), paper level, threshold, ink level) of a flattened image, or ImageError.

    The image is smoothed a little (Gaussian, 1 px): pixel noise shrinks about 3.5 times, strokes
    barely change. Ink is what stands above Otsu's threshold of the smoothed image, which is at
    least a few noise standard deviations above the paper; specks (components under 3% of the
    largest) are dropped. "No ink" means there is none of that, or the ink stands less than
    MIN_INK_CONTRAST, or less than INK_SIGMAS noise standard deviations, above the paper: a
    blank, uniform or pure-noise image. The noise is measured from neighbouring pixels'
    differences (robust: edges are few), so ink covering half of the image does not inflate it.
    """
    smooth = ndimage.gaussian_filter(flat, SMOOTH_SIGMA)
    sample = sample_pixels(smooth)
    if float(sample.max() - sample.min()) < 1e-6:
        raise ImageError(NO_INK)
    otsu = float(threshold_otsu(sample))
    paper = float(np.median(sample[sample <= otsu]))
    noise = _noise_sigma(flat) * SMOOTHED_NOISE  # of the smoothed image
    threshold = max(otsu, paper + NOISE_SIGMAS * noise, paper + MIN_INK_CONTRAST / 2)
    ink = smooth > threshold  # (H, W) bool
    labels, count = ndimage.label(ink)
    if count == 0:
        raise ImageError(NO_INK)
    if count > 1:
        sizes = np.bincount(labels.ravel())[1:]
        keep = np.flatnonzero(sizes >= max(MIN_SPECK, SPECK_FRACTION * sizes.max())) + 1
        if keep.size == 0 or sizes.max() < DOMINANT_INK * sizes.sum():  # specks all over: noise
            raise ImageError(NO_INK)
        ink = np.isin(labels, keep)
    smooth_level = float(np.percentile(sample_pixels(smooth[ink]), 90))
    too_faint = smooth_level - paper < max(MIN_INK_CONTRAST, INK_SIGMAS * noise)
    if too_faint or int(ink.sum()) < MIN_SPECK:
        raise ImageError(NO_INK)
    # The smoothed strokes are ~1 px wider: the ink's extent is the unsmoothed pixels above the
    # threshold, within (a pixel of) the ink found.
    sharp = (flat > threshold) & ndimage.binary_dilation(ink)
    if sharp.sum() >= MIN_SPECK:
        ink = sharp
    ink_level = float(np.percentile(sample_pixels(flat[ink]), 90))
    return Found(ink, paper, threshold, max(ink_level, threshold))


def _noise_sigma(x: np.ndarray) -> float:
    """Robust pixel-noise standard deviation: median absolute difference of horizontal
    neighbours (MAD scaled to a normal's sigma, / sqrt 2 for the difference of two pixels)."""
    rows = x[:: max(1, x.shape[0] // 128)]
    diffs = np.abs(np.diff(rows, axis=1))
    return float(1.4826 * np.median(diffs) / np.sqrt(2.0)) if diffs.size else 0.0


def _stroke_width(mask: np.ndarray) -> float:
    """Median stroke width of a binary drawing, in pixels: twice the distance from the strokes'
    centre line (skeleton) to the nearest paper, plus one (the centre pixel itself)."""
    if not mask.any():
        return 0.0
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    centre = skeletonize(mask)
    return float(2.0 * np.median(distance[centre]) - 1.0) if centre.any() else 0.0


def _fill_pinholes(mask: np.ndarray, max_area: float) -> np.ndarray:
    """``mask`` with its holes of at most ``max_area`` pixels filled (a digit's loops are larger).
    (scikit-image's ``remove_small_holes`` renamed its size argument in 0.26: done with SciPy.)"""
    holes, count = ndimage.label(ndimage.binary_fill_holes(mask) & ~mask)
    if count == 0:
        return mask
    small = np.bincount(holes.ravel()) <= max_area  # (count + 1,)
    small[0] = False
    return mask | small[holes]


def _normalise_strokes(levels: np.ndarray) -> np.ndarray:
    """Bring pen-thin strokes to MNIST's width. Returns ``levels`` unchanged, or a grey-dilated
    copy at a working size of 4 x 20 px on the longer side (plus the growth margin)."""
    h, w = levels.shape
    work = STROKE_WORK * DIGIT_BOX / max(h, w)  # working px per original px
    size = (max(1, round(w * work)), max(1, round(h * work)))  # 80 px on the longer side
    resample = Image.Resampling.BOX if work < 1 else Image.Resampling.BILINEAR
    small = np.asarray(Image.fromarray(levels.astype(np.float32), mode="F").resize(size, resample))
    px_per_final = max(small.shape) / DIGIT_BOX
    # Measured on the strokes smoothed a little and with pinholes filled: pencil grain or noise
    # inside a stroke would otherwise split it into many thin ones.
    mask = _fill_pinholes(ndimage.gaussian_filter(small, 1.0) > 0.5, max_area=px_per_final**2)
    width = _stroke_width(mask) / px_per_final  # at the final 20-px scale
    if width > MAX_STROKE:  # a marker's or a bold font's strokes: thinned to MNIST's width
        radius = round((width - TARGET_STROKE) / 2 * px_per_final)
        if radius < 1:
            return levels
        thinned = ndimage.grey_erosion(small, footprint=disk(radius))
        # The radius comes from the median width: where a bold glyph's counter is closed up (a
        # heavy "0" drawn as one blob) its real strokes are thinner and all of them can vanish.
        # Then the drawing is kept as it is, not reported as blank.
        return thinned if float(thinned.max()) > 0 else levels
    if width >= MIN_STROKE:
        return levels
    radius = round((TARGET_STROKE - width) / 2 * px_per_final)
    if radius < 1:
        return levels
    padded = np.pad(small.astype(np.float32), radius)  # room for the strokes to grow outwards
    return ndimage.grey_dilation(padded, footprint=disk(radius))


def _fit_and_centre(crop: np.ndarray) -> np.ndarray:
    """(h, w) ink levels in [0, 1] -> (28, 28) uint8: longer side 20 px, centre of mass (14, 14)."""
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    digit = Image.fromarray(crop.astype(np.float32), mode="F")
    digit = digit.resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(digit), 0.0, 1.0)  # (new_h, new_w); Lanczos can overshoot
    top = float(digit.max())
    if top <= 0:
        raise ImageError(NO_INK)
    digit = digit / top  # strongest stroke -> full white, as in MNIST

    # Centre of mass of the digit inside a 28x28 field, then shift it to (14, 14) by whole pixels,
    # keeping the digit inside the field.
    cy, cx = ndimage.center_of_mass(digit)
    top_y = int(np.clip(round(MNIST_CENTRE - cy), 0, MNIST_SIZE - new_h))
    left_x = int(np.clip(round(MNIST_CENTRE - cx), 0, MNIST_SIZE - new_w))
    field = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    field[top_y : top_y + new_h, left_x : left_x + new_w] = digit
    return np.rint(field * 255.0).astype(np.uint8)  # (28, 28)


def load_mnist_image(
    source: str | os.PathLike | bytes,
    max_pixels: int = MAX_PIXELS,
    notes: list[str] | None = None,
) -> np.ndarray:
    """``open_image`` then ``to_mnist``, with the file's name in a "no ink" error: (28, 28)
    uint8. ``notes`` as for ``to_mnist``."""
    image = open_image(source, max_pixels=max_pixels)
    try:
        return to_mnist(image, notes=notes)
    except ImageError as exc:
        name = "upload" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
        raise ImageError(f"{name}: {exc}") from None
