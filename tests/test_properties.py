"""Property-based tests (Hypothesis): hostile and damaged input never breaks the library.

Whatever bytes or structures arrive, the image decoder and preprocessing, the IDX reader, the
checkpoint loader and the web API's request parsing either succeed or raise the library's own
error (a ``SeqMnistError`` subclass: ``ImageError``, ``DataError``, ``CheckpointError``, the API's
``ClientError``), in bounded time; whole
requests through the app are never answered with a 5xx.

Example counts are modest so the file runs in well under a minute on two busy cores; deadlines
are generous for the same reason (they catch runaway work, not slow machines). No example
database is written (``database=None``): a failure prints its minimal example and a
``@reproduce_failure`` line to paste above the test.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from conftest import make_synthetic_mnist
from seqmnist.checkpoint import load_checkpoint, model_from_checkpoint, train_config_from_checkpoint
from seqmnist.data import RAW_FILES, load_mnist
from seqmnist.errors import CheckpointError, DataError, SeqMnistError
from seqmnist.images import ImageError, open_image
from seqmnist.preprocess import load_mnist_image, to_mnist
from seqmnist.runtime import DistInfo, Runtime

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from seqmnist.serve.app import (  # noqa: E402
    MAX_TOP_K,
    SECURITY_HEADERS,
    ClientError,
    create_app,
    decode_base64_image,
    parse_json_body,
    parse_top_k,
)

FAST = settings(max_examples=150, deadline=1000, database=None)
IMAGES = settings(
    max_examples=60,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FILES = settings(
    max_examples=40,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def only_own_errors(
    allowed: type[SeqMnistError], call: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """``call(*args, **kwargs)``, or None when it raised ``allowed`` (with a one-line message);
    any other exception fails the test."""
    try:
        return call(*args, **kwargs)
    except allowed as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)  # one line, saying something
        return None


def assert_mnist(result: Any) -> None:
    if result is not None:
        assert isinstance(result, np.ndarray) and result.shape == (28, 28)
        assert result.dtype == np.uint8


# --- (a) image decoding and preprocessing ---------------------------------------------------

# Headers of the formats open_image reads, so random tails reach into each decoder.
MAGICS = [
    b"\x89PNG\r\n\x1a\n",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"\xff\xd8\xff\xe0",
    b"\xff\xd8\xff\xdb",
    b"GIF89a",
    b"GIF87a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"RIFF\x00\x00\x00\x00WEBPVP8L",
]

MODES = [
    "1", "L", "P", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
    "I", "F", "I;16", "I;16B", "I;16L", "LA", "PA", "La", "RGBa",
]  # fmt: skip
FORMATS = ["PNG", "TIFF", "BMP", "GIF", "WEBP", "JPEG"]


@st.composite
def pil_images(draw: st.DrawFn) -> Image.Image:
    """A PIL image of any mode and a small random size: noise, a bar on a plain field, or flat."""
    mode = draw(st.sampled_from(MODES))
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    content = draw(st.sampled_from(["noise", "bar", "flat"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    blank = Image.new(mode, (width, height))
    raw = bytearray(blank.tobytes())
    if content == "noise":
        raw = bytearray(rng.bytes(len(raw)))  # for F and I: NaN, inf, negatives, huge values
    elif content == "bar":
        raw = bytearray(rng.integers(0, 40, len(raw), dtype=np.uint8).tobytes())
        stride = len(raw) // height
        for row in range(height // 4, max(height // 4 + 1, 3 * height // 4)):
            start = row * stride + stride // 3
            raw[start : start + max(1, stride // 6)] = b"\xff" * max(1, stride // 6)
    image = Image.frombytes(mode, (width, height), bytes(raw))
    if mode in ("P", "PA"):
        image.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
    return image


def encodings(image: Image.Image) -> list[bytes]:
    """``image`` as each file format Pillow can write it in (some formats refuse some modes)."""
    files = []
    for fmt in FORMATS:
        buffer = io.BytesIO()
        try:
            image.save(buffer, format=fmt)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        files.append(buffer.getvalue())
    return files


@FAST
@given(st.binary(max_size=4096))
@example(b"")
@example(b"\x89PNG\r\n\x1a\n")
def test_open_image_on_arbitrary_bytes(data: bytes) -> None:
    assert_mnist(only_own_errors(ImageError, load_mnist_image, data))


@FAST
@given(st.sampled_from(MAGICS), st.binary(max_size=2048))
def test_open_image_on_bytes_that_start_like_an_image(magic: bytes, tail: bytes) -> None:
    assert_mnist(only_own_errors(ImageError, load_mnist_image, magic + tail))


@IMAGES
@given(pil_images())
def test_any_pil_mode_and_size_is_an_mnist_image_or_an_image_error(image: Image.Image) -> None:
    assert_mnist(only_own_errors(ImageError, to_mnist, image))
    for data in encodings(image):
        opened = only_own_errors(ImageError, open_image, data)
        if opened is not None:
            assert opened.size == image.size
            assert_mnist(only_own_errors(ImageError, to_mnist, opened))


@IMAGES
@given(pil_images(), st.data())
def test_damaged_image_files(image: Image.Image, data: st.DataObject) -> None:
    """Real files of every format, truncated or with bytes overwritten: ImageError or a digit."""
    files = encodings(image)
    if not files:
        return
    damaged = bytearray(data.draw(st.sampled_from(files)))
    cut = data.draw(st.integers(1, len(damaged)))
    damaged = damaged[:cut]
    for _ in range(data.draw(st.integers(0, 6))):
        position = data.draw(st.integers(0, len(damaged) - 1))
        damaged[position] = data.draw(st.integers(0, 255))
    assert_mnist(only_own_errors(ImageError, load_mnist_image, bytes(damaged)))


def bar_image() -> Image.Image:
    """A light bar on black, mode L: what every mode below should read as."""
    pixels = np.zeros((40, 40), dtype=np.uint8)
    pixels[6:34, 17:23] = 230
    return Image.fromarray(pixels)


def as_mode(image: Image.Image, mode: str) -> Image.Image:
    if mode.startswith("I;16"):
        wide = (np.asarray(image).astype(np.uint16) * 257).astype(np.uint16)
        return Image.frombytes(
            mode, image.size, wide.astype(">u2" if mode == "I;16B" else "<u2").tobytes()
        )
    if mode == "F":
        return Image.fromarray(np.asarray(image).astype(np.float32) / 255.0, mode="F")
    if mode == "La":
        return image.convert("LA").convert("La")
    return image.convert("RGB").convert(mode)


@pytest.mark.parametrize(
    "mode", ["LAB", "CMYK", "YCbCr", "HSV", "I;16", "I;16B", "F", "I", "La", "RGBa"]
)
def test_unusual_modes_read_as_sensible_grey(mode: str) -> None:
    expected = to_mnist(bar_image())
    image = as_mode(bar_image(), mode)
    assert image.mode == mode
    assert np.abs(to_mnist(image).astype(int) - expected).mean() < 4  # the PIL image itself
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="TIFF")
    except (OSError, ValueError, KeyError):
        return  # no TIFF writer for this mode: the in-memory image was the test
    assert np.abs(load_mnist_image(buffer.getvalue()).astype(int) - expected).mean() < 4


def test_lab_tiff_is_no_longer_a_value_error() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200)).convert("LAB").save(buffer, format="TIFF")
    opened = open_image(buffer.getvalue())
    assert opened.mode == "L"
    with pytest.raises(ImageError, match="no ink"):  # all black
        to_mnist(opened)


def test_paths_that_cannot_be_opened_are_image_errors(tmp_path: Path) -> None:
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(ImageError, match=r"loop\.png: is a symbolic link that loops"):
        open_image(loop)
    with pytest.raises(ImageError, match="not a usable file name"):
        open_image(str(tmp_path / "nul\0.png"))
    with pytest.raises(ImageError, match="a part of the path is a file"):
        (tmp_path / "file").write_bytes(b"x")
        open_image(tmp_path / "file" / "x.png")
    with pytest.raises(ImageError, match="is a folder"):
        open_image(tmp_path)


ODD_DTYPES = st.sampled_from(
    [
        np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.int64, np.bool_,
        np.float16, np.float32, np.float64, np.complex64,
    ]
)  # fmt: skip
ODD_SHAPES = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40),
    st.tuples(st.integers(0, 40), st.integers(0, 40), st.sampled_from([1, 2, 3, 4, 5])),
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    st.sampled_from([(1, 300), (300, 1), (2, 200, 3)]),
)


@FAST
@given(hnp.arrays(ODD_DTYPES, ODD_SHAPES))
@example(np.full((28, 28), np.nan, np.float32))
@example(np.full((28, 28), np.inf))
@example(np.array([[1e300, 0.0], [0.0, 0.0]]))
def test_to_mnist_on_arbitrary_arrays(array: np.ndarray) -> None:
    before = array.copy()
    assert_mnist(only_own_errors(ImageError, to_mnist, array))
    np.testing.assert_array_equal(array, before)  # the caller's array is never changed


@FAST
@given(st.sampled_from([object, str, "datetime64[s]"]))
def test_to_mnist_refuses_arrays_that_hold_no_numbers(dtype: Any) -> None:
    with pytest.raises(ImageError, match="numbers"):
        to_mnist(np.zeros((28, 28), dtype=dtype))


# --- (b) the IDX reader ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def idx_originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Valid, small IDX files (60 training and 20 test images) to damage."""
    raw = make_synthetic_mnist(tmp_path_factory.mktemp("idx"), n_train=60, n_test=20)
    return {name: (raw / "MNIST" / "raw" / name).read_bytes() for name in RAW_FILES}


@st.composite
def damaged_idx(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` with its header fields rewritten, bytes flipped, cut short or extended."""
    data = bytearray(original)
    kind = draw(st.sampled_from(["header", "flip", "cut", "extend", "random"]))
    if kind == "header":
        field = draw(st.integers(0, (min(len(data), 16) // 4) - 1))
        value = draw(st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, 28, 2049])))
        data[4 * field : 4 * field + 4] = struct.pack(">i", value)
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif kind == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=64))
    else:
        data = bytearray(draw(st.binary(max_size=256)))
    return bytes(data)


@FILES
@given(st.sampled_from(list(RAW_FILES)), st.data(), st.booleans())
def test_load_mnist_on_damaged_idx_files(
    tmp_path: Path, idx_originals: dict[str, bytes], name: str, data: st.DataObject, train: bool
) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for each, content in idx_originals.items():  # every example starts from intact files
        (raw / each).write_bytes(content)
    (raw / name).write_bytes(data.draw(damaged_idx(idx_originals[name])))
    split = only_own_errors(DataError, load_mnist, tmp_path, train=train, download=False)
    if split is not None:
        assert split.images.shape[1:] == (28, 28) and len(split) == split.images.shape[0]
        assert split.labels.numel() == 0 or int(split.labels.max()) <= 9


# --- (c) the checkpoint loader --------------------------------------------------------------


def load_model(path: Path) -> Any:
    """What every command that loads a model does: the file, then the model and train config."""
    data = load_checkpoint(path)
    return model_from_checkpoint(data), train_config_from_checkpoint(data)


class Quiet(tuple):
    """A fixture value whose repr stays short in Hypothesis's failure reports."""

    def __repr__(self) -> str:
        return "<good checkpoint>"


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict]:
    """A small valid checkpoint: its bytes, and its content as loaded."""
    import torch

    from seqmnist.checkpoint import save_checkpoint
    from seqmnist.config import apply_overrides, preset_config
    from seqmnist.state import TrainState

    config = apply_overrides(preset_config("default"), {"hidden": 4, "ema_decay": 0.0})
    state = TrainState(config, Runtime(torch.device("cpu"), DistInfo(), 1), steps_per_epoch=1)
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    save_checkpoint(path, state.state_dict())
    return Quiet((path.read_bytes(), load_checkpoint(path)))


@FILES
@given(st.data())
def test_load_checkpoint_on_damaged_checkpoint_bytes(
    tmp_path: Path, good_checkpoint: tuple[bytes, dict], data: st.DataObject
) -> None:
    path = tmp_path / "damaged.pt"
    path.write_bytes(data.draw(damaged_idx(good_checkpoint[0])))  # flips, cuts, random bytes
    only_own_errors(CheckpointError, load_model, path)


# Any value torch.save and the weights-only unpickler can carry: numbers, strings, None, tensors
# of any small shape and dtype, lists and dicts of them.
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]),
        hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
    ),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)
CHECKPOINT_KEYS = ["model_config", "train_config", "model_state", "format", "version", "arch"]


def _to_torch(value: Any) -> Any:
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, list):
        return [_to_torch(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_torch(v) for k, v in value.items()}
    return value


@FILES
@given(st.sampled_from(CHECKPOINT_KEYS), st.data())
def test_load_checkpoint_on_checkpoints_with_any_value_in_any_field(
    tmp_path: Path, good_checkpoint: tuple[bytes, dict], key: str, data: st.DataObject
) -> None:
    """A valid checkpoint with one field, or one entry of the configs or weights, replaced by
    an arbitrary value: loads, or is refused with a CheckpointError."""
    import torch

    content = {k: v for k, v in good_checkpoint[1].items() if k != "path"}
    value = _to_torch(data.draw(VALUES))
    inner = content.get(key)
    if isinstance(inner, dict) and inner and data.draw(st.booleans()):
        inner = dict(inner)
        inner[data.draw(st.sampled_from(sorted(inner)))] = value  # one entry of the dict
        value = inner
    content[key] = value
    path = tmp_path / "edited.pt"
    torch.save(content, path)
    only_own_errors(CheckpointError, load_model, path)


# --- (d) the API's request parsing ----------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
B64 = base64.b64encode


def a_digit_png() -> bytes:
    image = np.zeros((40, 40), dtype=np.uint8)
    image[6:34, 18:24] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


DIGIT = a_digit_png()


def assert_client_error(exc: ClientError) -> None:
    assert 400 <= exc.status < 500 and exc.message and "\n" not in exc.message


@FAST
@given(st.binary(max_size=512))
def test_parse_json_body_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_json_body(body)
    except ClientError as exc:
        assert_client_error(exc)


@FAST
@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries({"image": JSON}, optional={"top_k": JSON}),
        st.fixed_dictionaries({"image": st.text(max_size=64)}, optional={"top_k": JSON}),
    )
)
def test_parse_json_body_on_arbitrary_structures(payload: Any) -> None:
    try:
        image, top_k = parse_json_body(json.dumps(payload).encode())
    except ClientError as exc:
        assert_client_error(exc)
    else:
        assert isinstance(image, bytes) and image


@FAST
@given(st.integers(1, 20_000), st.sampled_from("[{"))
def test_deeply_nested_json_is_a_400(depth: int, opener: str) -> None:
    inner = ('{"a":' * depth + "1" + "}" * depth) if opener == "{" else "[" * depth + "]" * depth
    try:
        parse_json_body(('{"image": ' + inner + "}").encode())
    except ClientError as exc:
        assert exc.status in (400, 422)
    else:
        pytest.fail("a nested structure was taken for an image")


@FAST
@given(st.one_of(JSON, st.text(max_size=30), st.integers().map(str)))
@example("9" * 5000)
@example(" 3 ")
def test_parse_top_k(value: Any) -> None:
    try:
        top_k = parse_top_k(value)
    except ClientError as exc:
        assert_client_error(exc)
        assert len(exc.message) < 200
    else:
        assert isinstance(top_k, int) and 1 <= top_k <= MAX_TOP_K


@FAST
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200).map(lambda b: B64(b).decode()),
        st.binary(max_size=200).map(lambda b: "data:image/png;base64," + B64(b).decode()),
        st.text(alphabet="ABCDEFabcdef0123456789+/=\n \r\t-_:;,", max_size=100),
    )
)
def test_decode_base64_image(text: str) -> None:
    try:
        data = decode_base64_image(text)
    except ClientError as exc:
        assert_client_error(exc)
    else:
        assert isinstance(data, bytes) and data


class StubClassifier:
    """The real preprocessing (to_mnist), a fixed answer: the API without training a model."""

    name = "stub"
    parameters = 1
    test_accuracy = None
    config = None

    def predict(self, images: list[Any], top_k: int = 3) -> list[Any]:
        image = to_mnist(images[0])
        ranked = [(digit, 0.1) for digit in range(top_k)]
        return [SimpleNamespace(label=0, top_k=ranked, probabilities=[0.1] * 10, image=image)]


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(StubClassifier()), raise_server_exceptions=False)


def assert_answer(response: Any) -> None:
    """A 200 prediction, or a 4xx with one JSON error line; security headers either way."""
    assert response.status_code < 500, (response.status_code, response.text)
    for name in SECURITY_HEADERS:
        assert name in response.headers, name
    if response.request.method == "HEAD":
        assert response.content == b""
        return
    if response.status_code == 200:
        return
    assert response.headers["content-type"] == "application/json"
    message = response.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message
    if response.status_code == 405:
        assert response.headers["allow"]


IMAGE_BYTES = st.one_of(
    st.just(DIGIT), st.binary(max_size=300), st.sampled_from(MAGICS).map(lambda m: m + DIGIT[8:])
)


@FILES
@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries({"image": JSON}, optional={"top_k": JSON}),
        st.fixed_dictionaries(
            {"image": IMAGE_BYTES.map(lambda b: B64(b).decode())}, optional={"top_k": JSON}
        ),
    ),
    st.one_of(st.none(), st.text(max_size=8)),
)
def test_api_json_requests_are_never_a_5xx(client: TestClient, payload: Any, query: Any) -> None:
    params = {} if query is None else {"top_k": query}
    body = json.dumps(payload).encode()  # NaN and Infinity too, which Python's parser accepts
    headers = {"content-type": "application/json"}
    assert_answer(client.post("/api/predict", content=body, headers=headers, params=params))


@FILES
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["file", "top_k", "other", ""]) | st.text(max_size=8),
            st.one_of(st.none(), st.text(max_size=12)),  # a file name, or None: a text field
            IMAGE_BYTES | st.text(max_size=12).map(str.encode),
            st.sampled_from(["image/png", "text/plain", "application/octet-stream", ""]),
        ),
        max_size=4,
    )
)
def test_api_multipart_requests_are_never_a_5xx(client: TestClient, parts: list[Any]) -> None:
    boundary = "b0undary"
    body = b""
    for name, filename, content, media in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"Content-Disposition: {disposition}\r\n"
        if media:
            head += f"Content-Type: {media}\r\n"
        body += f"--{boundary}\r\n{head}\r\n".encode("utf-8", "surrogatepass") + content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    assert_answer(client.post("/api/predict", content=body, headers=headers))


@FILES
@given(
    st.sampled_from(
        [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=x",
            'multipart/form-data; boundary="a b"; charset=nonsense',
            "multipart/form-data; charset=utf-16; boundary=x",
            "application/json",
            "application/json; charset=latin-1",
            "image/png",
            "application/octet-stream",
            "text/plain",
            "",
        ]
    )
    | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=200).map(lambda b: b"--x\r\n" + b + b"\r\n--x--\r\n"),
        st.just(DIGIT),
    ),
)
def test_api_raw_bodies_with_any_content_type_are_never_a_5xx(
    client: TestClient, content_type: str, body: bytes
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    assert_answer(client.post("/api/predict", content=body, headers=headers))


@FILES
@given(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]),
    st.sampled_from(["/", "/healthz", "/api/model", "/api/predict", "/nope", "/api"])
    | st.text(alphabet="abc/%.-_?=&", max_size=20).map(lambda path: "/" + path),
)
def test_any_method_on_any_path_is_never_a_5xx(client: TestClient, method: str, path: str) -> None:
    assert_answer(client.request(method, path))
