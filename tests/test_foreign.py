"""Foreign digits (tests/foreign.py): scans, font digits, thin-pen drawings and pencil made from
sources other than MNIST's training images, read through ``to_mnist`` and a real model. None may be
rejected as blank; scans must read as well as the same digits in MNIST form."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from foreign import SCAN_VARIANTS, font_files, make_source
from seqmnist.data import load_mnist
from seqmnist.images import ImageError
from seqmnist.preprocess import to_mnist

N = 150  # digits per source: the same first N MNIST test digits for every MNIST-made source


@pytest.fixture(scope="module")
def test_split(real_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    split = load_mnist(real_data_dir, train=False, download=False)
    return split.images[:N].numpy(), split.labels[:N].numpy()


@pytest.fixture(scope="module")
def clf(real_run: Path):
    from seqmnist.predict import load

    return load(real_run)


def read(clf, images: list) -> tuple[np.ndarray, int]:
    """(predicted digits, -1 where rejected; how many were rejected as ImageError)."""
    seen, rejected = [], 0
    for image in images:
        try:
            seen.append(to_mnist(image))
        except ImageError:
            rejected += 1
            seen.append(np.zeros((28, 28), np.uint8))
    with torch.inference_mode():
        predicted = clf.predict_mnist(torch.from_numpy(np.stack(seen))).argmax(1).numpy()
    return predicted, rejected


def mnist_accuracy(clf, images: np.ndarray, labels: np.ndarray) -> float:
    return float((clf.predict_mnist(torch.from_numpy(images)).argmax(1).numpy() == labels).mean())


def read_test_digits_as(clf, source: str, images, labels) -> tuple[float, float, int]:
    """MNIST test digits rendered as ``source``: (accuracy, accuracy on the same digits in MNIST
    form, how many were rejected)."""
    made, truth, _ = make_source(source, N, seed=0, test_images=images, test_labels=labels)
    predicted, rejected = read(clf, made)
    accuracy, mnist = float((predicted == truth).mean()), mnist_accuracy(clf, images, labels)
    print(f"\n{source}: {accuracy:.1%} (MNIST form {mnist:.1%}), {rejected} rejected")
    return accuracy, mnist, rejected


@pytest.mark.parametrize("variant", SCAN_VARIANTS)
def test_scans_read_as_well_as_mnist_and_none_rejected(clf, test_split, variant, torch_one_thread):
    """Upscaled, blurred MNIST test digits as dark-on-white scans: close crops touching the
    edges, wide margins, JPEG, rotated, shaded paper. Within 1.5 points (2 of 150 digits) of the
    same digits in MNIST form, and none rejected. (Rotation: 3 points. The suite's 2-epoch model
    is less tolerant of turned digits than a fully trained one, which reads them as well as MNIST
    form: see benchmarks/bench_foreign.py.)"""
    accuracy, mnist, rejected = read_test_digits_as(clf, variant, *test_split)
    assert rejected == 0
    assert accuracy >= mnist - (0.03 if variant == "scan-rotated" else 0.015)


def test_font_digits(clf, torch_one_thread):
    """The digits 0-9 in every installed font (fc-list), close or wide crops, shaded paper."""
    fonts = font_files()
    if not fonts:
        pytest.skip("no fonts installed (apt-get install fonts-dejavu-core)")
    n = min(220, 10 * len(fonts))
    made, truth, _ = make_source(
        "font",
        n,
        seed=0,
        test_images=np.zeros((0, 28, 28), np.uint8),
        test_labels=np.zeros(0, np.int64),
    )
    predicted, rejected = read(clf, made)
    accuracy = float((predicted == truth).mean())
    print(f"\nfont ({len(fonts)} fonts): {accuracy:.1%}, {rejected} rejected")
    assert rejected == 0
    # The suite's 2-epoch model reads ~85%; the default model (10 epochs) >= 95% (the benchmark).
    assert accuracy >= 0.8


def test_font_files_lists_each_face_once():
    """One file per (family, style): two packaged versions of one face (Debian's fonts-liberation
    and fonts-liberation2) would count it twice and weigh it double in the font scores."""
    from PIL import ImageFont

    faces = [ImageFont.truetype(path, 40).getname() for path in font_files()]
    assert len(faces) == len(set(faces))


@pytest.mark.parametrize("source", ["thin-pen", "pencil"])
def test_thin_pen_and_pencil(clf, test_split, source, torch_one_thread):
    accuracy, mnist, rejected = read_test_digits_as(clf, source, *test_split)
    assert rejected == 0
    assert accuracy >= mnist - 0.04


def test_a_digit_with_visible_contrast_is_never_rejected(test_split):
    """Ink touching all four edges and filling the frame, blurry, thick, thin, faint, dark on
    light and light on dark: never "no ink"."""
    images, _ = test_split
    rng = np.random.default_rng(0)
    for x in images[:30]:
        rows, cols = np.flatnonzero(x.any(1)), np.flatnonzero(x.any(0))
        crop = x[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # the ink touches every edge
        h, w = crop.shape
        big = (
            np.asarray(
                Image.fromarray(crop).resize((w * 8, h * 8), Image.Resampling.BICUBIC), np.float32
            )
            / 255
        )
        variants = {
            "dark on light": 1 - big,
            "light on dark": big,
            "blurry": 1 - ndimage.gaussian_filter(big, 8),
            "thick": 1 - ndimage.grey_dilation(big, size=(11, 11)),
            "thin": 1 - ndimage.grey_erosion(big, size=(7, 7)),
            "faint": 0.9 - 0.15 * big + rng.normal(0, 0.01, big.shape),
            "faint light on dark": 0.2 + 0.15 * big + rng.normal(0, 0.01, big.shape),
        }
        for name, image in variants.items():
            grey = np.clip(image, 0, 1).astype(np.float32)
            out = to_mnist(grey)  # raises ImageError if rejected
            assert out.max() == 255, name


def jpeg(grey: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())))


@pytest.mark.parametrize(
    "name",
    [
        "uniform",
        "white",
        "black",
        "gaussian-noise",
        "uniform-noise",
        "salt-and-pepper",
        "shaded-jpeg",
        "vignette",
        "paper-grain",
    ],
)
def test_images_without_ink_are_rejected(name):
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:300, 0:400]
    grain = ndimage.gaussian_filter(rng.normal(0, 1, (300, 400)), 2)
    image = {
        "uniform": np.full((300, 400), 131, np.uint8),
        "white": np.full((300, 400), 255, np.uint8),
        "black": np.zeros((300, 400), np.uint8),
        "gaussian-noise": np.clip(rng.normal(128, 30, (300, 400)), 0, 255).astype(np.uint8),
        "uniform-noise": rng.integers(0, 256, (300, 400)).astype(np.uint8),
        "salt-and-pepper": np.select(
            [rng.random((300, 400)) < 0.05, rng.random((300, 400)) < 0.05], [0, 255], 200
        ).astype(np.uint8),
        "shaded-jpeg": jpeg(
            (230 * (1 - 0.15 * (xx / 400) ** 2 - 0.1 * yy / 300)).astype(np.uint8), 70
        ),
        "vignette": (240 * (1 - 0.25 * ((xx / 400 - 0.5) ** 2 + (yy / 300 - 0.5) ** 2))).astype(
            np.uint8
        ),
        "paper-grain": np.clip(228 + 4 * grain / grain.std(), 0, 255).astype(np.uint8),
    }[name]
    with pytest.raises(ImageError, match="no ink found"):
        to_mnist(image)
