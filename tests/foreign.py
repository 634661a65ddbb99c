""" "Foreign" handwritten and printed digits: images from sources other than MNIST's training set,
made the way people's own images are, to test preprocessing (and the model) on them.

Every source is small and deterministic (a seeded ``numpy.random.Generator``), so the tests and
``benchmarks/bench_foreign.py`` make the same kinds of image:

- ``scan-*``: MNIST **test** digits rendered as scans of ink on paper: dark on white, upscaled
  4-8x from the 28x28 original (bicubic) and blurred (the blurry, thick strokes of an upscaled
  low-resolution image), sensor noise, then

  - ``scan-tight``: cropped close to the digit, 0-3 px margins (the ink touches the edges);
  - ``scan-tight-jpeg``: the same, saved as JPEG at quality 70-95;
  - ``scan-wide``: wide margins (15-80% of the digit's size on each side);
  - ``scan-wide-jpeg``: wide margins, JPEG quality 70-95;
  - ``scan-rotated``: turned 2-6 degrees either way, cropped close, JPEG quality 70-95;
  - ``scan-shaded``: uneven paper (a 10-30% light fall-off and paper grain), cropped close.

- ``font``: the digits 0-9 in the fonts installed on this machine (``fc-list``: DejaVu ...; not
  the families the default recipe trains on, see ``font_files``), at
  40-120 px, dark on white or light paper, close or wide margins, a few degrees of rotation.
- ``font-noisy``: the same faces harder: the digit off-centre on a sheet 2-4 times its size,
  paper with grain and strong sensor noise, often JPEG (the printed digits of issue 19, which
  moved by several points between models).
- ``thin-pen``: MNIST test digits redrawn with a thin pen: the digit's skeleton (the centre line
  of its strokes) drawn 1.5-4 px wide on a 200-330 px sheet, dark on white.
- ``pencil``: MNIST test digits in grey, grainy pencil on off-white paper with low contrast
  (the strokes 12-30% darker than the paper), close or wide margins.

``make_source(name, n, seed, test_images, test_labels)`` returns ``(images, labels, indices)``:
PIL images, their digits, and which MNIST test digit each came from (None for fonts).
"""

from __future__ import annotations

import io
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from seqmnist.printed import printed_bank

SCAN_VARIANTS = (
    "scan-tight",
    "scan-tight-jpeg",
    "scan-wide",
    "scan-wide-jpeg",
    "scan-rotated",
    "scan-shaded",
)
SOURCES = (*SCAN_VARIANTS, "font", "font-noisy", "thin-pen", "pencil")
FONT_SOURCES = ("font", "font-noisy")  # printed digits: no MNIST test digit behind them
FROM_MNIST_TEST = (*SCAN_VARIANTS, "thin-pen", "pencil")  # sources made from MNIST test digits


# --- shared steps ----------------------------------------------------------------------------


def _upscaled(digit: np.ndarray, scale: float, blur: float, angle: float = 0.0) -> np.ndarray:
    """(28, 28) uint8 MNIST digit -> ink coverage (S, S) float32 in [0, 1], upscaled, blurred and
    turned by ``angle`` degrees (the canvas grows to hold the turned digit)."""
    size = int(round(28 * scale))
    image = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    if angle:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    if blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(image, dtype=np.float32) / 255.0


def _crop(
    coverage: np.ndarray, rng: np.random.Generator, tight: bool, level: float = 0.15
) -> np.ndarray:
    """Cut ``coverage`` around its ink (pixels above ``level``): margins of 0-3 px on each side
    (``tight``), or 15-80% of the ink box's size; the canvas is padded with paper as needed."""
    rows = np.flatnonzero((coverage > level).any(axis=1))
    cols = np.flatnonzero((coverage > level).any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    h, w = bottom - top, right - left
    if tight:
        m = rng.integers(0, 4, size=4)
    else:
        m = (rng.uniform(0.15, 0.8, size=4) * np.array([h, h, w, w])).astype(int)
    pad = int(m.max()) + 1
    padded = np.pad(coverage, pad)
    return padded[top + pad - m[0] : bottom + pad + m[1], left + pad - m[2] : right + pad + m[3]]


def _shading(shape: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """A multiplicative light fall-off (H, W) around 1: a linear ramp in a random direction plus
    a slight vignette, about +-strength/2 across the image."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy  # about -0.7..0.7
    vignette = -(xx**2 + yy**2)  # 0 in the middle, -0.5 in the corners
    return 1.0 + strength * (0.7 * ramp + 0.6 * vignette)


def _grain(shape: tuple[int, int], rng: np.random.Generator, size: float) -> np.ndarray:
    """Smooth random texture (H, W) with zero mean and unit standard deviation."""
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), size)
    return (smooth - smooth.mean()) / max(float(smooth.std()), 1e-6)


def _render(
    coverage: np.ndarray,
    paper: np.ndarray | float,
    ink: float,
    rng: np.random.Generator,
    noise: float,
) -> np.ndarray:
    """Ink on paper (both 0-255 greys), plus sensor noise -> uint8 (H, W)."""
    grey = paper * (1.0 - coverage) + ink * coverage + rng.normal(0, noise, coverage.shape)
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def _as_jpeg(grey: np.ndarray, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


# --- the sources -----------------------------------------------------------------------------


def scan(digit: np.ndarray, variant: str, rng: np.random.Generator) -> Image.Image:
    """One MNIST test digit (28, 28) uint8 -> a scan of it (``variant``: one of SCAN_VARIANTS)."""
    scale = rng.uniform(4, 8)
    angle = rng.uniform(2, 6) * rng.choice([-1, 1]) if variant == "scan-rotated" else 0.0
    coverage = _upscaled(digit, scale, blur=rng.uniform(0.3, 0.8) * scale, angle=angle)
    # Ink soaks in: strokes a little darker and thicker than the original's grey edges.
    coverage = np.clip(coverage * rng.uniform(1.0, 1.5), 0.0, 1.0)
    coverage = _crop(coverage, rng, tight=not variant.startswith("scan-wide"))
    paper: np.ndarray | float = rng.uniform(225, 252)
    if variant == "scan-shaded":
        paper = paper * _shading(coverage.shape, rng, rng.uniform(0.1, 0.3))
        paper = paper + rng.uniform(2, 5) * _grain(coverage.shape, rng, rng.uniform(1, 3))
    grey = _render(coverage, paper, ink=rng.uniform(10, 70), rng=rng, noise=rng.uniform(1, 4))
    if variant.endswith("jpeg") or variant == "scan-rotated":
        return _as_jpeg(grey, int(rng.integers(70, 96)))
    return Image.fromarray(grey)


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """The TrueType / OpenType fonts ``fc-list`` names that draw all ten digits, sorted, one file
    per face (family and style: Debian's fonts-liberation and fonts-liberation2 hold two
    versions of the same faces), less any face of a family the default recipe trains on
    (``seqmnist.printed``: STIX General, Computer Modern), so that no scored face was ever a
    training image."""
    try:
        listing = subprocess.run(
            ["fc-list", ":", "file"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    paths = sorted({line.split(":")[0].strip() for line in listing.splitlines() if line.strip()})
    training_families = set(printed_bank()[1])
    usable, faces = [], set()
    for path in paths:
        if Path(path).suffix.lower() not in (".ttf", ".otf") or not Path(path).is_file():
            continue
        try:
            font = ImageFont.truetype(path, 40)
        except OSError:
            continue
        if font.getname()[0] in training_families or font.getname() in faces:
            continue
        boxes = [font.getbbox(str(d)) for d in range(10)]
        if all(b[2] - b[0] > 2 and b[3] - b[1] > 10 for b in boxes):
            usable.append(path)
            faces.add(font.getname())
    return tuple(usable)


def font_digit(label: int, font_path: str, rng: np.random.Generator) -> Image.Image:
    """The digit ``label`` in a font, dark on white or light paper, a few degrees turned."""
    size = int(rng.integers(40, 121))
    font = ImageFont.truetype(font_path, size)
    canvas = Image.new("L", (size * 3, size * 3), 0)
    ImageDraw.Draw(canvas).text((size, size // 2), str(label), fill=255, font=font)
    canvas = canvas.rotate(rng.uniform(-4, 4), resample=Image.Resampling.BICUBIC)
    coverage = np.asarray(canvas, dtype=np.float32) / 255.0
    coverage = _crop(coverage, rng, tight=bool(rng.random() < 0.5), level=0.3)
    paper: np.ndarray | float = rng.uniform(215, 252)
    if rng.random() < 0.5:
        paper = paper * _shading(coverage.shape, rng, rng.uniform(0.05, 0.25))
    grey = _render(coverage, paper, ink=rng.uniform(0, 60), rng=rng, noise=rng.uniform(0, 4))
    return (
        _as_jpeg(grey, int(rng.integers(70, 96))) if rng.random() < 0.3 else Image.fromarray(grey)
    )


def font_digit_noisy(label: int, font_path: str, rng: np.random.Generator) -> Image.Image:
    """The digit ``label`` in a font, off-centre on noisy paper: the sheet is 2-4 times the
    glyph's size and the glyph sits anywhere on it; paper grain, sensor noise, JPEG half the
    time."""
    size = int(rng.integers(40, 101))
    font = ImageFont.truetype(font_path, size)
    canvas = Image.new("L", (size * 3, size * 3), 0)
    ImageDraw.Draw(canvas).text((size, size // 2), str(label), fill=255, font=font)
    canvas = canvas.rotate(rng.uniform(-4, 4), resample=Image.Resampling.BICUBIC)
    glyph = _crop(np.asarray(canvas, dtype=np.float32) / 255.0, rng, tight=True, level=0.3)
    h, w = glyph.shape
    side = int(max(h, w) * rng.uniform(2.0, 4.0))  # a square sheet around the glyph
    top, left = int(rng.integers(0, side - h + 1)), int(rng.integers(0, side - w + 1))
    coverage = np.zeros((side, side), np.float32)
    coverage[top : top + h, left : left + w] = glyph
    paper = rng.uniform(190, 245) * _shading(coverage.shape, rng, rng.uniform(0.0, 0.2))
    paper = paper + rng.uniform(3, 8) * _grain(coverage.shape, rng, rng.uniform(0.7, 2.0))
    grey = _render(coverage, paper, ink=rng.uniform(0, 70), rng=rng, noise=rng.uniform(4, 12))
    return (
        _as_jpeg(grey, int(rng.integers(60, 91))) if rng.random() < 0.5 else Image.fromarray(grey)
    )


def thin_pen(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One MNIST test digit redrawn along its centre line with a thin pen, dark on white."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    scale = rng.uniform(7, 12)
    strokes = _upscaled(digit, scale, blur=0.5 * scale) > 0.4  # smoothed first: fewer side spurs
    line = skeletonize(strokes)
    width = rng.uniform(1.5, 4.0)  # the pen's line, in pixels of a 200-330 px drawing
    distance = ndimage.distance_transform_edt(~line)
    coverage = np.clip(width / 2 + 0.5 - distance, 0.0, 1.0).astype(np.float32)  # anti-aliased
    coverage = _crop(coverage, rng, tight=bool(rng.random() < 0.5), level=0.5)
    grey = _render(
        coverage, rng.uniform(230, 255), ink=rng.uniform(0, 50), rng=rng, noise=rng.uniform(0, 3)
    )
    return Image.fromarray(grey)


def pencil(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """One MNIST test digit in faint, grainy pencil on off-white paper."""
    scale = rng.uniform(4, 8)
    coverage = _upscaled(digit, scale, blur=rng.uniform(0.1, 0.4) * scale)
    coverage = _crop(coverage, rng, tight=bool(rng.random() < 0.5))
    grain = _grain(coverage.shape, rng, 0.8)
    coverage = np.clip(
        coverage * (1.0 + 0.35 * grain), 0.0, 1.0
    )  # graphite skips the paper's tooth
    paper = rng.uniform(205, 240)
    contrast = rng.uniform(0.12, 0.30)  # the strokes are this much (of full scale) darker
    shaded = paper * _shading(coverage.shape, rng, rng.uniform(0.0, 0.15))
    grey = _render(coverage, shaded, ink=paper - 255 * contrast, rng=rng, noise=rng.uniform(1, 3))
    return (
        _as_jpeg(grey, int(rng.integers(75, 96))) if rng.random() < 0.3 else Image.fromarray(grey)
    )


def make_source(
    name: str, n: int, seed: int, test_images: np.ndarray, test_labels: np.ndarray
) -> tuple[list[Image.Image], np.ndarray, np.ndarray | None]:
    """``n`` images of one source: (PIL images, labels (n,), MNIST test indices (n,) or None).

    MNIST-derived sources use test digits 0..n-1 (the same digits for every source); ``font``
    cycles through the digits and the installed fonts."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; choose from {', '.join(SOURCES)}")
    rng = np.random.default_rng([seed, SOURCES.index(name)])
    if name in FONT_SOURCES:
        fonts = font_files()
        if not fonts:
            raise RuntimeError("no fonts found by fc-list: apt-get install fonts-dejavu-core")
        draw = font_digit if name == "font" else font_digit_noisy
        labels = np.arange(n) % 10
        images = [draw(int(d), fonts[(i // 10) % len(fonts)], rng) for i, d in enumerate(labels)]
        return images, labels, None
    indices = np.arange(n)
    digits, labels = test_images[indices], np.asarray(test_labels)[indices]
    if name in SCAN_VARIANTS:
        images = [scan(d, name, rng) for d in digits]
    elif name == "thin-pen":
        images = [thin_pen(d, rng) for d in digits]
    else:
        images = [pencil(d, rng) for d in digits]
    return images, labels, indices
