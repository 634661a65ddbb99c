"""Any user image -> an MNIST-style 28x28 digit: light ink on black, fitted to 20x20, centred by mass.

MNIST's own recipe (LeCun et al.): each digit was size-normalised to fit a 20x20 box keeping its
aspect ratio (anti-aliasing makes grey edges), then placed in a 28x28 field so that its centre of
mass sits at the centre. A model trained on MNIST only works on images that look like that, so a
photo of a digit on paper goes through the same steps here:

    open_image (path or bytes, size-checked before decoding)
      -> grey float (H, W) in [0, 1]    transparency composited, any mode (L, RGB, RGBA, P, I;16, 1 ...)
      -> light ink on dark             inverted when the border (the paper) is lighter than the ink
      -> background flattened          a coarse background estimate subtracted (paper shading)
      -> ink found                     Otsu threshold, raised above the noise level; specks ignored
      -> cropped to the ink's box, resized so the longer side is 20 px (anti-aliased)
      -> pasted into 28x28, shifted so the centre of mass is at (14, 14)

An image that is already in MNIST form (28x28, light on dark, centred) is returned unchanged.
``predict`` and ``serve`` both use ``open_image`` + ``to_mnist``, so the web demo and the CLI see
the same 28x28 image.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from .errors import SeqMnistError

MAX_PIXELS = 40_000_000
"""Images with more pixels than this are refused before decoding (a 40 MP photo is ~160 MB of RGBA)."""

PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
"""The formats ``open_image`` decodes (Pillow's JPEG reader also takes cameras' MPO files)."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
"""File name endings ``seqmnist predict`` picks up when it walks a folder."""

MNIST_SIZE = 28
DIGIT_BOX = 20  # MNIST fits each digit's longer side to 20 px
MNIST_CENTRE = 14.0  # mean centre of mass of MNIST test digits, in pixel indices (measured: 13.99, 14.01)

WORK_MAX_SIDE = 1024  # larger images are box-reduced to about this first: plenty for a 20 px digit
MIN_INK_CONTRAST = 0.08  # ink must differ from the paper by 8% of full scale, else "no ink"
NOISE_SIGMAS = 4.0  # ink must also stand this many noise standard deviations above the paper
GRID_BLOCKS = 8  # the background estimate is a coarse grid of about 8 x 8 blocks

MIN_STROKE = 1.6  # strokes thinner than this (px, at the 20-px scale) are thickened ...
TARGET_STROKE = 2.6  # ... to MNIST's median width (measured on 2,000 test digits: 2.1-4.1, median 2.6)

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's convert("L")


NO_INK = ("no ink found: the image is blank or too faint (draw or photograph a digit with clear "
          "contrast against the paper)")


class ImageError(SeqMnistError):
    """An image cannot be used: unreadable, empty, truncated, not an image, too large, or blank."""


# --- reading ---------------------------------------------------------------------------------

def open_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Read an image from a path or raw bytes (an upload), fully decoded and upright.

    GIFs (and other animations) give their first frame; an EXIF orientation tag is applied; a
    JPEG larger than 2048 px a side is decoded at a reduced scale (libjpeg's draft mode; at least
    1024 px a side remain, more than preprocessing uses).

    The pixel count is checked from the header before any pixel is decoded, so a tiny file that
    claims to be 100,000 x 100,000 pixels (a decompression bomb) costs nothing. Every problem is an
    ``ImageError`` naming the file (or "upload") and what is wrong.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageError("upload is empty (0 bytes): send a PNG, JPEG or other image file")
        return _decode(io.BytesIO(data), "upload", max_pixels)

    path = Path(source)
    name = str(path)
    if path.is_dir():
        raise ImageError(f"{name} is a folder, not an image file")
    try:
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"{name} is empty (0 bytes): not an image")
        with path.open("rb") as f:
            return _decode(f, name, max_pixels)
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except PermissionError:
        raise ImageError(f"{name}: permission denied") from None
    except IsADirectoryError:
        raise ImageError(f"{name} is a folder, not an image file") from None


def _decode(fp: BinaryIO, name: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only), check the size, then decode the first frame."""
    try:
        # Only plain raster formats: Pillow would hand EPS to Ghostscript, for instance. (Pillow
        # warns above ~89 MP and refuses above ~179 MP; our own, lower limit is checked below.)
        image = Image.open(fp, formats=PILLOW_FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(f"{name} has too many pixels (over {2 * Image.MAX_IMAGE_PIXELS:,}); "
                         f"the limit is {max_pixels:,}: scale it down") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image in a format this reads "
                         "(PNG, JPEG, BMP, GIF, TIFF or WebP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} cannot be read as an image ({_first_line(exc)})") from None

    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"{name} is {width}x{height} = {width * height:,} pixels, over the limit of "
                         f"{max_pixels:,}: scale it down")
    if width == 0 or height == 0:
        raise ImageError(f"{name} has no pixels ({width}x{height})")
    try:
        image.seek(0)  # GIF / APNG / multi-page TIFF: the first frame
        if image.format == "JPEG" and min(width, height) > 2 * WORK_MAX_SIDE:
            # A phone photo: let libjpeg decode at 1/2, 1/4 or 1/8 scale (>= WORK_MAX_SIDE a side).
            image.draft(image.mode, (WORK_MAX_SIDE, WORK_MAX_SIDE))
        image.load()
        if getattr(image, "n_frames", 1) > 1:
            image = image.copy()  # a single frame that no longer needs the (closing) file
        # Phones store photos sideways plus an EXIF "Orientation" tag; turn the pixels upright.
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError, zlib.error ...
        truncated = isinstance(exc, OSError) and "truncated" in str(exc)
        what = "is truncated" if truncated else "is damaged"
        raise ImageError(f"{name} {what} and cannot be decoded ({_first_line(exc)})") from None
    return image


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


# --- to grey ---------------------------------------------------------------------------------

def _pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> an array (H, W) or (H, W, 4) RGBA, reduced to ~WORK_MAX_SIDE."""
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if has_alpha:
        image = image.convert("RGBA")
    elif mode.startswith("I;16") or mode == "I":
        image = image.convert("I")  # 16-bit greys kept exact as int32
    elif mode != "F":
        image = image.convert("L")  # 1, L, P, RGB, CMYK, YCbCr ... (Pillow's luma weights)
    factor = -(-max(image.size) // WORK_MAX_SIDE)
    if factor >= 2:
        image = image.reduce(factor)  # box average: fast and anti-aliased
    return np.asarray(image)


def _to_grey(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any image -> float32 (H, W) in [0, 1], transparency composited onto a contrasting background."""
    arr = _pil_to_array(image) if isinstance(image, Image.Image) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"image has no pixels (shape {arr.shape})")
    x = _scale_to_unit(arr)  # (H, W[, C]) float32 in [0, 1]
    if x.ndim == 2:
        return x
    grey = x[:, :, :3] @ _LUMA  # (H, W)
    if x.shape[2] == 3:
        return grey
    alpha = x[:, :, 3]  # (H, W)
    if alpha.min() >= 0.999:
        return grey
    return grey * alpha + _backdrop(grey, alpha) * (1.0 - alpha)


def _backdrop(grey: np.ndarray, alpha: np.ndarray) -> float:
    """The grey to put behind transparent pixels so that they read as paper.

    Two kinds of transparent images: strokes only (a canvas drawing: every opaque pixel is ink)
    and a sheet with a transparent margin (paper and ink opaque). For strokes only, the backdrop
    contrasts with the ink; for a sheet, it is the sheet's own typical (median) grey.
    """
    opaque = _sample(grey[alpha >= 0.5])
    if opaque.size == 0:
        return 0.0
    low, high = np.percentile(opaque, [1, 99])
    if high - low < 0.2:  # one tone: strokes only
        return 1.0 if float(opaque.mean()) < 0.5 else 0.0
    return float(np.median(opaque))


def _scale_to_unit(arr: np.ndarray) -> np.ndarray:
    """uint8 / 16-bit / int / bool / float pixels -> float32 in [0, 1]."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    x = arr.astype(np.float32)
    if not np.isfinite(x).all():
        raise ImageError("image array holds NaN or infinite values")
    top = float(x.max()) if x.size else 0.0
    if np.issubdtype(arr.dtype, np.integer):  # e.g. Pillow's mode "I" from a 16-bit PNG
        return np.clip(x / (65535.0 if top > 255 else 255.0), 0.0, 1.0)
    # floats: [0, 1] as given, else read as 0-255
    return np.clip(x / 255.0 if top > 1.0 + 1e-6 else x, 0.0, 1.0)


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
    cy, cx = _centre_of_mass(grey)
    return abs(cy - MNIST_CENTRE) <= 1.0 and abs(cx - MNIST_CENTRE) <= 1.0


def _centre_of_mass(x: np.ndarray) -> tuple[float, float]:
    total = float(x.sum())
    if total <= 0:
        return (x.shape[0] - 1) / 2, (x.shape[1] - 1) / 2
    cy = float((x.sum(axis=1) * np.arange(x.shape[0])).sum() / total)
    cx = float((x.sum(axis=0) * np.arange(x.shape[1])).sum() / total)
    return cy, cx


# --- the pipeline ----------------------------------------------------------------------------

def to_mnist(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any image of one digit -> (28, 28) uint8, light ink on black, MNIST-style.

    Accepts a PIL image of any mode or an array (H, W), (H, W, 3) RGB or (H, W, 4) RGBA of uint8,
    uint16, bool or float (floats in [0, 1], or 0-255 if larger). Raises ``ImageError`` when no
    ink is found (a blank or near-uniform image).
    """
    grey = _to_grey(image)  # (H, W) float32 in [0, 1]
    if is_mnist_form(grey):
        return np.rint(grey * 255.0).astype(np.uint8)
    if max(grey.shape) > WORK_MAX_SIDE:  # arrays (PIL images were reduced on reading)
        factor = -(-max(grey.shape) // WORK_MAX_SIDE)
        grey = np.array(Image.fromarray(grey, mode="F").reduce(factor))

    flat = grey  # a fresh array (never the caller's), worked on in place from here
    if _paper_is_light(flat):
        np.subtract(1.0, flat, out=flat)  # now the ink is light and the paper dark
    flat -= _background(flat)  # (H, W): paper ~0 everywhere, ink positive

    threshold, paper, noise = _ink_threshold(flat)
    ink = flat > threshold  # (H, W) bool
    ink &= _neighbour_count(ink) >= 3  # drop isolated specks (noise, JPEG ringing, dust)
    if not ink.any():
        raise ImageError(NO_INK)
    ink_level = float(np.percentile(_sample(flat[ink]), 90))
    if ink_level - paper < max(MIN_INK_CONTRAST, NOISE_SIGMAS * noise):
        raise ImageError(NO_INK)

    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = flat[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w) the ink's bounding box
    # Grey levels: paper -> 0, solid ink -> 1, edges in between (kept: MNIST's anti-aliasing).
    low = paper + 0.5 * (threshold - paper)
    levels = np.clip((crop - low) / max(ink_level - low, 1e-6), 0.0, 1.0)  # (h, w)
    levels = _thicken_thin_strokes(levels)  # a ballpoint pen's line is far thinner than MNIST's
    return _fit_and_centre(levels)


def _paper_is_light(grey: np.ndarray) -> bool:
    """The paper is what fills the border; it is light if the border is nearer the bright end."""
    h, w = grey.shape
    k = max(1, round(0.05 * min(h, w)))  # border ring: 5% of the shorter side
    border = np.concatenate([grey[:k].ravel(), grey[-k:].ravel(), grey[:, :k].ravel(), grey[:, -k:].ravel()])
    low, high = np.percentile(_sample(grey), [1, 99])
    return float(np.median(_sample(border))) > (low + high) / 2


def _background(grey: np.ndarray) -> np.ndarray:
    """A smooth estimate of the paper (dark side) under light ink: (H, W).

    The image is cut into about 8 x 8 blocks; each block's 10th percentile is the paper there
    (ink covers far less than 90% of a block). A block that ink does cover entirely stands out
    above its neighbours, so each value is capped by its 3 x 3 neighbourhood's median (which a
    linear shading gradient leaves unchanged). The grid is then interpolated back to full size.
    Percentiles are taken on every f-th pixel (at most ~128 a side): as good, and much faster.
    """
    h, w = grey.shape
    stride = max(1, max(h, w) // 128)
    small = grey[::stride, ::stride]  # (sh, sw)
    sh, sw = small.shape
    block = max(2, -(-max(sh, sw) // GRID_BLOCKS))  # block side, in small pixels
    gh, gw = -(-sh // block), -(-sw // block)
    padded = np.pad(small, ((0, gh * block - sh), (0, gw * block - sw)), mode="edge")
    blocks = padded.reshape(gh, block, gw, block).transpose(0, 2, 1, 3).reshape(gh, gw, -1)
    k = blocks.shape[2] // 10
    grid = np.partition(blocks, k, axis=2)[:, :, k]  # (gh, gw): 10th percentile of each block
    neighbours = np.pad(grid, 1, mode="edge")
    stack = np.stack([neighbours[i : i + gh, j : j + gw] for i in range(3) for j in range(3)])
    grid = np.minimum(grid, np.median(stack, axis=0)).astype(np.float32)  # (gh, gw)
    # Bilinear interpolation from cell centres to pixel centres, rows first, then columns.
    cell = block * stride  # block side in original pixels
    y0, y1, ty = _interpolation(h, gh, cell)
    x0, x1, tx = _interpolation(w, gw, cell)
    rows = grid[y0] * (1 - ty)[:, None] + grid[y1] * ty[:, None]  # (H, gw)
    return np.take(rows, x0, axis=1) * (1 - tx) + np.take(rows, x1, axis=1) * tx  # (H, W)


def _interpolation(n: int, cells: int, cell: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For n pixels: the cell below, the cell above, and the weight of the one above (n,) each."""
    u = np.clip((np.arange(n, dtype=np.float32) + 0.5) / cell - 0.5, 0, cells - 1)  # in cell units
    lower = u.astype(np.intp)
    return lower, np.minimum(lower + 1, cells - 1), (u - lower).astype(np.float32)


def _ink_threshold(flat: np.ndarray) -> tuple[float, float, float]:
    """(threshold, paper level, noise sigma) of a flattened image: Otsu's threshold, but never
    less than a few noise standard deviations above the paper (so noise alone is not ink)."""
    sample = _sample(flat)
    paper = float(np.median(sample))
    noise = 1.4826 * float(np.median(np.abs(sample - paper)))  # robust sigma (MAD): ink barely moves it
    otsu = _otsu(sample)
    threshold = max(otsu, paper + NOISE_SIGMAS * noise, paper + MIN_INK_CONTRAST / 2)
    return threshold, paper, noise


def _sample(x: np.ndarray, size: int = 4_096) -> np.ndarray:
    """An evenly strided subset of about ``size`` pixels: quantiles of it are as good and much faster."""
    if x.size <= size:
        return x
    if x.ndim == 2:
        step = int(np.sqrt(x.size / size))
        return x[::step, ::step]
    return x[:: x.size // size]


def _otsu(x: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the level that best separates two classes (maximal between-class variance)."""
    low, high = float(x.min()), float(x.max())
    if high - low < 1e-6:
        return high
    hist, edges = np.histogram(x, bins=bins, range=(low, high))
    p = hist.astype(np.float64) / hist.sum()
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)  # weight of the class below each cut
    m0 = np.cumsum(p * centres)
    total_mean = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * w0 - m0) ** 2 / (w0 * (1 - w0))
    between = np.nan_to_num(between[:-1])
    return float(edges[int(np.argmax(between)) + 1])


def _neighbour_count(mask: np.ndarray) -> np.ndarray:
    """How many of each pixel's 3 x 3 neighbourhood (itself included) are set: (H, W) int."""
    padded = np.pad(mask.astype(np.uint8), 1)
    h, w = mask.shape
    return sum(padded[i : i + h, j : j + w] for i in range(3) for j in range(3))


def _stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary drawing, in pixels: a stroke of width w and length L has area
    w*L and about 2*L boundary pixels, so w ~ 2 * area / boundary (a floor of 2 for 1-px lines)."""
    area = int(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    inner = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return 2.0 * area / max(area - int(inner.sum()), 1)


def _thicken_thin_strokes(levels: np.ndarray) -> np.ndarray:
    """Thicken pen-thin strokes to MNIST's width. Returns ``levels`` unchanged, or a grey-dilated
    copy at a working size of 4 x 20 px on the longer side (plus the growth margin)."""
    h, w = levels.shape
    width = _stroke_width(levels > 0.5) * DIGIT_BOX / max(h, w)  # at the final 20-px scale
    if width >= MIN_STROKE:
        return levels
    work = 4 * DIGIT_BOX / max(h, w)  # -> 80 px on the longer side: 4 working px per final px
    if work < 1:
        size = (max(1, round(w * work)), max(1, round(h * work)))
        levels = np.asarray(Image.fromarray(levels.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX))
    px_per_final = max(levels.shape) / DIGIT_BOX
    radius = round((TARGET_STROKE - width) / 2 * px_per_final)
    if radius < 1:
        return levels
    padded = np.pad(levels.astype(np.float32), radius)  # room for the strokes to grow outwards
    grown = Image.fromarray(padded, mode="F").filter(ImageFilter.MaxFilter(2 * radius + 1))
    return np.asarray(grown)


def _fit_and_centre(crop: np.ndarray) -> np.ndarray:
    """(h, w) ink levels in [0, 1] -> (28, 28) uint8: longer side 20 px, centre of mass at (14, 14)."""
    h, w = crop.shape
    scale = DIGIT_BOX / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    digit = Image.fromarray(crop.astype(np.float32), mode="F").resize((new_w, new_h), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(digit), 0.0, 1.0)  # (new_h, new_w); Lanczos can overshoot
    top = float(digit.max())
    if top <= 0:
        raise ImageError(NO_INK)
    digit = digit / top  # strongest stroke -> full white, as in MNIST

    # Centre of mass of the digit inside a 28x28 field, then shift it to (14, 14) by whole pixels,
    # keeping the digit inside the field.
    cy, cx = _centre_of_mass(digit)
    top_y = int(np.clip(round(MNIST_CENTRE - cy), 0, MNIST_SIZE - new_h))
    left_x = int(np.clip(round(MNIST_CENTRE - cx), 0, MNIST_SIZE - new_w))
    field = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    field[top_y : top_y + new_h, left_x : left_x + new_w] = digit
    return np.rint(field * 255.0).astype(np.uint8)  # (28, 28)


def load_mnist_image(source: str | os.PathLike | bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """``open_image`` then ``to_mnist``, with the file's name in a "no ink" error: (28, 28) uint8."""
    image = open_image(source, max_pixels=max_pixels)
    try:
        return to_mnist(image)
    except ImageError as exc:
        name = "upload" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
        raise ImageError(f"{name}: {exc}") from None
