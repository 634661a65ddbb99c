"""Request bodies in, image payloads out: the parsing half of the web app (``serve.app``).

``read_body`` reads a body under a size and a time limit; ``parse_json_body`` and
``parse_multipart_body`` take the image (and an optional ``top_k``) out of it; ``png_base64``
encodes the 28x28 image the model saw for the JSON answer. Every client mistake is a
``ClientError`` carrying its 4xx status.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import numpy as np
from fastapi import Request
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from ..errors import SeqMnistError

MAX_BODY_BYTES = 2 * 1024 * 1024  # the largest request body /api/predict accepts
BODY_TIMEOUT_S = 30.0  # the whole body must arrive within this (2 MB at ~70 KB/s); else a 408
DEFAULT_TOP_K = 3
MAX_TOP_K = 10


class ClientError(SeqMnistError):
    """A request the client can fix; becomes ``{"error": message}`` with ``status`` (a 4xx)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class _InMemoryMultiPartParser(MultiPartParser):
    # Starlette spools uploads over 1 MB to a temporary file; the body limit already caps the
    # size, so keep every upload in memory: the server never writes to disk.
    spool_max_size = MAX_BODY_BYTES + 1


def _preview(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of a client's value for an error message."""
    if isinstance(value, (bool, int, float, str, type(None))):
        text = repr(value)
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def read_body(
    request: Request, limit: int = MAX_BODY_BYTES, timeout: float = BODY_TIMEOUT_S
) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all, or a body
    that takes more than ``timeout`` seconds to arrive (a slow client holding a connection).

    The Content-Length header lets us refuse early, but a client can lie or stream without it,
    so the received bytes are counted too.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_size = int(declared)
        except ValueError:
            raise ClientError(
                400, f"Content-Length header is not a number: {declared[:40]!r}"
            ) from None
        if declared_size > limit:
            raise ClientError(
                413, f"request body is {declared_size:,} bytes; the limit is {limit:,} bytes"
            )
    chunks: list[bytes] = []
    received = 0
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise ClientError(413, f"request body is over the limit of {limit:,} bytes")
                chunks.append(chunk)
    except ClientDisconnect:
        raise ClientError(400, "the client disconnected before sending the whole body") from None
    except TimeoutError:
        message = f"the request body took over {timeout:g} s to arrive ({received:,} bytes came)"
        raise ClientError(408, message, {"Connection": "close"}) from None
    return b"".join(chunks)


def parse_flag(name: str, value: str) -> bool:
    """An opt-in query flag: 1/true/yes or 0/false/no (any letter case); else a 422."""
    text = value.strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no", ""):
        return False
    raise ClientError(422, f"{name} must be 1 or 0 (true or false); got {_preview(value)}")


def parse_top_k(value: Any) -> int:
    """``top_k`` from JSON (int) or a form / query field (str), 1 to MAX_TOP_K."""
    given = value
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:  # not a number, or over Python's 4,300-digit limit
            value = None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOP_K:
        raise ClientError(
            422, f"top_k must be an integer from 1 to {MAX_TOP_K}; got {_preview(given)}"
        )
    return value


def decode_base64_image(text: str) -> bytes:
    """Bytes from plain base64 or a ``data:image/...;base64,...`` URL (canvas.toDataURL's form)."""
    text = text.strip()
    if text.startswith("data:"):
        header, comma, text = text.partition(",")
        if not comma or not header.endswith(";base64"):
            raise ClientError(
                400, "'image' is a data: URL but not a base64 one; send data:image/png;base64,..."
            )
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
        raise ClientError(
            400, 'body is not valid JSON; send {"image": "<base64 PNG>", "top_k": 3}'
        ) from None
    except RecursionError:  # [[[[...]]]] thousands deep: Python's parser gives up
        raise ClientError(
            400, 'JSON body is nested too deeply; send {"image": "<base64 PNG>"}'
        ) from None
    if not isinstance(payload, dict):
        raise ClientError(
            422, 'JSON body must be an object like {"image": "<base64 PNG>", "top_k": 3}'
        )
    image = payload.get("image")
    if not isinstance(image, str):
        raise ClientError(422, 'JSON body needs "image": a base64 string or a data: URL')
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
            raise ClientError(
                422, "multipart body has no 'file' field; upload the image as file=@digit.png"
            )
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
