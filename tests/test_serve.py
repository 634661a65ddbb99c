"""The web API in-process (FastAPI's TestClient): every route, every kind of bad input, and the CLI.

Bad input must always be a 4xx with a JSON ``{"error": ...}`` that says what is wrong, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from seqmnist.cli import main
from seqmnist.errors import SeqMnistError

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from seqmnist.predict import Classifier, load  # noqa: E402
from seqmnist.serve import MISSING_EXTRA, bind_socket, create_app, require_serve_extra  # noqa: E402
from seqmnist.serve.app import MAX_BODY_BYTES  # noqa: E402


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file that claims to be width x height (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def a_digit_png() -> bytes:
    """A white bar on black: an image with ink (any model gives some answer)."""
    image = np.zeros((64, 64), dtype=np.uint8)
    image[10:54, 28:36] = 255
    return png_bytes(image)


def assert_client_error(response: Any, status: int, *words: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    message = response.json()["error"]
    assert isinstance(message, str) and message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """As `seqmnist serve` runs: one PyTorch thread per prediction (far faster for single images
    on busy cores); the previous setting is restored for the other test modules."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_classifier(tiny_run: Path) -> Classifier:
    return load(tiny_run)


@pytest.fixture(scope="module")
def client(tiny_classifier: Classifier) -> TestClient:
    """The app around a tiny model trained on synthetic data: routes and errors, not accuracy."""
    return TestClient(create_app(tiny_classifier))


@pytest.fixture(scope="module")
def real_client(real_run: Path) -> TestClient:
    return TestClient(create_app(load(real_run)))


@pytest.fixture(scope="module")
def mnist_test_digits(real_data_dir: Path) -> tuple[np.ndarray, list[int]]:
    from seqmnist.data import load_mnist

    split = load_mnist(real_data_dir, train=False, download=False)
    return split.images[:20].numpy(), split.labels[:20].tolist()


# --- routes ---------------------------------------------------------------------------------


def test_page_is_self_contained(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    ids = ("canvas", "clear", "file", "top1", "topk", "preview", "result", "model-info")
    for element_id in ids:
        assert f'id="{element_id}"' in html, element_id
    assert 'name="viewport"' in html and "touch-action: none" in html
    # works offline: no scripts, styles, fonts or images from elsewhere, and the browser enforces it
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_model_info(client: TestClient, tiny_classifier: Classifier, tiny_run: Path) -> None:
    info = client.get("/api/model").json()
    assert info["name"] == tiny_run.name
    assert info["parameters"] == tiny_classifier.parameters > 0
    assert 0.0 <= info["test_accuracy"] <= 1.0  # from the run's summary.json
    assert info["config"]["model"]["cell"] == "lstm"
    assert info["config"]["model"]["hidden"] == 16
    assert info["limits"]["max_body_bytes"] == MAX_BODY_BYTES


def test_predict_multipart_json_and_raw_agree(client: TestClient) -> None:
    data = a_digit_png()
    by_form = client.post("/api/predict", files={"file": ("bar.png", data, "image/png")}).json()
    as_base64 = base64.b64encode(data).decode()
    by_json = client.post("/api/predict", json={"image": as_base64}).json()
    data_url = "data:image/png;base64," + as_base64
    by_data_url = client.post("/api/predict", json={"image": data_url}).json()
    by_raw = client.post("/api/predict", content=data, headers={"content-type": "image/png"}).json()
    assert by_form == by_json == by_data_url == by_raw

    assert set(by_form) >= {"label", "top_k", "probabilities", "preprocessed_png", "model"}
    probabilities = [entry["probability"] for entry in by_form["top_k"]]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert by_form["label"] == by_form["top_k"][0]["digit"]
    assert abs(sum(by_form["probabilities"]) - 1.0) < 1e-4
    seen = Image.open(io.BytesIO(base64.b64decode(by_form["preprocessed_png"])))
    assert seen.size == (28, 28) and seen.mode == "L"


@pytest.mark.parametrize("top_k", [1, 5, 10])
def test_top_k(client: TestClient, top_k: int) -> None:
    as_base64 = base64.b64encode(a_digit_png()).decode()
    by_json = client.post("/api/predict", json={"image": as_base64, "top_k": top_k}).json()
    assert len(by_json["top_k"]) == top_k
    upload = {"file": ("a.png", a_digit_png())}
    form = client.post("/api/predict", files=upload, data={"top_k": str(top_k)})
    assert len(form.json()["top_k"]) == top_k


def test_real_digits_are_recognised(
    real_client: TestClient, mnist_test_digits: tuple[np.ndarray, list[int]]
) -> None:
    images, labels = mnist_test_digits
    correct = 0
    for image, label in zip(images, labels):
        upload = {"file": ("d.png", png_bytes(image), "image/png")}
        answer = real_client.post("/api/predict", files=upload).json()
        correct += answer["label"] == label
        # an MNIST digit is already in MNIST form: the model sees it unchanged, and says so
        seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["preprocessed_png"]))))
        np.testing.assert_array_equal(seen, image)
    assert correct >= 19, f"{correct}/20"


def test_large_upload_stays_in_memory(
    real_client: TestClient,
    mnist_test_digits: tuple[np.ndarray, list[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 1.4 MB upload (over Starlette's 1 MB spooling threshold) never goes to a temp file."""

    def no_disk(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server tried to write a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
    images, labels = mnist_test_digits
    big = Image.fromarray(images[1]).resize((1200, 1200), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    big.save(buffer, format="BMP")  # uncompressed: 1.44 MB
    assert 1024 * 1024 < buffer.tell() < MAX_BODY_BYTES
    upload = {"file": ("big.bmp", buffer.getvalue(), "image/bmp")}
    response = real_client.post("/api/predict", files=upload)
    assert response.status_code == 200 and response.json()["label"] == labels[1]


# --- bad input: always a 4xx with a JSON error ----------------------------------------------


def _upload(data: bytes, name: str = "x.png") -> dict[str, Any]:
    return {"files": {"file": (name, data, "application/octet-stream")}}


def _truncated_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8)
    data = png_bytes(noise)
    return data[: len(data) // 2]


DIGIT_B64 = base64.b64encode(a_digit_png()).decode()

BAD_REQUESTS = {
    "not an image": (_upload(b"hello, this is text"), 422, ["not an image"]),
    "corrupt image": (_upload(_truncated_png()), 422, ["truncated"]),
    "empty file": (_upload(b""), 400, ["empty"]),
    "blank image": (_upload(png_bytes(np.zeros((50, 50), np.uint8))), 422, ["no ink"]),
    "white image": (_upload(png_bytes(np.full((50, 50), 255, np.uint8))), 422, ["no ink"]),
    "over the pixel limit": (_upload(png_header_only(8000, 8000)), 422, ["8000x8000", "limit"]),
    "bad base64": ({"json": {"image": "not base64!"}}, 400, ["base64"]),
    "empty base64": ({"json": {"image": ""}}, 400, ["empty"]),
    "data URL not base64": ({"json": {"image": "data:image/png,abc"}}, 400, ["base64"]),
    "base64 of text": (
        {"json": {"image": base64.b64encode(b"just text").decode()}},
        422,
        ["not an image"],
    ),
    "bad JSON": (
        {"content": b'{"image": ', "headers": {"content-type": "application/json"}},
        400,
        ["JSON"],
    ),
    "JSON not an object": ({"json": ["abc"]}, 422, ["object"]),
    "JSON without image": ({"json": {"picture": "abc"}}, 422, ["image"]),
    "JSON image not a string": ({"json": {"image": 12}}, 422, ["image"]),
    "top_k zero": ({"json": {"image": DIGIT_B64, "top_k": 0}}, 422, ["top_k"]),
    "top_k eleven": ({"json": {"image": DIGIT_B64, "top_k": 11}}, 422, ["top_k"]),
    "top_k boolean": ({"json": {"image": DIGIT_B64, "top_k": True}}, 422, ["top_k"]),
    "top_k text": (
        {"files": {"file": ("a.png", a_digit_png())}, "data": {"top_k": "three"}},
        422,
        ["top_k"],
    ),
    "multipart without file": ({"files": {"picture": ("a.png", a_digit_png())}}, 422, ["'file'"]),
    "file as a text field": (
        {"data": {"file": "abc"}, "files": {"other": ("a", b"1")}},
        422,
        ["'file'"],
    ),
    "multipart without boundary": (
        {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},
        400,
        ["multipart"],
    ),
    "text/plain": (
        {"content": b"7", "headers": {"content-type": "text/plain"}},
        415,
        ["Content-Type"],
    ),
    "no content type": ({"content": b"7"}, 415, ["Content-Type"]),
    "Content-Length not a number": (
        {"content": b"7", "headers": {"content-type": "image/png", "content-length": "seven"}},
        400,
        ["Content-Length"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_is_a_clear_4xx(client: TestClient, case: str) -> None:
    kwargs, status, words = BAD_REQUESTS[case]
    assert_client_error(client.post("/api/predict", **kwargs), status, *words)


def test_body_over_limit_by_header(client: TestClient) -> None:
    big = b"\0" * (MAX_BODY_BYTES + 1)
    response = client.post("/api/predict", content=big, headers={"content-type": "image/png"})
    assert_client_error(response, 413, "limit")
    assert_client_error(client.post("/api/predict", **_upload(big)), 413, "limit")


def test_body_over_limit_without_header(client: TestClient) -> None:
    """A chunked upload has no Content-Length; the bytes received are counted instead."""

    def chunks():
        for _ in range(3):
            yield b"\0" * (1024 * 1024)

    response = client.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
    assert_client_error(response, 413, "limit")


def test_body_over_limit_with_a_lying_header(client: TestClient) -> None:
    big = b"\0" * (MAX_BODY_BYTES + 10)
    headers = {"content-type": "image/png", "content-length": "100"}
    response = client.post("/api/predict", content=big, headers=headers)
    assert_client_error(response, 413, "limit")


def predict_scope() -> dict[str, Any]:
    """The ASGI scope of a POST /api/predict with a PNG body, for driving the app directly."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/predict",
        "raw_path": b"/api/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"image/png")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


def test_client_disconnect_mid_upload_is_not_a_server_error(tiny_classifier: Classifier) -> None:
    app = create_app(tiny_classifier)
    incoming = [{"type": "http.request", "body": b"\x89PNG", "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = predict_scope()
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400


def test_unknown_routes_and_methods(client: TestClient) -> None:
    assert_client_error(client.get("/nope"), 404, "/nope")
    assert_client_error(client.get("/static/index.html"), 404)
    assert_client_error(client.get("/api/predict"), 405, "GET")
    assert_client_error(client.post("/healthz"), 405)


# --- concurrency ----------------------------------------------------------------------------


class SlowClassifier:
    """Delegates to a real classifier, but each prediction takes ``delay`` seconds longer."""

    def __init__(self, inner: Classifier, delay: float) -> None:
        self._inner = inner
        self.delay = delay

    def predict(self, images: Any, top_k: int = 3) -> Any:
        time.sleep(self.delay)  # blocking, like a big model on a slow CPU
        return self._inner.predict(images, top_k=top_k)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_inference_does_not_block_the_event_loop(tiny_classifier: Classifier) -> None:
    import httpx

    app = create_app(SlowClassifier(tiny_classifier, delay=0.5))
    finished: list[str] = []

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

            async def predict() -> None:
                response = await http.post("/api/predict", files={"file": ("a.png", a_digit_png())})
                assert response.status_code == 200
                finished.append("predict")

            async def health() -> None:
                await asyncio.sleep(0.1)  # the prediction is running by now
                assert (await http.get("/healthz")).status_code == 200
                finished.append("healthz")

            await asyncio.gather(predict(), health())

    asyncio.run(scenario())
    assert finished == ["healthz", "predict"]


# --- optional extra, package data, CLI ------------------------------------------------------


def test_missing_extra_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tiny_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # "import fastapi" now raises ImportError
    with pytest.raises(SeqMnistError, match=r"pip install 'seqmnist\[serve\]'"):
        require_serve_extra()
    assert main(["serve", str(tiny_run)]) == 1
    assert capsys.readouterr().err.strip() == f"seqmnist: error: {MISSING_EXTRA}"


def test_seqmnist_import_does_not_need_fastapi() -> None:
    code = (
        "import sys, seqmnist, seqmnist.cli, seqmnist.serve; "
        "print(sorted({'fastapi', 'uvicorn'} & set(sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = run.stdout
    assert out.strip() == "[]"


def test_page_ships_as_package_data() -> None:
    from importlib import resources

    assert resources.files("seqmnist.serve").joinpath("static", "index.html").is_file()


def test_cli_help_states_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: 127.0.0.1" in text and "default: 8000" in text
    assert "RUN_DIR_OR_CHECKPOINT" in text


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_cli_rejects_bad_port(
    tiny_run: Path, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tiny_run), "--port", port]) == 1
    assert "--port must be an integer from 1 to 65535" in capsys.readouterr().err


def test_cli_rejects_bad_threads(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tiny_run), "--threads", "0"]) == 1
    assert "--threads must be an integer from 1 to 256" in capsys.readouterr().err


def test_cli_missing_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "nothing-here"), "--port", "0"]) == 1
    assert "no such run directory or checkpoint" in capsys.readouterr().err


def test_cli_serves_on_loopback(
    tiny_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`seqmnist serve RUN --port 0` loads the model, binds 127.0.0.1 and hands uvicorn a working
    app."""
    import torch
    import uvicorn

    seen: dict[str, Any] = {}

    def fake_run(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        seen["address"] = sockets[0].getsockname()
        seen["app"] = self.config.app

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    # serve() sets PyTorch's thread count for its own process; keep this test process's as it is
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen.setdefault("threads", n))
    assert main(["serve", str(tiny_run), "--port", "0"]) == 0
    host, port = seen["address"]
    assert host == "127.0.0.1" and port > 0
    assert seen["threads"] == 1
    assert f"http://127.0.0.1:{port}/" in capsys.readouterr().out
    assert TestClient(seen["app"]).get("/healthz").json() == {"status": "ok"}


def test_port_in_use_is_a_clear_error() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(SeqMnistError, match="pick another --port"):
            bind_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


# --- hostile input, HEAD, Allow, security headers, slow clients (issue 11) ------------------


class StubClassifier:
    """The real preprocessing and a fixed answer, or an exception: the app without a model."""

    name = "stub"
    parameters = 1
    test_accuracy = None
    config = None

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def predict(self, images: Any, top_k: int = 3) -> Any:
        from types import SimpleNamespace

        from seqmnist.preprocess import to_mnist

        if self.fail is not None:
            raise self.fail
        image = to_mnist(images[0])
        return [
            SimpleNamespace(
                label=0,
                top_k=[(d, 0.1) for d in range(top_k)],
                probabilities=[0.1] * 10,
                image=image,
            )
        ]


@pytest.fixture(scope="module")
def stub_client() -> TestClient:
    return TestClient(create_app(StubClassifier()))


def lab_tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200)).convert("LAB").save(buffer, format="TIFF")
    return buffer.getvalue()


def test_lab_tiff_and_deep_json_are_4xx_not_500(stub_client: TestClient) -> None:
    response = stub_client.post("/api/predict", **_upload(lab_tiff(), "lab.tif"))
    assert_client_error(response, 422, "no ink")  # read as grey (its lightness): all black
    deep = b'{"image": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    headers = {"content-type": "application/json"}
    response = stub_client.post("/api/predict", content=deep, headers=headers)
    assert_client_error(response, 400, "nested too deeply")


@pytest.mark.parametrize("path", ["/", "/healthz", "/api/model"])
def test_head_is_get_without_a_body(stub_client: TestClient, path: str) -> None:
    got, head = stub_client.get(path), stub_client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b"" and got.content
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/", "GET, HEAD"),
        ("DELETE", "/healthz", "GET, HEAD"),
        ("GET", "/api/predict", "POST"),
        ("HEAD", "/api/predict", "POST"),
        ("PUT", "/api/model", "GET, HEAD"),
        ("OPTIONS", "/", "GET, HEAD"),
    ],
)
def test_every_405_names_the_allowed_methods(
    stub_client: TestClient, method: str, path: str, allow: str
) -> None:
    response = stub_client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allow
    if method != "HEAD":
        assert_client_error(response, 405, method, allow)


def test_security_headers_on_every_response() -> None:
    from seqmnist.serve.app import SECURITY_HEADERS

    client = TestClient(create_app(StubClassifier()))
    buggy = create_app(StubClassifier(fail=RuntimeError("a bug")))
    broken = TestClient(buggy, raise_server_exceptions=False)
    responses = [
        client.get("/"),
        client.head("/"),
        client.get("/healthz"),
        client.get("/api/model"),
        client.post("/api/predict", files={"file": ("a.png", a_digit_png())}),  # 200
        client.post("/api/predict", content=b"7"),  # 415
        client.get("/nope"),
        client.delete("/"),  # 404, 405
        broken.post("/api/predict", files={"file": ("a.png", a_digit_png())}),  # 500: a bug
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 200, 415, 404, 405, 500]
    for response in responses:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)
    assert responses[-1].json()["error"].startswith("internal server error")


def test_slow_body_is_a_408() -> None:
    """A client that sends part of its body and then nothing is cut off with a 408."""
    app = create_app(StubClassifier(), body_timeout=0.2)
    incoming = [{"type": "http.request", "body": b"\x89PNG", "more_body": True}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.sleep(30)  # the rest never comes
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = predict_scope()
    started = time.monotonic()
    asyncio.run(app(scope, receive, send))
    assert time.monotonic() - started < 5
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"took over 0.2 s" in sent[1]["body"]


def _recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_uvicorn_limits_slow_and_oversized_request_heads() -> None:
    """The real server: a head trickled too slowly is cut off, an oversized one is a 400, and a
    normal request (HEAD included) gets its answer with the security headers."""
    import threading

    import uvicorn

    from seqmnist.serve import KEEP_ALIVE_S, MAX_HEAD_BYTES, server_config

    config = server_config(create_app(StubClassifier()), log_level="critical", head_timeout=0.5)
    assert config.timeout_keep_alive == KEEP_ALIVE_S
    assert config.h11_max_incomplete_event_size == MAX_HEAD_BYTES
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        address = sock.getsockname()

        with socket.create_connection(address, timeout=5) as conn:
            conn.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = _recv_all(conn)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == b""
        assert b"x-frame-options: deny" in head.lower()

        with socket.create_connection(address, timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # ... and the rest never comes
            started = time.monotonic()
            assert _recv_all(conn) == b""  # closed by the server
            assert 0.3 < time.monotonic() - started < 4

        with socket.create_connection(address, timeout=5) as conn:
            big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 10)
            conn.sendall(big)
            assert _recv_all(conn).startswith(b"HTTP/1.1 400")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# --- warnings in the answer (issue 19) --------------------------------------------------------


def test_answer_carries_the_predictions_warnings(
    client: TestClient, tiny_classifier: Classifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``warnings`` is always there, a list of strings: ``Prediction.warnings`` as it is."""
    upload = {"file": ("bar.png", a_digit_png(), "image/png")}
    plain = client.post("/api/predict", files=upload).json()
    assert isinstance(plain["warnings"], list)
    assert all(isinstance(w, str) for w in plain["warnings"])

    said = ["two digits side by side? <crop> to one & try again", "low confidence"]
    real_predict = tiny_classifier.predict

    def predict_with_warnings(images: Any, **kwargs: Any) -> Any:
        predictions = real_predict(images, **kwargs)
        predictions[0].warnings = list(said)
        return predictions

    monkeypatch.setattr(tiny_classifier, "predict", predict_with_warnings)
    warned = client.post("/api/predict", files=upload).json()
    assert warned["warnings"] == said
    assert warned["label"] == plain["label"]


# --- CORS (--cors-origin) ---------------------------------------------------------------------

FRONT_END = "https://digits.example.org"


@pytest.fixture(scope="module")
def cors_client(tiny_classifier: Classifier) -> TestClient:
    return TestClient(
        create_app(tiny_classifier, cors_origins=[FRONT_END, "http://localhost:3000"])
    )


def preflight(client: TestClient, origin: str) -> Any:
    return client.options(
        "/api/predict",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_cors_preflight_is_answered_for_a_listed_origin(cors_client: TestClient) -> None:
    response = preflight(cors_client, FRONT_END)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()
    assert response.headers["x-content-type-options"] == "nosniff"  # security headers stay


def test_cors_header_on_every_response_for_a_listed_origin(cors_client: TestClient) -> None:
    origin = {"Origin": FRONT_END}
    responses = [
        cors_client.post("/api/predict", **_upload(a_digit_png()), headers=origin),
        cors_client.get("/api/model", headers=origin),
        cors_client.get("/healthz", headers=origin),
        cors_client.post("/api/predict", content=b"not an image", headers=origin),  # a 4xx
        cors_client.get("/nowhere", headers=origin),  # a 404
    ]
    assert [r.status_code for r in responses][:3] == [200, 200, 200]
    assert all(r.status_code >= 400 for r in responses[3:])
    for response in responses:
        assert response.headers["access-control-allow-origin"] == FRONT_END


def test_cors_other_origins_get_no_grant(cors_client: TestClient) -> None:
    assert preflight(cors_client, "https://evil.example").status_code == 400
    response = cors_client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_without_cors_origins_nothing_changes(client: TestClient) -> None:
    response = preflight(client, FRONT_END)
    assert response.status_code == 405  # as before: no OPTIONS route, no CORS layer
    assert "access-control-allow-origin" not in response.headers
    response = client.get("/healthz", headers={"Origin": FRONT_END})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    "origin",
    ["digits.example.org", "https://digits.example.org/", "ftp://x.org", "https://"]
    # ports a browser never sends (out of range, not a number), a user name, no host
    + ["http://x.org:99999", "http://x.org:abc", "https://me@x.org", "http://:8080"],
)
def test_a_bad_cors_origin_is_one_line(tiny_classifier: Classifier, origin: str) -> None:
    with pytest.raises(SeqMnistError, match="is not an origin: give scheme://host"):
        create_app(tiny_classifier, cors_origins=[origin])


def test_serve_refuses_a_bad_cors_origin_before_listening(tiny_run: Path, capsys) -> None:
    code = main(["serve", str(tiny_run), "--port", "0", "--cors-origin", "example.org"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seqmnist: error: --cors-origin 'example.org'")
