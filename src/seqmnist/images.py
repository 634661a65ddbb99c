"""Reading people's images: any file, upload or array -> a grey float image (H, W) in [0, 1].

``open_image`` decodes only the formats listed in PILLOW_FORMATS, checks the pixel count before
decoding (a decompression bomb is refused, not allocated), applies EXIF orientation and reduces
very large images; every failure is one ``ImageError`` line naming the file. ``to_grey`` takes
a PIL image of any mode or a numeric array and turns transparency into the paper it stands for
(straight alpha). preprocess.py turns the result into an MNIST-style digit.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, first_line
from .pixel_values import pil_pixels_to_unit, require_numbers, to_unit_range, unmasked

MAX_PIXELS = 40_000_000
"""Images with more pixels than this are refused before decoding (40 MP is ~160 MB of RGBA)."""


def _reads_avif() -> bool:
    """Whether this Pillow decodes AVIF (Pillow >= 11.2 built with libavif)."""
    from PIL import features

    try:
        return bool(features.check_module("avif"))
    except ValueError:  # a Pillow that knows no AVIF module
        return False


PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP") + (
    ("AVIF",) if _reads_avif() else ()
)
"""The formats ``open_image`` decodes (Pillow's JPEG reader also takes cameras' MPO files)."""


def _image_extensions() -> tuple[str, ...]:
    """Every file name ending Pillow registers for PILLOW_FORMATS, plus MPO's (cameras' JPEGs,
    which the JPEG reader opens): .jpg .jpeg .jpe .jfif .mpo, .png .apng, .tif .tiff, ..."""
    formats = {*PILLOW_FORMATS, "MPO"}
    return tuple(sorted(e for e, f in Image.registered_extensions().items() if f in formats))


IMAGE_EXTENSIONS = _image_extensions()
"""File name endings (lower case) ``seqmnist predict`` picks up when it walks a folder; it
compares them case-insensitively."""

EXIF_ORIENTATION = 0x0112  # the EXIF tag phones set instead of turning a photo's pixels upright
WORK_MAX_SIDE = 1024  # larger images are box-reduced to about this first: plenty for a 20 px digit
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow's convert("L")


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
    try:
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder")
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"{name} is empty (0 bytes): not an image")
        with path.open("rb") as f:
            return _decode(f, name, max_pixels)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise ImageError(_unreadable(name, exc)) from None


_OS_ERRORS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "is a folder, not an image file",
    errno.ELOOP: "is a symbolic link that loops (or too many links deep): point it at a file",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def _unreadable(name: str, exc: OSError | ValueError) -> str:
    """One line for a path that cannot be opened: the file's name and what is wrong with it."""
    if isinstance(exc, ValueError):
        return f"{name!r} is not a usable file name ({first_line(exc)})"
    what = _OS_ERRORS.get(exc.errno or 0, f"cannot be read ({exc.strerror or first_line(exc)})")
    return f"{name}: {what}"


def _format_names() -> str:
    """'PNG, JPEG, ... or WebP': the formats of PILLOW_FORMATS, as people name them."""
    names = [{"WEBP": "WebP"}.get(f, f) for f in PILLOW_FORMATS]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _decode(fp: BinaryIO, name: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only), check the size, then decode the first frame."""
    try:
        # Only plain raster formats: Pillow would hand EPS to Ghostscript, for instance. (Pillow
        # warns above ~89 MP and refuses above ~179 MP; our own, lower limit is checked below.)
        image = Image.open(fp, formats=PILLOW_FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(
            f"{name} has too many pixels (over {2 * Image.MAX_IMAGE_PIXELS:,}); "
            f"the limit is {max_pixels:,}: scale it down"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{name} is not an image in a format this reads ({_format_names()})"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} cannot be read as an image ({first_line(exc)})") from None

    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(
            f"{name} is {width}x{height} = {width * height:,} pixels, over the "
            f"limit of {max_pixels:,}: scale it down"
        )
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
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError, zlib...
        truncated = isinstance(exc, OSError) and "truncated" in str(exc)
        what = "is truncated" if truncated else "is damaged"
        raise ImageError(f"{name} {what} and cannot be decoded ({first_line(exc)})") from None
    return _usable_mode(image, name)


# Pixel modes Pillow converts to grey ("L"), RGBA, "I" and "F" itself (I;16* are 16-bit greys).
_CONVERTIBLE_MODES = frozenset(
    {
        "1",
        "L",
        "P",
        "RGB",
        "RGBX",
        "CMYK",
        "YCbCr",
        "HSV",
        "I",
        "F",
        "LA",
        "PA",
        "RGBA",
        "I;16",
        "I;16B",
        "I;16L",
        "I;16N",
    }
)


def _usable_mode(image: Image.Image, name: str) -> Image.Image:
    """``image`` in a mode that converts to grey: the one place unusual pixel modes are handled.

    CIE L*a*b* gives its lightness channel (what a reader sees as grey; Pillow has no LAB -> L),
    premultiplied-alpha modes are un-premultiplied; a mode Pillow cannot convert is refused.
    """
    mode = image.mode
    if mode in _CONVERTIBLE_MODES:
        return image
    if mode == "LAB":
        return image.getchannel("L")
    if mode in ("La", "RGBa"):
        return image.convert(mode.upper())
    raise ImageError(
        f"{name} has pixel mode {mode!r}, which cannot be turned into grey: "
        "save it as an 8-bit greyscale or RGB PNG"
    )


# --- to grey ---------------------------------------------------------------------------------


def _pil_to_array(
    image: Image.Image, notes: list[str] | None
) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A PIL image of any mode -> (an array (H, W) or (H, W, 4) RGBA, reduced to about
    WORK_MAX_SIDE; for integer modes the smallest and largest sample of the whole image, which
    decide how its values are read, before any reduction averages them)."""
    try:
        image.load()  # a lazily opened image whose file was closed fails here, in Pillow's words
    except (AssertionError, OSError, ValueError) as exc:
        why = first_line(exc) if str(exc).strip() else "its file was closed"
        raise ImageError(
            f"cannot read the pixels of this PIL image ({why}): use it inside "
            "`with Image.open(path) as image:`, or pass the file's path"
        ) from None
    image = _upright(image, notes)
    image = _usable_mode(image, "image")
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    if has_alpha:
        image = image.convert("RGBA")
    elif mode.startswith("I;16") or mode == "I":
        image = image.convert("I")  # 16-bit greys kept exact as int32
    elif mode != "F":
        image = image.convert("L")  # 1, L, P, RGB, CMYK, YCbCr ... (Pillow's luma weights)
    extrema = image.getextrema() if image.mode == "I" else None
    factor = -(-max(image.size) // WORK_MAX_SIDE)
    if factor >= 2:
        image = image.reduce(factor)  # box average: fast and anti-aliased
    return np.asarray(image), extrema


def _upright(image: Image.Image, notes: list[str] | None) -> Image.Image:
    """An image as Image.open gives it is turned upright by its EXIF Orientation tag, as its
    file is. One made from it (transpose, rotate, copy, convert: format None) keeps Pillow's
    copy of the tag, true or stale: read as its pixels are, with a note saying so."""
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    if orientation == 1:
        return image
    if image.format is not None:
        return ImageOps.exif_transpose(image)
    if notes is not None:
        notes.append(
            f"this PIL image carries EXIF orientation {orientation} but was made from an opened "
            "image, so it is read as its pixels are; if it is not upright yet, pass "
            "ImageOps.exif_transpose(image), or the file's path"
        )
    return image


def to_grey(image: Image.Image | np.ndarray, notes: list[str] | None = None) -> np.ndarray:
    """Any image -> float32 (H, W) in [0, 1]; transparent pixels read as the paper (see
    ``_flatten_alpha``). An array's values follow the input contract's value rules
    (``pixel_values``), as in ``Classifier.predict``; a PIL image's too, read by its mode
    (``pixel_values.pil_pixels_to_unit``). A one-line note on how the values were read may be
    appended to ``notes``."""
    if isinstance(image, Image.Image):
        arr, extrema = _pil_to_array(image, notes)
        x = pil_pixels_to_unit(arr, extrema, image.mode, notes)  # (H, W[, 4]) in [0, 1]
    else:
        arr = unmasked(image) if isinstance(image, np.ma.MaskedArray) else np.asarray(image)
        x = to_unit_range(_image_shaped(arr))
    if x.ndim == 2:
        return x
    grey = x[:, :, :3] @ _LUMA  # (H, W)
    if x.shape[2] == 3:
        return grey
    alpha = x[:, :, 3]  # (H, W)
    if alpha.min() >= 0.999:
        return grey
    return _flatten_alpha(grey, alpha)


def _image_shaped(arr: np.ndarray) -> np.ndarray:
    """Check one image array's dtype and shape: -> (H, W), (H, W, 3) or (H, W, 4)."""
    require_numbers(arr)  # complex, strings, objects, dates ... are refused
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(
            f"an image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f"image has no pixels (shape {arr.shape})")
    return arr


ONE_TONE = 0.1  # visible pixels within this range of grey: one ink colour, the digit is in alpha
# (a canvas's rounding stays far below; a faint pencil on a sheet with transparent margins, above)
FADE = 0.25  # the opaque edge differs from the inside by this share of the tones: a fading stroke


def _flatten_alpha(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A grey image (H, W) with straight alpha (H, W) -> the grey (H, W) a reader would see.

    Alpha is straight (unassociated), as Pillow's RGBA and PNG, WebP and GIF store it: a pixel's
    colour does not already include its alpha. (Premultiplied arrays read as straight give the
    same digit for black ink and somewhat thinner strokes for coloured ink.)

    Three kinds of transparent image, told apart by the pixels that can be seen:

    - ink as alpha: one colour wherever alpha is not ~0 (a canvas drawing, a "colour to alpha"
      export, black ink with alpha = coverage). The alpha channel is the digit, whatever the
      colour under it: dark ink on white, or light ink on black, at full contrast.
    - strokes on transparent paper whose own colour fades towards the paper at their edges (a
      palette GIF with a transparent index, a scan whose white was made transparent): the opaque
      pixels next to the transparent ones are lighter (or darker) than those inside, so the
      missing paper is white (or black), beyond the fade.
    - a sheet with transparent margins: the opaque pixels at the edge are the sheet's paper, the
      same tone as most of the inside; the margins become that paper.

    A single backdrop under a fading stroke would otherwise show its outline (a mid grey behind
    the light edge of a black stroke reads as a ring of light ink).
    """
    visible = _pixels_where(grey, alpha >= 0.25)
    if visible.size == 0:
        return grey * alpha  # nothing to see: "no ink"
    low, high = (float(v) for v in np.percentile(visible, [1, 99]))
    if high - low < ONE_TONE:  # ink as alpha
        return 1.0 - alpha if float(np.median(visible)) < 0.5 else alpha.copy()
    return grey * alpha + _backdrop(grey, alpha, high - low) * (1.0 - alpha)


def _backdrop(grey: np.ndarray, alpha: np.ndarray, spread: float) -> float:
    """The paper's grey behind the transparent pixels of an image with several visible tones:
    a fading stroke's far side (white or black) or a sheet's own paper (its edge's tone)."""
    opaque = alpha >= 0.5
    clear_near = _grown(~opaque)  # (H, W): transparent or next to it
    edge_tone = _median_where(grey, opaque & clear_near)
    if edge_tone is None:  # nothing is transparent, only translucent
        return _median_where(grey, opaque) or 0.0
    inside_tone = _median_where(grey, opaque & ~_grown(clear_near))
    if inside_tone is None:  # strokes too thin to have an inside: the paper contrasts with them
        return 1.0 if edge_tone < 0.5 else 0.0
    if abs(edge_tone - inside_tone) > FADE * spread:  # a stroke fading towards the paper
        return 1.0 if edge_tone > inside_tone else 0.0
    return edge_tone  # a sheet: its paper


def _median_where(grey: np.ndarray, mask: np.ndarray) -> float | None:
    """Median of ``grey`` (H, W) where ``mask``; None where the mask is empty."""
    values = _pixels_where(grey, mask)
    return float(np.median(values)) if values.size else None


def _pixels_where(grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``grey`` (H, W) where ``mask``, from about 65,000 evenly spread pixels (all of them when
    the mask is sparse): their quantiles are as good, and a large image's are much faster."""
    step = max(1, int(np.sqrt(grey.size / 65_536)))
    values = grey[::step, ::step][mask[::step, ::step]]
    return grey[mask] if values.size < 100 else values


def _grown(mask: np.ndarray) -> np.ndarray:
    """``mask`` (H, W) bool grown by one pixel to its 4 neighbours (SciPy's binary_dilation, done
    with slices: several times faster on a large image)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def sample_pixels(x: np.ndarray, size: int = 4_096) -> np.ndarray:
    """An evenly strided subset of about ``size`` pixels: its quantiles are as good, and faster."""
    if x.size <= size:
        return x
    if x.ndim == 2:
        step = int(np.sqrt(x.size / size))
        return x[::step, ::step]
    return x[:: x.size // size]
