"""The FastAPI app: one static page and a small JSON API around one classifier.

Routes:
    GET  /             the draw-a-digit page (static/index.html: inline CSS and JS, no external assets)
    POST /api/predict  an image in, the top-k digits and the 28x28 image the model saw out
    GET  /api/model    model config, parameter count, recorded test accuracy
    GET  /healthz      {"status": "ok"}

Every client mistake is a 4xx with a JSON body ``{"error": "..."}`` naming what is wrong; a 500
only ever means a bug. Request bodies are read into memory with a hard size limit (the
Content-Length header is checked first, then the bytes actually received are counted), and
nothing is written to disk. The model runs in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from ..errors import SeqMnistError
from ..preprocess import ImageError, open_image

MAX_BODY_BYTES = 2 * 1024 * 1024  # the largest request body /api/predict accepts
DEFAULT_TOP_K = 3
MAX_TOP_K = 10

# The page may only talk to this server: no scripts, styles, fonts or images from anywhere else.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

log = logging.getLogger("seqmnist.serve")


class ClientError(Exception):
    """A request the client can fix; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _InMemoryMultiPartParser(MultiPartParser):
    # Starlette spools uploads over 1 MB to a temporary file; the body limit already caps the
    # size, so keep every upload in memory: the server never writes to disk.
    spool_max_size = MAX_BODY_BYTES + 1


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def load_page() -> str:
    """The single HTML page, shipped as package data (``serve/static/index.html``)."""
    try:
        return resources.files(__package__).joinpath("static", "index.html").read_text("utf-8")
    except OSError as exc:
        raise SeqMnistError(
            f"the web page is missing from the installed package ({exc}); reinstall seqmnist"
        ) from None


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all.

    The Content-Length header lets us refuse early, but a client can lie or stream without it,
    so the received bytes are counted too.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_size = int(declared)
        except ValueError:
            raise ClientError(400, f"Content-Length header is not a number: {declared[:40]!r}") from None
        if declared_size > limit:
            raise ClientError(413, f"request body is {declared_size:,} bytes; the limit is {limit:,} bytes")
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ClientError(413, f"request body is over the limit of {limit:,} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def parse_top_k(value: Any) -> int:
    """``top_k`` from JSON (int) or a form / query field (str), 1 to MAX_TOP_K."""
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ClientError(422, f"top_k must be an integer from 1 to {MAX_TOP_K}; got {value[:20]!r}") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise ClientError(422, f"top_k must be an integer from 1 to {MAX_TOP_K}; got {value!r}")
    return value


def decode_base64_image(text: str) -> bytes:
    """Bytes from plain base64 or a ``data:image/...;base64,...`` URL (what canvas.toDataURL gives)."""
    text = text.strip()
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ClientError(400, "'image' is a data: URL but not a base64 one; send data:image/png;base64,...")
    text = "".join(text.split())  # line breaks are common in base64 produced by tools
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ClientError(400, "'image' is not valid base64") from None
    if not data:
        raise ClientError(400, "'image' is empty")
    return data


def parse_json_body(body: bytes) -> tuple[bytes, Any]:
    """``{"image": "<base64 or data: URL>", "top_k": 3}`` -> (image bytes, top_k or None)."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ClientError(400, 'body is not valid JSON; send {"image": "<base64 PNG>", "top_k": 3}') from None
    if not isinstance(payload, dict):
        raise ClientError(422, 'JSON body must be an object like {"image": "<base64 PNG>", "top_k": 3}')
    image = payload.get("image")
    if not isinstance(image, str):
        raise ClientError(422, "JSON body needs \"image\": a base64 string or a data: URL")
    return decode_base64_image(image), payload.get("top_k")


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def parse_multipart_body(request: Request, body: bytes) -> tuple[bytes, Any]:
    """The ``file`` field of a multipart/form-data body (and an optional ``top_k`` field)."""
    parser = _InMemoryMultiPartParser(
        request.headers, _once(body), max_files=1, max_fields=8, max_part_size=MAX_BODY_BYTES
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ClientError(400, f"malformed multipart body: {exc.message}") from None
    try:
        upload = form.get("file")
        if upload is None:
            raise ClientError(422, "multipart body has no 'file' field; upload the image as file=@digit.png")
        if isinstance(upload, str):
            raise ClientError(422, "'file' must be a file upload, not a text field")
        return await upload.read(), form.get("top_k")
    finally:
        await form.close()


def png_base64(image: np.ndarray) -> str:
    """A (28, 28) uint8 array as a base64 PNG (grey, white ink on black like MNIST)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _usable_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def create_app(classifier: Any, *, max_body_bytes: int = MAX_BODY_BYTES, max_workers: int | None = None) -> FastAPI:
    """The app serving ``classifier``, a loaded ``seqmnist.predict.Classifier``.

    The model is loaded once by the caller (the CLI, or a test) and shared by every request.
    ``max_workers`` caps the predictions running at once (default: one per CPU core).
    """
    page = load_page()
    # At most one prediction per core at a time; other requests wait their turn (in order) instead
    # of piling dozens of threads onto a few cores, which only makes every answer slower.
    workers = anyio.CapacityLimiter(max_workers or _usable_cores())
    app = FastAPI(
        title="seqmnist",
        summary="Draw a digit; a recurrent network reads it row by row.",
        docs_url=None,  # the interactive docs load scripts from a CDN; this server stays offline
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(ClientError)
    async def _client_error(request: Request, exc: ClientError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error(404, f"no such page or endpoint: {request.method} {request.url.path}")
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, f"invalid request: {exc.errors()}")

    @app.exception_handler(Exception)
    async def _server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("bug while serving %s %s", request.method, request.url.path)
        return _error(500, "internal server error (a bug in seqmnist: see the server log)")

    def classify(data: bytes, top_k: int) -> dict[str, Any]:
        """Decode, preprocess and classify one image; runs in a worker thread."""
        image = open_image(data)
        prediction = classifier.predict([image], top_k=top_k)[0]
        return {
            "label": int(prediction.label),
            "top_k": [{"digit": int(d), "probability": float(p)} for d, p in prediction.top_k],
            "probabilities": [float(p) for p in prediction.probabilities],
            "preprocessed_png": png_base64(prediction.image),
            "model": classifier.name,
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/model")
    async def model_info() -> dict[str, Any]:
        config = classifier.config
        return {
            "name": classifier.name,
            "parameters": int(classifier.parameters),
            "test_accuracy": classifier.test_accuracy,
            "config": config.to_dict() if config is not None else None,
            "limits": {"max_body_bytes": max_body_bytes, "max_top_k": MAX_TOP_K},
        }

    @app.post("/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = await read_body(request, max_body_bytes)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            data, top_k = await parse_multipart_body(request, body)
        elif media_type == "application/json":
            data, top_k = parse_json_body(body)
        elif media_type.startswith("image/") or media_type == "application/octet-stream":
            data, top_k = body, None  # the raw image file as the body
        else:
            raise ClientError(
                415,
                f"unsupported Content-Type {media_type or '(none)'!r}: send multipart/form-data with a "
                "'file' field, JSON {\"image\": \"<base64>\"}, or the image bytes as image/png",
            )
        if not data:
            raise ClientError(400, "the image is empty (0 bytes)")
        if top_k is None:
            top_k = request.query_params.get("top_k", DEFAULT_TOP_K)
        top_k = parse_top_k(top_k)
        try:
            return await anyio.to_thread.run_sync(classify, data, top_k, limiter=workers)
        except ImageError as exc:
            raise ClientError(422, str(exc)) from None

    return app
