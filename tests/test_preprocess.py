"""Preprocessing: user images -> MNIST form. Real MNIST digits made into photos must classify as
well as the digits themselves; MNIST-form images pass through; every bad input is an ImageError."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photos import KINDS, make_photo
from seqmnist.data import load_mnist
from seqmnist.errors import SeqMnistError
from seqmnist.images import MAX_PIXELS, ImageError, open_image
from seqmnist.inputs import InputError
from seqmnist.preprocess import is_mnist_form, load_mnist_image, to_mnist


@pytest.fixture(scope="module")
def test_digits(real_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 300 real MNIST test digits: images (300, 28, 28) uint8, labels (300,)."""
    split = load_mnist(real_data_dir, train=False, download=False)
    return split.images[:300].numpy(), split.labels[:300].numpy()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two (28, 28) images."""
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


# --- MNIST form ------------------------------------------------------------------------------


def test_mnist_form_passes_through_unchanged(test_digits):
    images, _ = test_digits
    diffs = np.array([np.abs(to_mnist(x).astype(int) - x).mean() for x in images[:200]])
    assert (diffs <= 1.0).mean() >= 0.95
    assert (diffs == 0).mean() >= 0.95  # in fact exact: the pipeline is skipped
    x = images[0]
    assert np.array_equal(to_mnist(Image.fromarray(x)), x)  # as a PIL image
    assert np.array_equal(to_mnist(x.astype(np.float32) / 255), x)  # as floats in [0, 1]
    assert to_mnist(x).dtype == np.uint8 and to_mnist(x).shape == (28, 28)


def test_inverted_mnist_digit_is_recovered(test_digits):
    """Dark ink on light paper at 28x28 goes through the whole pipeline and comes back
    MNIST-like."""
    images, _ = test_digits
    scores = []
    for x in images[:20]:
        out = to_mnist(255 - x)
        assert is_mnist_form(out.astype(np.float32) / 255)
        scores.append(similarity(out, x))
    assert (
        np.median(scores) > 0.97 and min(scores) > 0.6
    )  # a one-pixel shift costs thin digits a lot


# --- photo-like digits -----------------------------------------------------------------------


def test_photo_like_digits_classify_as_well_as_mnist(real_run, test_digits):
    """300 digits as grey / RGB / JPEG / RGBA / chalkboard photos: accuracy within 1.5 points."""
    from seqmnist.predict import load

    images, labels = test_digits
    clf = load(real_run)
    rng = np.random.default_rng(0)
    kinds = [KINDS[i % len(KINDS)] for i in range(len(images))]
    photos = [make_photo(x, kind, rng) for x, kind in zip(images, kinds)]
    assert all(max(p.size) >= 28 * 4 for p in photos)
    seen = np.stack([to_mnist(p) for p in photos])  # (300, 28, 28)

    mnist_acc = (clf.predict_mnist(torch.from_numpy(images)).argmax(1).numpy() == labels).mean()
    photo_acc = (clf.predict_mnist(torch.from_numpy(seen)).argmax(1).numpy() == labels).mean()
    print(
        f"\naccuracy on {len(images)} digits: MNIST form {mnist_acc:.2%}, photo-like "
        f"{photo_acc:.2%}"
    )
    assert mnist_acc >= 0.95
    assert photo_acc >= mnist_acc - 0.015
    # And the preprocessed photos look like the digits they came from.
    assert np.median([similarity(a, b) for a, b in zip(seen, images)]) > 0.85


def test_thin_pen_strokes_are_thickened(real_run, test_digits, monkeypatch):
    """Digits written with a thin pen (MNIST strokes eroded to ~45% of their width at 10x) are
    thickened to MNIST's stroke width; without that the model misreads many of them."""
    import seqmnist.preprocess as preprocess
    from seqmnist.predict import load

    def erode(a: np.ndarray, radius: int) -> np.ndarray:
        """Grey erosion by a (2r+1)-square, as two 1-D minimum passes (fast)."""
        for axis in (0, 1):
            padded = np.pad(
                a, [(radius, radius) if ax == axis else (0, 0) for ax in (0, 1)], mode="edge"
            )
            a = np.min(
                [
                    np.take(padded, range(i, i + a.shape[axis]), axis=axis)
                    for i in range(2 * radius + 1)
                ],
                axis=0,
            )
        return a

    images, labels = test_digits[0][:100], test_digits[1][:100]
    photos = []
    for x in images:
        big = (
            np.asarray(Image.fromarray(x).resize((280, 280), Image.Resampling.BICUBIC), np.float32)
            / 255
        )
        big = erode(big, 7)  # thin strokes
        sheet = np.full((360, 340), 225.0)
        sheet[40:320, 30:310] = 225 * (1 - big) + 30 * big
        photos.append(sheet.astype(np.uint8))
    clf = load(real_run)

    def accuracy() -> float:
        seen = torch.from_numpy(np.stack([to_mnist(p) for p in photos]))
        return float((clf.predict_mnist(seen).argmax(1).numpy() == labels).mean())

    thickened = accuracy()
    monkeypatch.setattr(preprocess, "MIN_STROKE", 0.0)  # never thicken
    thin = accuracy()
    print(f"\nthin-pen digits: {thin:.0%} as drawn, {thickened:.0%} thickened")
    assert thickened >= 0.85 and thickened >= thin + 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_each_photo_kind_recovers_the_digit(test_digits, kind):
    images, _ = test_digits
    rng = np.random.default_rng(1)
    for x in images[:5]:
        out = to_mnist(make_photo(x, kind, rng))
        assert out.shape == (28, 28) and out.dtype == np.uint8
        assert similarity(out, x) > 0.75, kind
        # MNIST geometry: longer side of the ink box ~20 px, centre of mass at (14, 14)
        rows, cols = np.flatnonzero(out.any(1)), np.flatnonzero(out.any(0))
        assert 19 <= max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) <= 22
        mass = out.astype(float) / out.sum()
        assert abs((mass.sum(1) * np.arange(28)).sum() - 14) <= 0.75
        assert abs((mass.sum(0) * np.arange(28)).sum() - 14) <= 0.75


# --- file formats and modes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_rgb(test_digits) -> tuple[Image.Image, np.ndarray]:
    """One photo of a real digit (RGB, ~6x scale) and the digit it shows."""
    images, _ = test_digits
    return make_photo(images[0], "rgb", np.random.default_rng(2)), images[0]


@pytest.mark.parametrize(
    "fmt, ext",
    [
        ("PNG", "png"),
        ("JPEG", "jpg"),
        ("BMP", "bmp"),
        ("GIF", "gif"),
        ("TIFF", "tif"),
        ("WEBP", "webp"),
    ],
)
def test_every_file_format(tmp_path, photo_rgb, fmt, ext):
    photo, digit = photo_rgb
    path = tmp_path / f"digit.{ext}"
    photo.save(path, fmt)
    out = load_mnist_image(path)
    assert similarity(out, digit) > 0.8
    assert np.array_equal(load_mnist_image(path.read_bytes()), out)  # bytes (an upload) the same


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "1", "LA", "CMYK"])
def test_every_image_mode(tmp_path, photo_rgb, mode):
    photo, digit = photo_rgb
    if mode == "I;16":
        grey16 = np.asarray(photo.convert("L"), dtype=np.uint16) * 257  # full 16-bit range
        image = Image.fromarray(grey16)
        assert image.mode.startswith("I;16")
        path = tmp_path / "digit16.png"
        image.save(path)
        assert Image.open(path).mode.startswith("I")
    else:
        # mode "1": a thresholded scan (Pillow's default conversion dithers the paper into dots)
        image = (
            photo.convert("L").point(lambda v: 255 if v > 128 else 0).convert("1")
            if mode == "1"
            else photo.convert(mode)
        )
        path = tmp_path / ("digit.tif" if mode == "CMYK" else "digit.png")
        image.save(path)
    out = load_mnist_image(path)
    assert similarity(out, digit) > 0.75, mode


def test_gif_first_frame_is_used(tmp_path, test_digits):
    images, _ = test_digits
    rng = np.random.default_rng(3)
    first, second = (
        make_photo(images[i], "grey", rng).resize((200, 200)) for i in (0, 1)
    )  # a 7 and a 2
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100)
    assert Image.open(path).n_frames == 2
    out = load_mnist_image(path)
    assert similarity(out, images[0]) > similarity(out, images[1]) + 0.2


def test_exif_orientation_is_applied(tmp_path, photo_rgb):
    """A phone stores the photo sideways with EXIF Orientation 6 (rotate 90 degrees clockwise
    to view)."""
    photo, digit = photo_rgb
    sideways = photo.transpose(Image.Transpose.ROTATE_90)  # as the sensor saw it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    path = tmp_path / "phone.jpg"
    sideways.save(path, "JPEG", exif=exif.tobytes(), quality=90)
    opened = open_image(path)
    assert opened.size == photo.size
    assert similarity(to_mnist(opened), digit) > 0.8


def test_large_jpeg_is_decoded_at_reduced_scale(tmp_path, photo_rgb):
    photo, digit = photo_rgb
    path = tmp_path / "big.jpg"
    width, height = photo.size
    photo.resize((width * 12, height * 12)).save(path, "JPEG", quality=85)  # ~10-15 megapixels
    assert min(width, height) * 12 > 2048
    opened = open_image(path)
    assert min(opened.size) >= 1024 and max(opened.size) <= max(width, height) * 6
    assert similarity(to_mnist(opened), digit) > 0.8


def test_arrays_of_every_shape_and_dtype(photo_rgb):
    photo, digit = photo_rgb
    rgb = np.asarray(photo)  # (H, W, 3) uint8
    grey = np.asarray(photo.convert("L"))
    for array in (
        grey,
        grey[..., None],
        rgb,
        np.dstack([rgb, np.full(grey.shape, 255, np.uint8)]),
        grey.astype(np.float32) / 255,
        grey.astype(np.float64),
        grey.astype(np.uint16) * 257,
    ):
        assert similarity(to_mnist(array), digit) > 0.8, (array.dtype, array.shape)
    assert similarity(to_mnist(grey < 128), digit) > 0.7  # bool: True where the ink is
    floats = grey.astype(np.float32) / 255
    before = floats.copy()
    to_mnist(floats)
    assert np.array_equal(floats, before)  # the caller's array is left alone


def test_light_and_dark_paper_give_the_same_digit(photo_rgb):
    photo, _ = photo_rgb
    grey = np.asarray(photo.convert("L"))
    a, b = to_mnist(grey), to_mnist(255 - grey)
    assert np.abs(a.astype(int) - b).mean() < 8


def test_big_image_is_reduced_first(test_digits):
    images, _ = test_digits
    big = Image.fromarray(255 - images[0]).resize((3000, 3000), Image.Resampling.BICUBIC)
    assert similarity(to_mnist(big), images[0]) > 0.85


# --- bad inputs ------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG that is only a signature, a valid IHDR claiming width x height, and IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_bad_files_are_image_errors_naming_the_file(tmp_path, photo_rgb):
    photo, _ = photo_rgb
    good = tmp_path / "good.png"
    photo.save(good)
    cases = {
        "missing.png": ("no such file", None),
        "empty.png": ("empty", b""),
        "truncated.png": ("truncated", good.read_bytes()[: len(good.read_bytes()) // 2]),
        "text.png": ("not an image", b"this is a text file, not a PNG\n"),
        "bomb.png": (
            "pixels",
            png_header(100_000, 100_000),
        ),  # 10 billion pixels claimed in 57 bytes
        "big.png": (
            "pixels",
            png_header(8000, 8000),
        ),  # 64 MP: over MAX_PIXELS, under Pillow's limit
    }
    for name, (expected, data) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ImageError) as info:
            open_image(path)
        message = str(info.value)
        assert str(path) in message and expected in message, message
        assert isinstance(info.value, SeqMnistError)
    with pytest.raises(ImageError, match="folder"):
        open_image(tmp_path)


def test_only_raster_formats_are_decoded(tmp_path, photo_rgb):
    """Formats outside the list (EPS would run Ghostscript; PPM, ICO ...) are refused."""
    photo, _ = photo_rgb
    for fmt in ("PPM", "ICO"):
        path = tmp_path / f"digit.{fmt.lower()}"
        photo.convert("RGB").save(path, fmt)
        with pytest.raises(ImageError, match="not an image in a format this reads"):
            open_image(path)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nshowpage\n"
    with pytest.raises(ImageError, match="not an image in a format"):
        open_image(eps)


def test_bad_uploads_are_image_errors_naming_the_upload(photo_rgb):
    photo, _ = photo_rgb
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    data = buffer.getvalue()
    for bad, expected in [
        (b"", "empty"),
        (data[:200], "truncated"),
        (b"GIF89a nonsense", "upload"),
    ]:
        with pytest.raises(ImageError, match=expected) as info:
            open_image(bad)
        assert "upload" in str(info.value)


def test_pixel_limit_is_checked_before_decoding(photo_rgb):
    photo, _ = photo_rgb
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    width, height = photo.size
    with pytest.raises(ImageError, match=f"over the limit of {width * height - 1:,}"):
        open_image(buffer.getvalue(), max_pixels=width * height - 1)
    assert open_image(buffer.getvalue(), max_pixels=width * height).size == photo.size
    assert MAX_PIXELS >= 10_000_000


@pytest.mark.parametrize("name", ["white", "black", "grey-noise", "gradient", "transparent"])
def test_blank_images_have_no_ink(name):
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:300, 0:400]
    image = {
        "white": np.full((300, 400), 255, np.uint8),
        "black": np.zeros((300, 400), np.uint8),
        "grey-noise": np.clip(rng.normal(200, 8, (300, 400)), 0, 255).astype(np.uint8),
        "gradient": (120 + 100 * xx / 400 + 20 * yy / 300).astype(np.uint8),
        "transparent": np.zeros((300, 400, 4), np.uint8),
    }[name]
    with pytest.raises(ImageError, match="no ink found"):
        to_mnist(image)


def test_no_ink_error_names_the_file(tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", (100, 100), "white").save(path)
    with pytest.raises(ImageError, match=r"blank\.png.*no ink found"):
        load_mnist_image(path)


def test_bad_arrays_are_image_errors():
    for array in (
        np.zeros((5, 5, 7)),
        np.zeros((0, 10)),
        np.full((10, 10), np.nan),
        np.zeros((2, 3, 4, 5)),
    ):
        with pytest.raises(ImageError):
            to_mnist(array)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble])
def test_float_pixels_far_beyond_0_255_are_refused_without_warnings(dtype):
    """1e300 in a float64 array once overflowed a cast to float32 (a RuntimeWarning, then a wrong
    "infinite values" error). By the input contract, floats far above 255 are no range it can
    place: one line naming ``value_range``, as ``predict`` says for the same array."""
    huge = np.zeros((28, 28), dtype=dtype)
    huge[6:22, 12:16] = np.finfo(dtype).max
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="value_range"):
            to_mnist(huge)


def test_a_heavy_bold_zero_is_not_reported_blank():
    """DejaVu Sans Bold (shipped with matplotlib) with Pillow's stroke of 10 px closes the 0's
    counter to a slit: the thinning, sized by the median width of the filled blob, erased every
    stroke and to_mnist said "no ink found". The drawing is kept instead: a digit, not blank."""
    import matplotlib  # the test extra installs it (seqmnist[all])
    from PIL import ImageDraw, ImageFont

    font_file = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    size = 93
    canvas = Image.new("L", (size * 3, size * 3), 255)
    font = ImageFont.truetype(str(font_file), size)
    ImageDraw.Draw(canvas).text(
        (size, size // 2), "0", fill=0, font=font, stroke_width=10, stroke_fill=0
    )
    digit = to_mnist(canvas)  # (28, 28) uint8
    ink = digit > 127
    assert ink.sum() > 60  # a glyph-sized blob, not a speck
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    assert rows[-1] - rows[0] >= 15 and cols[-1] - cols[0] >= 8  # a 0's height and width
