"""Warnings that come with an answer (issue 19, requirements 8 and 9): several digits side by side,
and ink at the image's frame (a dark border, the desk, a rotation's fill at the corners), which
is removed before the digit is found where it can be told from the digit. Real MNIST test digits
throughout; the false-warning rate is measured on them and on the scans of tests/foreign.py."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foreign import make_source
from seqmnist.data import load_mnist
from seqmnist.preprocess import load_mnist_image, to_mnist

SEVERAL = "separate digit-sized parts side by side"
FRAME = "image's edge"


@pytest.fixture(scope="module")
def test_split(real_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 2,000 real MNIST test digits: images (2000, 28, 28) uint8, labels (2000,)."""
    split = load_mnist(real_data_dir, train=False, download=False)
    return split.images[:2000].numpy(), split.labels[:2000].numpy()


def notes_of(image) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    out = to_mnist(image, notes=notes)
    assert out.shape == (28, 28) and out.dtype == np.uint8  # an answer either way
    return out, notes


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def ink_columns(digit: np.ndarray) -> np.ndarray:
    """The digit (28, w) cut to the columns that hold its ink."""
    cols = np.flatnonzero(digit.any(axis=0))
    return digit[:, cols[0] : cols[-1] + 1]


def side_by_side(digits: list[np.ndarray], gap: int, scale: int = 6) -> Image.Image:
    """MNIST digits written in a row, ``gap`` px apart (at 28 px), dark on white, upscaled."""
    blank = np.zeros((28, 4), np.uint8)
    parts = [blank]
    for i, digit in enumerate(digits):
        parts += [np.zeros((28, gap), np.uint8)] if i else []
        parts.append(ink_columns(digit))
    row = np.concatenate([*parts, blank], axis=1)
    h, w = row.shape
    return Image.fromarray(255 - row).resize((w * scale, h * scale), Image.Resampling.BICUBIC)


# --- several digits ----------------------------------------------------------------------------


def test_two_digits_side_by_side_warn(test_split):
    """Two MNIST test digits pasted side by side, 1-6 px apart at MNIST's scale: a warning
    naming two parts, and still an answer."""
    images, _ = test_split
    rng = np.random.default_rng(0)
    fired = 0
    for _ in range(60):
        a, b = rng.integers(0, len(images), size=2)
        _, notes = notes_of(side_by_side([images[a], images[b]], gap=int(rng.integers(1, 7))))
        fired += any(SEVERAL in n and "2 separate" in n for n in notes)
    assert fired >= 57  # measured: 1,195 of 1,200 at these gaps (a short "1" can miss)


def test_seventy_three_and_three_digits(test_split):
    images, labels = test_split
    seven, three, five = (images[np.flatnonzero(labels == d)[0]] for d in (7, 3, 5))
    _, notes = notes_of(side_by_side([seven, three], gap=3))
    assert any("2 separate digit-sized parts" in n and "crop to one digit" in n for n in notes)
    _, notes = notes_of(side_by_side([seven, three, five], gap=3))
    assert any("3 separate digit-sized parts" in n for n in notes)


def test_load_mnist_image_passes_notes_through(tmp_path, test_split):
    images, labels = test_split
    seven, three = (images[np.flatnonzero(labels == d)[0]] for d in (7, 3))
    path = tmp_path / "73.png"
    side_by_side([seven, three], gap=3).save(path)
    notes: list[str] = []
    assert load_mnist_image(path, notes=notes).shape == (28, 28)
    assert any(SEVERAL in n for n in notes)
    assert load_mnist_image(path).shape == (28, 28)  # notes stay optional


def test_single_mnist_digits_seldom_warn(test_split):
    """The first 2,000 MNIST test digits as they arrive from people (dark on white, 4x upscaled):
    at most 0.5 % may get any warning. Measured: 1 of 10,000 6x upscaled, 2 of 10,000 as they
    are, 18 of 10,000 cut exactly to their ink (0.18 %: a 7's bar along the edge), at most 1 of
    2,000 of each scan variant, thin pen and pencil."""
    images, _ = test_split
    warned = 0
    for digit in images:
        image = Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.BICUBIC)
        warned += bool(notes_of(image)[1])
    assert warned <= 0.005 * len(images)


@pytest.mark.parametrize("source", ["scan-tight", "scan-rotated", "thin-pen", "pencil"])
def test_scans_seldom_warn(test_split, source):
    """Detached strokes (the bar of a 5 or a 7, a 4's stem), a thin pen's broken lines and
    strokes cut by a tight crop are one digit, and no frame: at most 1 warning in 300."""
    images, labels = test_split
    made, _, _ = make_source(source, 300, seed=0, test_images=images, test_labels=labels)
    warned = [i for i, image in enumerate(made) if notes_of(image)[1]]
    assert len(warned) <= 1, warned


# --- ink at the frame --------------------------------------------------------------------------


def faint_pencil(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A faint pencil digit (12-30 % darker than the paper) on a 448 px sheet, margins kept."""
    big = Image.fromarray(digit).resize((224, 224), Image.Resampling.BICUBIC)
    cov = np.pad(np.asarray(big, np.float32) / 255.0, 112)
    grey = 220.0 - 255 * rng.uniform(0.12, 0.3) * cov + rng.normal(0, 2, cov.shape)
    return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))


def as_jpeg(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return Image.open(io.BytesIO(buffer.getvalue()))


def dark_frame(image: Image.Image, width: float = 0.06) -> Image.Image:
    grey = np.asarray(image).copy()
    t = int(width * min(grey.shape))
    grey[:t], grey[-t:], grey[:, :t], grey[:, -t:] = 30, 30, 30, 30
    return Image.fromarray(grey)


def desk_below(image: Image.Image, depth: float = 0.15) -> Image.Image:
    grey = np.asarray(image).copy()
    grey[-int(depth * grey.shape[0]) :] = 60
    return Image.fromarray(grey)


def test_frame_junk_is_removed_before_the_digit_is_found(test_split):
    """A faint pencil digit photographed with a dark border, the desk below, or turned 5-10
    degrees with dark corners (PNG and JPEG) gives the 28x28 of the same photo without them.
    Before: the frame was the darkest "ink" and became the digit (a 2 read as 7)."""
    images, _ = test_split
    rng = np.random.default_rng(0)
    scores: dict[str, list[float]] = {}
    for digit in images[:12]:
        photo = faint_pencil(digit, rng)
        angle = rng.uniform(5, 10) * rng.choice([-1, 1])
        turned = photo.rotate(angle, Image.Resampling.BICUBIC, fillcolor=220)  # paper fill
        dark_corners = photo.rotate(angle, Image.Resampling.BICUBIC, fillcolor=20)
        cases = {
            "dark frame": (dark_frame(photo), photo),
            "dark frame, JPEG": (as_jpeg(dark_frame(photo)), photo),
            "desk below": (desk_below(photo), photo),
            "turned, dark corners": (dark_corners, turned),
            "turned, dark corners, JPEG": (as_jpeg(dark_corners), turned),
        }
        for name, (image, clean) in cases.items():
            out, notes = notes_of(image)
            assert not any(FRAME in n for n in notes), name  # removed, so nothing to warn of
            scores.setdefault(name, []).append(similarity(out, to_mnist(clean)))
    for name, values in scores.items():
        # a one-pixel shift of a thin digit costs ~0.3 of similarity: the median is the test
        assert np.median(values) > 0.95 and min(values) > 0.6, (name, np.round(values, 2))


def test_ink_joined_to_the_frame_is_kept_with_a_warning(test_split):
    """A 7 whose bar runs into a dark border cannot be told from the border by shape alone: the
    answer comes with a warning to crop."""
    images, labels = test_split
    seven = ink_columns(images[np.flatnonzero(labels == 7)[0]])  # its bar reaches the left edge
    big = Image.fromarray(seven).resize((seven.shape[1] * 8, 224), Image.Resampling.BICUBIC)
    cov = np.asarray(big, np.float32) / 255.0
    sheet = np.full((300, 300), 225.0)
    sheet[40:264, 20 : 20 + cov.shape[1]] -= 195 * cov  # dark ink, 20 px from the left edge
    sheet[:, :22] = 30  # a dark border that the bar runs into
    _, notes = notes_of(Image.fromarray(sheet.astype(np.uint8)))
    assert any(FRAME in n and "crop to the digit" in n for n in notes)


def test_a_digit_shaped_like_a_frame_is_kept_with_a_warning(monkeypatch):
    """A 7 cropped so close that its bar and stem run along two edges looks like frame junk and
    nothing else: painted over, only its own fringe would be left. It is kept, with a warning."""
    import seqmnist.preprocess as preprocess

    seven = np.full((160, 136), 235, np.uint8)
    seven[:14] = 20  # the bar along the top edge
    for y in range(160):  # the stem down the right edge, drifting a little to the left
        x = 136 - int(y * 0.15)
        seven[y, x - 14 : x] = 20
    out, notes = notes_of(Image.fromarray(seven))
    assert any(FRAME in n for n in notes)
    monkeypatch.setattr(preprocess, "FRAME_PASSES", 0)
    assert np.array_equal(to_mnist(Image.fromarray(seven)), out)


def test_tight_crops_keep_their_strokes(test_split, monkeypatch):
    """MNIST digits cut exactly to their ink (it touches every edge), 8x upscaled - the first 300
    and every "1" narrower than 6 px (its stroke runs along both long sides) - warn of nothing
    and lose no ink to frame removal: the 28x28 is exactly what it is with frame removal off."""
    import seqmnist.preprocess as preprocess

    images, _ = test_split
    widths = np.array([np.ptp(np.flatnonzero(d.any(0))) + 1 for d in images])
    chosen = sorted({*range(300), *np.flatnonzero(widths <= 5)})
    crops = []
    for digit in images[chosen]:
        rows, cols = np.flatnonzero(digit.any(1)), np.flatnonzero(digit.any(0))
        crop = digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        h, w = crop.shape
        crops.append(Image.fromarray(255 - crop).resize((w * 8, h * 8), Image.Resampling.BICUBIC))
    seen = []
    for image in crops:
        out, notes = notes_of(image)
        assert notes == []
        seen.append(out)
    monkeypatch.setattr(preprocess, "FRAME_PASSES", 0)
    for image, out in zip(crops, seen):
        assert np.array_equal(to_mnist(image), out)
