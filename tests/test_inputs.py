"""The input contract of ``Classifier.predict`` (``seqmnist.inputs``): same pixels, same answer.

Two halves. The shape rules alone, fast and without a model. Then a trained model on real MNIST
test digits: every representation the contract accepts (numpy and torch, each layout, dtype and
value range, single items, lists, batches, flat rows, PIL modes, bytes, paths) must give the
same 28x28 image and label as the plain uint8 (28, 28) digit, as a Hypothesis property; the
forms it refuses say so in one line. The regression tests at the end are the rows of issue 19's
table, each of which failed before the contract existed.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import seqmnist
from seqmnist.data import MNIST_MEAN, MNIST_STD, load_mnist
from seqmnist.errors import ImageError
from seqmnist.inputs import (
    AmbiguousLayoutWarning,
    InputError,
    item_pixels,
    split_images,
    to_unit_range,
)
from seqmnist.predict import Classifier, _prediction
from seqmnist.preprocess import load_mnist_image as preprocess_file
from seqmnist.preprocess import to_mnist

# --- shapes alone ----------------------------------------------------------------------------

ARRAY = np.zeros  # the rules read shapes; the values do not matter here


@pytest.mark.parametrize(
    ("shape", "count", "single"),
    [
        ((28, 28), 1, True),
        ((28, 28, 1), 1, True),
        ((40, 30, 3), 1, True),
        ((40, 30, 4), 1, True),
        ((784,), 1, True),
        ((1, 784), 1, False),
        ((5, 784), 5, False),
        ((7, 28, 28), 7, False),
        ((1, 28, 28), 1, False),
        ((6, 1, 28, 28), 6, False),
        ((6, 3, 28, 28), 6, False),
        ((6, 28, 28, 1), 6, False),
        ((6, 28, 28, 4), 6, False),
        ((0, 28, 28), 0, False),
    ],
)
def test_shapes_are_read_without_a_warning(shape, count, single, recwarn):
    for container in (np.asarray, torch.from_numpy):
        items, is_single = split_images(container(ARRAY(shape, np.uint8)))
        assert (len(items), is_single) == (count, single), shape
        for item in items:
            assert item_pixels(item).shape[:2] in ((28, 28), (40, 30)), shape
    assert not recwarn.list


@pytest.mark.parametrize("channels", [3, 4])
def test_a_3d_array_with_3_or_4_first_is_a_batch_with_a_warning(channels):
    x = torch.zeros(channels, 28, 28)
    with pytest.warns(AmbiguousLayoutWarning, match="layout='CHW'"):
        items, _ = split_images(x)
    assert len(items) == channels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(split_images(x, layout="NHW")[0]) == channels
        (item,), single = split_images(x, layout="CHW")
    assert single and item_pixels(item).shape == (28, 28, channels)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (np.zeros((3, 28, 3)), "layout="),
        (np.zeros((2, 3, 28, 3)), "layout="),
        (np.zeros((5, 785)), "label"),
        (np.zeros((785,)), "label"),
        (np.zeros((100,)), "784"),
        (np.zeros((2, 2, 2, 28, 28)), "shape"),
        (np.float32(3.0), "shape"),
        ([[0, 1], [2, 3]], "np.asarray"),
        ([0.5] * 784, "np.asarray"),
    ],
)
def test_refused_calls_name_the_form_and_the_fix(value, words):
    with pytest.raises(InputError, match=words) as info:
        split_images(value)
    assert "\n" not in str(info.value)


def test_layout_argument_is_checked():
    with pytest.raises(InputError, match="layout must be one of"):
        split_images(np.zeros((28, 28)), layout="nchw")
    with pytest.raises(InputError, match="needs 4 dimensions"):
        split_images(np.zeros((28, 28)), layout="NCHW")
    with pytest.raises(InputError, match="describes a batch"):
        split_images([np.zeros((28, 28))], layout="NHW")
    # an explicit layout wins over the flat-row rule: a 784-wide image is an image
    (item,), _ = split_images(np.zeros((3, 784)), layout="HW")
    assert item_pixels(item).shape == (3, 784)


@pytest.mark.parametrize(
    ("shape", "words"),
    [((5, 28, 28), "not one image"), ((2, 1, 28, 28), "not one image"), ((3, 28, 4), "layout")],
)
def test_list_items_that_are_not_one_image_are_refused(shape, words):
    (item,), _ = split_images([np.zeros(shape, np.uint8)])
    with pytest.raises(InputError, match=words):
        item_pixels(item)


# --- values alone ----------------------------------------------------------------------------

DIGITISH = np.arange(256, dtype=np.uint8).reshape(16, 16)  # every 8-bit level once
LIGHT_IMAGE = np.linspace(40, 255, 64).round().reshape(8, 8)  # grey ink on white paper, no black


@pytest.mark.parametrize(
    "encode",
    [
        lambda x: x.astype(np.uint16),  # 8-bit samples in a 16-bit container
        lambda x: x.astype(np.uint16) * 257,  # 16-bit samples
        lambda x: x.astype(np.int32),
        lambda x: x.astype(np.int64),
        lambda x: x.astype(np.float32) / 255,
        lambda x: x.astype(np.float64) / 255,
        lambda x: x.astype(np.float16) / np.float16(255),
        lambda x: x.astype(np.float32),  # floats 0..255
        lambda x: ((x / 255 - MNIST_MEAN) / MNIST_STD).astype(np.float32),
    ],
)
def test_every_value_encoding_gives_the_same_levels(encode):
    levels = np.rint(to_unit_range(encode(DIGITISH)) * 255)
    assert np.abs(levels - DIGITISH).max() <= (1 if encode(DIGITISH).dtype == np.float16 else 0)


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8), "value_range"),
        (np.linspace(0, 3000, 64).astype(np.uint16).reshape(8, 8), "12-bit"),
        (np.full((8, 8), -3, np.int16), "negative"),
        (np.linspace(0, 1000, 64, dtype=np.float32).reshape(8, 8), "value_range"),
        (np.full((8, 8), np.nan, np.float32), "NaN"),
        (np.array([["a"]]), "numbers"),
        # MNIST-normalised pixels of a light image without pure black (paper, grey ink): once
        # read as 0..255, so as a blank image ("no ink found" for a plain digit)
        (((LIGHT_IMAGE / 255 - MNIST_MEAN) / MNIST_STD).astype(np.float32), "'mnist'"),
    ],
)
def test_ranges_the_rules_cannot_tell_are_refused(array, words):
    with pytest.raises(InputError, match=words):
        to_unit_range(array)


def test_value_range_states_the_range():
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    assert to_unit_range(x, (-1, 1)).min() == 0.0 and to_unit_range(x, (-1, 1)).max() == 1.0
    twelve_bit = np.linspace(0, 4095, 64).astype(np.uint16).reshape(8, 8)
    assert to_unit_range(twelve_bit, (0, 4095)).max() == 1.0
    normalised = ((DIGITISH / 255 - MNIST_MEAN) / MNIST_STD).astype(np.float32)
    assert np.array_equal(np.rint(to_unit_range(normalised, "mnist") * 255), DIGITISH)
    light = ((LIGHT_IMAGE / 255 - MNIST_MEAN) / MNIST_STD).astype(np.float32)
    assert np.array_equal(np.rint(to_unit_range(light, "mnist") * 255), LIGHT_IMAGE)
    with pytest.raises(InputError, match="outside value_range"):
        to_unit_range(DIGITISH, (0, 1))
    for bad in ((1, 0), "unit", (0, float("inf")), 3):
        with pytest.raises(InputError, match="value_range"):
            to_unit_range(DIGITISH, bad)


# --- a real model on real digits -------------------------------------------------------------


@pytest.fixture(scope="module")
def clf(real_run: Path) -> Classifier:
    return seqmnist.load(real_run)


@pytest.fixture(scope="module")
def digits(real_data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 64 MNIST test digits, uint8 (64, 28, 28), and their labels (64,)."""
    split = load_mnist(real_data_dir, train=False, download=False)
    return split.images[:64].numpy(), split.labels[:64].numpy()


@pytest.fixture(scope="module")
def reference(clf, digits):
    """What the plain uint8 (28, 28) form gives: (28x28 image seen, label) per digit."""
    return [(p.image, p.label) for p in clf.predict(list(digits[0]))]


def _values(digit: np.ndarray, encoding: str) -> np.ndarray:
    """(28, 28) uint8 -> the same pixels in another dtype and value range."""
    x = digit.astype(np.float64)
    return {
        "uint8": digit,
        "uint16 8-bit": digit.astype(np.uint16),
        "uint16 16-bit": digit.astype(np.uint16) * 257,
        "int32": digit.astype(np.int32),
        "int64": digit.astype(np.int64),
        "float16 0..1": (x / 255).astype(np.float16),
        "float32 0..1": (x / 255).astype(np.float32),
        "float64 0..1": x / 255,
        "float32 0..255": x.astype(np.float32),
        "float64 0..255": x,
        "float32 mnist": ((x / 255 - MNIST_MEAN) / MNIST_STD).astype(np.float32),
        "float64 mnist": (x / 255 - MNIST_MEAN) / MNIST_STD,
    }[encoding]


ENCODINGS = [
    "uint8",
    "uint16 8-bit",
    "uint16 16-bit",
    "int32",
    "int64",
    "float16 0..1",
    "float32 0..1",
    "float64 0..1",
    "float32 0..255",
    "float64 0..255",
    "float32 mnist",
    "float64 mnist",
]
LOSSY = {"float16 0..1"}  # 11 bits of mantissa: a level may move by one


def _channels(x: np.ndarray, layout: str, white: np.generic) -> np.ndarray:
    """(28, 28) -> one image in ``layout``: HW, HWC1, CHW1, HWC3, CHW3, HWC4, CHW4 or flat;
    a fourth channel is opaque alpha (``white``, the top of the encoding's range)."""
    if layout == "HW":
        return x
    if layout == "flat":
        return x.reshape(784)
    channels = int(layout[-1])
    planes = [x] * min(channels, 3)
    if channels == 4:
        planes.append(np.full_like(x, white))
    stacked = np.stack(planes, axis=-1)  # (28, 28, C)
    return stacked if layout.startswith("HWC") else np.moveaxis(stacked, -1, 0)


ITEM_LAYOUTS = ["HW", "HWC1", "CHW1", "HWC3", "CHW3", "HWC4", "CHW4", "flat"]


def _call(images: list[np.ndarray], layout: str, form: str, torchify: bool):
    """Several images of one layout -> predict's argument as a list or a batch, and layout=."""
    to = torch.from_numpy if torchify else np.asarray
    if form == "list":
        return [to(np.ascontiguousarray(x)) for x in images], None
    # Every batch layout is read from its shape, except three grey (28, 28) images: (3, 28, 28)
    # is also one RGB image channels first, so it is named (or it would warn).
    return to(np.stack(images)), ("NHW" if layout == "HW" else None)


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    index=st.integers(0, 63),
    encoding=st.sampled_from(ENCODINGS),
    layout=st.sampled_from(ITEM_LAYOUTS),
    form=st.sampled_from(["single", "list", "batch"]),
    torchify=st.booleans(),
    position=st.integers(0, 2),
)
def test_same_pixels_same_answer(
    clf, digits, reference, index, encoding, layout, form, torchify, position
):
    """A digit in any accepted representation, alone or among others, gives what its uint8
    (28, 28) form gives: the same 28x28 image (to a level for float16) and the same label."""
    images, labels = digits
    others = [(index + 1 + k) % 64 for k in range(2)]
    order = others[:position] + [index] + others[position:]
    white = _values(np.full((28, 28), 255, np.uint8), encoding)[0, 0]
    one = [_channels(_values(images[i], encoding), layout, white) for i in order]
    if form == "single":
        to = torch.from_numpy if torchify else np.asarray
        x = to(np.ascontiguousarray(one[position]))
        named = "CHW" if layout in ("CHW3", "CHW4") else None  # (3|4, H, W) alone: ambiguous
        results = clf.predict(x, layout=named)
        assert len(results) == 1
        got = results[0]
    else:
        x, named = _call(one, layout, form, torchify)
        results = clf.predict(x, layout=named, errors="raise")
        assert len(results) == 3
        got = results[position]
    seen, label = reference[index]
    tolerance = 1 if encoding in LOSSY else 0
    assert got.label == label
    assert np.abs(got.image.astype(int) - seen.astype(int)).max() <= tolerance


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_to_mnist_reads_arrays_by_the_same_value_rules_as_predict(digits, encoding):
    """``preprocess.to_mnist`` called directly on an array (as scripts and notebooks do) reads its
    values by the contract's rules, as ``predict`` does: the same 28x28 image for every encoding,
    both for a digit already in MNIST form and for a dark digit off-centre on light paper (the
    whole pipeline). Before, to_mnist had rules of its own: a uint16 array of 8-bit samples was
    read as a near-black image, MNIST-normalised floats as 0..255."""
    white = _values(np.full((28, 28), 255, np.uint8), encoding)[0, 0]
    tolerance = 1 if encoding in LOSSY else 0
    for digit in digits[0][:6]:
        paper = np.full((64, 80), 255, np.uint8)
        # (64, 80): dark ink on light paper, off-centre; its darkest pixel is black, which tells
        # MNIST-normalised pixels (a light image without black is refused: test above)
        paper[20:48, 30:58] = 255 - np.rint(digit * (255 / digit.max())).astype(np.uint8)
        for picture in (digit, paper):
            expected = to_mnist(picture)  # (28, 28) uint8
            for layout in ("HW", "HWC1", "HWC3", "HWC4"):
                got = to_mnist(_channels(_values(picture, encoding), layout, white))
                assert np.abs(got.astype(int) - expected).max() <= tolerance, (encoding, layout)


PIL_FORMS = {
    "L": lambda d: Image.fromarray(d, "L"),
    "RGB": lambda d: Image.fromarray(d, "L").convert("RGB"),
    "RGBA": lambda d: Image.fromarray(d, "L").convert("RGBA"),
    "P": lambda d: Image.fromarray(d, "L").convert("P"),
    "I;16 8-bit": lambda d: Image.fromarray(d.astype(np.uint16)),
    "I;16 16-bit": lambda d: Image.fromarray(d.astype(np.uint16) * 257),
}


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", list(PIL_FORMS))
def test_pil_images_bytes_paths_and_their_arrays_agree(clf, digits, reference, mode, tmp_path):
    """Each PIL mode, its PNG bytes, its file and ``np.array(Image.open(file))`` read alike."""
    images, _ = digits
    pil = [PIL_FORMS[mode](d) for d in images[:16]]
    paths = []
    for n, image in enumerate(pil):
        paths.append(tmp_path / f"digit{n}.png")
        image.save(paths[-1])
    reopened = [np.array(Image.open(p)) for p in paths]  # uint16 for the I;16 modes
    for form in (pil, [_png(i) for i in pil], paths, reopened):
        results = clf.predict(form, errors="raise")
        for n, got in enumerate(results):
            seen, label = reference[n]
            assert got.label == label and np.array_equal(got.image, seen), (mode, n)


# --- issue 19's table: each row failed before the contract -----------------------------------


def test_totensor_of_an_rgb_photo_is_one_image_when_named(clf, digits, reference):
    rgb = torch.from_numpy(np.stack([digits[0][0]] * 3)).float() / 255  # ToTensor()(rgb): (3,H,W)
    with pytest.warns(AmbiguousLayoutWarning):
        assert len(clf.predict(rgb)) == 3
    (p,) = clf.predict(rgb, layout="CHW")
    assert p.label == reference[0][1]
    rgba = torch.cat([rgb, torch.ones(1, 28, 28)])
    (p,) = clf.predict([rgba])  # in a list: channels first, no warning
    assert p.label == reference[0][1]


def test_a_28_28_1_tensor_is_one_image(clf, digits, reference):
    results = clf.predict(torch.from_numpy(digits[0][3])[:, :, None])
    assert [p.label for p in results] == [reference[3][1]]


def test_torchvision_items_and_dataloader_batches(clf, digits, reference):
    items = [torch.from_numpy(d)[None].float() / 255 for d in digits[0][:8]]  # dataset[i][0]
    labels = [label for _, label in reference[:8]]
    assert [p.label for p in clf.predict(items, errors="raise")] == labels
    batch = torch.stack(items)  # (8, 1, 28, 28)
    assert [p.label for p in clf.predict(batch, errors="raise")] == labels


def test_a_float_tensor_of_0_to_255_is_not_clamped(clf, digits, reference):
    batch = torch.from_numpy(digits[0][:16]).float()  # values 0..255
    got = clf.predict(batch, errors="raise")
    assert all(np.array_equal(p.image, reference[n][0]) for n, p in enumerate(got))


def test_a_numpy_array_normalised_the_mnist_way(clf, digits, reference):
    normalised = (digits[0][:16] / 255 - MNIST_MEAN) / MNIST_STD
    got = clf.predict(normalised.astype(np.float32), errors="raise")
    assert [p.label for p in got] == [label for _, label in reference[:16]]


def test_kaggle_csv_rows(clf, digits, reference):
    rows = digits[0][:5].reshape(5, 784).astype(np.int64)  # pandas gives int64
    assert [p.label for p in clf.predict(rows)] == [label for _, label in reference[:5]]
    assert [p.label for p in clf.predict(rows[:1])] == [reference[0][1]]
    with_labels = np.concatenate([digits[1][:5, None], rows], axis=1)  # train.csv: (5, 785)
    with pytest.raises(InputError, match="label"):
        clf.predict(with_labels)


def test_uint16_array_of_a_16_bit_png_with_8_bit_samples(clf, digits, reference, tmp_path):
    path = tmp_path / "sixteen.png"
    Image.fromarray(digits[0][5].astype(np.uint16)).save(path)
    array = np.array(Image.open(path))
    assert array.dtype == np.uint16 and array.max() <= 255
    (from_array,) = clf.predict(array)
    (from_path,) = clf.predict(path)
    assert from_array.label == from_path.label == reference[5][1]
    assert np.array_equal(from_array.image, from_path.image)


def test_low_top_probability_is_a_warning(clf):
    noise = np.random.default_rng(0).integers(0, 2, (28, 28), dtype=np.uint8) * 255
    x = np.zeros((28, 28), np.uint8)
    x[8:20, 8:20] = noise[8:20, 8:20]  # a blob: no digit, and the model should be unsure
    (p,) = clf.predict(x)
    top = p.top_k[0][1]
    assert (top < 0.5) == any("unsure" in w for w in p.warnings)
    assert p.to_dict()["warnings"] == p.warnings


def test_a_top_probability_under_one_half_carries_a_warning():
    image = np.zeros((28, 28), np.uint8)
    unsure = [0.3, 0.25, 0.2] + [0.25 / 7] * 7
    sure = [0.02] * 9 + [0.82]
    (note,) = _prediction(unsure, [(0, 0.3), (1, 0.25)], image, None, []).warnings
    assert "unsure" in note and "30%" in note
    assert _prediction(sure, [(9, 0.82)], image, None, ["kept"]).warnings == ["kept"]


# --- found by review: each failed before its fix ---------------------------------------------


def test_a_grey_alpha_array_is_one_image(clf, digits, reference, tmp_path):
    """np.array(Image.open(la_png)) is (H, W, 2): it was read as H images of width 2."""
    path = tmp_path / "la.png"
    grey = Image.fromarray(255 - digits[0][7]).resize((112, 112))
    Image.merge("LA", [grey, Image.new("L", grey.size, 255)]).save(path)
    array = np.array(Image.open(path))
    assert array.shape == (112, 112, 2)
    (from_array,) = clf.predict(array)
    (from_path,) = clf.predict(path)
    assert from_array.label == from_path.label == reference[7][1]
    assert np.array_equal(from_array.image, from_path.image)
    with pytest.warns(AmbiguousLayoutWarning, match="grey \\+ alpha"):
        split_images(np.zeros((2, 28, 28)))


def test_a_picture_784_pixels_wide_is_not_read_as_kaggle_rows(clf, digits):
    wide = np.array(Image.fromarray(255 - digits[0][0]).resize((784, 600)))
    with pytest.raises(InputError, match="layout='HW'"):
        clf.predict(wide)
    (p,) = clf.predict(wide, layout="HW")
    assert p.ok
    rows = digits[0][:40].reshape(40, 784)  # 40 real Kaggle-style rows are still rows
    assert len(clf.predict(rows)) == 40


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_a_0_1_integer_mask_is_refused_not_read_as_blank(clf, digits, reference, dtype):
    mask = (digits[0][:3] > 128).astype(dtype)
    with pytest.raises(InputError, match="mask"):
        clf.predict(mask[0])
    got = clf.predict(list(mask), value_range=(0, 1), errors="raise")
    assert [p.label for p in got] == [label for _, label in reference[:3]]


def test_bfloat16_mnist_normalised_tensors(clf, digits, reference):
    x = torch.from_numpy((digits[0][:8] / 255 - MNIST_MEAN) / MNIST_STD).to(torch.bfloat16)
    got = clf.predict(x, errors="raise")
    assert [p.label for p in got] == [label for _, label in reference[:8]]


def test_bicubic_overshoot_is_clipped_when_the_range_is_given(clf, digits, reference):
    x = torch.from_numpy(digits[0][:4]).float()[:, None] / 255
    up = torch.nn.functional.interpolate(x, scale_factor=3, mode="bicubic")  # -0.2 .. 1.2
    assert up.min() < -0.05 and up.max() > 1.05  # was read as 0..255 (blank) or refused
    labels = [label for _, label in reference[:4]]
    assert [p.label for p in clf.predict(up, errors="raise")] == labels
    assert [p.label for p in clf.predict(up, value_range=(0, 1), errors="raise")] == labels
    with pytest.raises(InputError, match="far outside value_range"):
        clf.predict(up * 255, value_range=(0, 1), errors="raise")


def test_integers_above_16_bits_and_meta_tensors_are_refused():
    with pytest.raises(InputError, match="65535"):
        to_unit_range(np.full((8, 8), 2**40, np.int64))
    with pytest.raises(InputError, match="meta"):
        split_images(torch.zeros(28, 28, device="meta"))


# --- found by the issue-19 review (2026-12-02): each failed before its fix -------------------


def _standardised(images: np.ndarray) -> torch.Tensor:
    """Per-image standardisation, (x - mean) / std: values about -0.4 .. 3.5."""
    x = torch.from_numpy(images).float() / 255
    mean, std = x.mean(dim=(1, 2), keepdim=True), x.std(dim=(1, 2), keepdim=True)
    return (x - mean) / std


def _mnist_normalised_resized(images: np.ndarray) -> torch.Tensor:
    """MNIST-normalised, then resized bicubic: the overshoot goes below MNIST's black."""
    x = (torch.from_numpy(images).float()[:, None] / 255 - MNIST_MEAN) / MNIST_STD
    return torch.nn.functional.interpolate(x, scale_factor=2, mode="bicubic")[:, 0]


@pytest.mark.parametrize(
    ("normalise", "value_range"),
    [(_standardised, None), (_mnist_normalised_resized, "mnist")],
)
def test_small_normalised_floats_are_refused_not_read_as_a_blank_0_255_image(
    clf, digits, reference, normalise, value_range
):
    """Read as 0..255, floats of about -0.8 .. 3.5 were a blank image: "no ink found" for 197
    and 200 of 200 digits, with no word of value_range."""
    images = normalise(digits[0][:4])  # (4, H, W)
    for image in images:
        with pytest.raises(InputError, match="value_range") as refused:
            clf.predict(image)
        assert "\n" not in str(refused.value)
    labels = [label for _, label in reference[:4]]
    ranges = [value_range or (float(x.min()), float(x.max())) for x in images]
    got = [clf.predict(x, value_range=r)[0].label for x, r in zip(images, ranges)]
    assert got == labels


def test_a_masked_array_is_refused_unless_nothing_is_masked(clf, digits, reference):
    """np.ma.masked_array(x, mask=x < 10) read as a blank image ("no ink found")."""
    x = digits[0][0]
    with pytest.raises(InputError, match="masked"):
        clf.predict(np.ma.masked_array(x, mask=x < 10))
    (p,) = clf.predict(np.ma.masked_array(x, mask=False))
    assert p.label == reference[0][1] and np.array_equal(p.image, reference[0][0])
    (p,) = clf.predict(np.ma.masked_array(x, mask=x < 10).filled(0))
    assert p.label == reference[0][1]


def test_pil_images_follow_the_value_rules_of_their_arrays(clf, digits, reference, tmp_path):
    """A mode "F" image of MNIST-normalised floats read as blank ("no ink found"), its array
    right. A 16-bit file says more than its array: samples that stop at 4095 are 12-bit ones,
    read so with a warning (its array is refused: value_range says which)."""
    x = digits[0][2]
    normalised = Image.fromarray(((x / 255 - MNIST_MEAN) / MNIST_STD).astype(np.float32))
    (p,) = clf.predict(normalised)
    assert p.label == reference[2][1] and np.array_equal(p.image, reference[2][0])
    twelve_bit = Image.fromarray(x.astype(np.uint16) * 16)  # mode I;16, samples 0 .. 4080
    path = tmp_path / "twelve.png"
    twelve_bit.save(path)
    for form in (twelve_bit, path):
        (p,) = clf.predict(form)
        assert p.label == reference[2][1] and any("12-bit samples" in w for w in p.warnings)
    with pytest.raises(InputError, match="12-bit"):
        clf.predict(np.array(Image.open(path)))


def test_a_float_image_file_the_rules_cannot_read_says_how_to_save_it(tmp_path):
    """A float TIFF of [-1, 1] or of a faint 0..255 scan has no value_range to pass: the
    refusal names the image's mode and says to save it with 8-bit samples."""
    for name, values in (
        ("signed", np.linspace(-1, 1, 64 * 64)),
        ("faint", np.linspace(186, 200, 64 * 64)),
    ):
        path = tmp_path / f"{name}.tif"
        Image.fromarray(values.reshape(64, 64).astype(np.float32)).save(path)
        with pytest.raises(ImageError, match=r"mode F image.*8-bit samples") as refused:
            preprocess_file(path)
        assert "\n" not in str(refused.value)


def test_a_picture_785_pixels_wide_is_refused_naming_layout_hw(clf, digits, reference):
    wide = np.array(Image.fromarray(255 - digits[0][0]).resize((785, 300)))  # (300, 785)
    with pytest.raises(InputError, match="layout='HW'"):
        clf.predict(wide)
    (p,) = clf.predict(wide, layout="HW")
    assert p.label == reference[0][1]


def test_a_closed_pil_image_in_a_list_fails_alone(clf, digits, reference, tmp_path):
    """A PIL image whose file was closed unread raised a bare AssertionError for the whole list."""
    path = tmp_path / "digit.png"
    Image.fromarray(digits[0][1]).save(path)
    with Image.open(path) as closed:
        pass
    failed, good = clf.predict([closed, path])
    assert not failed.ok and "Image.open(path) as image" in str(failed.error)
    assert good.ok and good.label == reference[1][1]


def test_every_answer_of_an_ambiguous_batch_says_how_it_was_read(clf, digits):
    """Python shows a warning once per calling line: a loop over (3, 28, 28) batches warned on
    its first pass only, and the answers' warnings said nothing."""
    for start in (0, 3, 6):
        batch = torch.from_numpy(digits[0][start : start + 3])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as after Python's first showing
            results = clf.predict(batch)
        assert all(any("layout='CHW'" in w for w in p.warnings) for p in results)
    named = clf.predict(torch.from_numpy(digits[0][:3]), layout="NHW")
    assert not any("layout" in w for p in named for w in p.warnings)


def test_a_pil_image_is_turned_upright_by_its_exif_orientation_as_its_file_is(
    clf, digits, tmp_path
):
    """A 6 stored upside down with Orientation=3 (as phones save photos): its path and bytes
    read 6, the PIL image Image.open gives read 9, confidently."""
    six = digits[0][int(np.flatnonzero(digits[1] == 6)[0])]
    paper = 255 - np.array(Image.fromarray(six).resize((112, 112)))  # (112, 112) upright
    exif = Image.Exif()
    exif[0x0112] = 3  # "rotate 180 degrees to show"
    path = tmp_path / "sideways.jpg"
    Image.fromarray(paper).rotate(180).convert("RGB").save(path, exif=exif, quality=95)
    upright, from_path, from_pil = clf.predict([paper, path, Image.open(path)], errors="raise")
    assert from_path.label == from_pil.label == upright.label
    assert np.array_equal(from_pil.image, from_path.image)
    # Turned upright by hand, the image keeps Pillow's stale tag: it is not turned twice, and
    # the answer says how it was read (a copy or a conversion keeps a tag that is still true).
    by_hand = Image.open(path).transpose(Image.Transpose.ROTATE_180)
    (again,) = clf.predict(by_hand)
    assert again.label == upright.label and np.array_equal(again.image, from_path.image)
    (converted,) = clf.predict(Image.open(path).convert("L"))
    for answer in (again, converted):
        assert any("exif_transpose" in w for w in answer.warnings)
    assert not any("EXIF" in w for w in from_pil.warnings + from_path.warnings)


def test_a_16_bit_files_samples_are_judged_before_it_is_shrunk(clf, tmp_path):
    """A box reduction averages a lone bright sample away: a 2,100 px 16-bit file with strokes at
    3000 and one sample at 5000 was read as 12-bit ("brightest sample 3000") while the same
    picture at 1,008 px was read as 16-bit."""
    readings = []
    for side in (1008, 2100):
        sixteen = np.zeros((side, side), np.uint16)
        sixteen[side // 4 : 3 * side // 4, side // 2 - side // 40 : side // 2 + side // 40] = 3000
        sixteen[0, 0] = 5000  # one hot pixel
        path = tmp_path / f"hot{side}.png"
        Image.fromarray(sixteen).save(path)
        notes: list[str] = []
        try:
            preprocess_file(path, notes=notes)
            readings.append(("read", tuple(notes)))
        except ImageError as exc:
            readings.append(("refused", str(exc).split(": ", 1)[1]))
    assert readings[0] == readings[1]
    assert not any("12-bit" in note for _, notes in readings for note in notes)


def test_to_mnist_refuses_a_masked_array_as_predict_does(digits):
    x = digits[0][0]
    with pytest.raises(InputError, match="masked"):
        to_mnist(np.ma.masked_array(x, mask=x == 0))
    assert np.array_equal(to_mnist(np.ma.masked_array(x, mask=False)), to_mnist(x))
