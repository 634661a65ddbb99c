"""The FastAPI app: one static page and a small JSON API around one classifier.

Routes:
    GET  /             the draw-a-digit page (static/index.html: inline CSS and JS, self-contained)
    POST /api/predict  an image in, the top-k digits, the 28x28 image the model saw and the
                       answer's warnings out; with ?reading=1 also the probabilities after each
                       step of the sequence (at most 28 prefixes: every k-th step for long orders)
    GET  /api/model    model config, parameter count, recorded test accuracy
    GET  /healthz      {"status": "ok"}
    (HEAD works wherever GET does: the same headers, no body.)

Every client mistake is a 4xx with a JSON body ``{"error": "..."}`` naming what is wrong; a 500
only ever means a bug. Request bodies are read into memory with a hard size limit (the
Content-Length header is checked first, then the bytes actually received are counted) and a
time limit (a client trickling its upload gets a 408), and nothing is written to disk. The model
runs in a worker thread so the event loop keeps serving. Every response, errors and 500s
included, carries ``SECURITY_HEADERS``; every 405 names the allowed methods in ``Allow``.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import SeqMnistError
from ..images import ImageError, open_image
from ..launch import usable_cpus
from .payloads import (
    BODY_TIMEOUT_S,
    DEFAULT_TOP_K,
    MAX_BODY_BYTES,
    MAX_TOP_K,
    ClientError,
    decode_base64_image,
    parse_flag,
    parse_json_body,
    parse_multipart_body,
    parse_top_k,
    png_base64,
    read_body,
)

# The request parsing lives in payloads.py; these names stay importable from here too.
__all__ = [
    "BODY_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MAX_TOP_K",
    "SECURITY_HEADERS",
    "ClientError",
    "check_cors_origin",
    "create_app",
    "decode_base64_image",
    "load_page",
    "parse_json_body",
    "parse_multipart_body",
    "parse_top_k",
    "png_base64",
    "read_body",
]

# On every response (page, API, errors). The page may only talk to this server: no scripts,
# styles, fonts or images from anywhere else, and no other site may frame it (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
}

log = logging.getLogger("seqmnist.serve")


def _error(status: int, message: str, headers: Any = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _EveryResponse:
    """The outermost ASGI layer, outside Starlette's error middleware so that 500s pass it too:
    adds ``SECURITY_HEADERS`` to every response, and sends no body in answer to HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                message = {**message, "headers": headers.raw}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}  # Content-Length stays GET's, as HTTP says
            await send(message)

        await self.app(scope, receive, send_hardened)


class _App(FastAPI):
    cors_origins: tuple[str, ...] = ()

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        if self.cors_origins:
            # Outside Starlette's error middleware, so that a 500 carries the header too.
            stack = _cors(stack, self.cors_origins)
        return _EveryResponse(stack)


def _cors(app: ASGIApp, origins: tuple[str, ...]) -> ASGIApp:
    """Starlette's CORS layer: a browser page from one of ``origins`` may call the API. It answers
    preflights (OPTIONS with Access-Control-Request-Method) itself and adds
    Access-Control-Allow-Origin to every response for a listed origin; other origins get no CORS
    headers (and a 400 to their preflight), so their browsers keep the answers from them."""
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(
        app,
        allow_origins=list(origins),
        allow_methods=["GET", "HEAD", "POST"],
        allow_headers=["Content-Type"],
        max_age=600,
    )


def check_cors_origin(origin: str) -> str:
    """An origin as browsers send it: ``scheme://host[:port]``, no path; or ``*`` (any)."""
    from urllib.parse import urlsplit

    if origin == "*":
        return origin
    parts = urlsplit(origin)
    try:
        parts.port  # noqa: B018 -- raises ValueError for a port out of range or not a number
    except ValueError:
        parts = parts._replace(netloc="")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or origin != (f"{parts.scheme}://{parts.netloc}")
    ):
        raise SeqMnistError(
            f"--cors-origin {origin!r} is not an origin: give scheme://host[:port] with no path "
            "or trailing slash (e.g. https://example.org or http://localhost:3000), or *"
        )
    return origin


def load_page() -> str:
    """The single HTML page, shipped as package data (``serve/static/index.html``)."""
    try:
        return resources.files(__package__).joinpath("static", "index.html").read_text("utf-8")
    except OSError as exc:
        raise SeqMnistError(
            f"the web page is missing from the installed package ({exc}); reinstall seqmnist"
        ) from None


# --- error handlers: every error is {"error": "..."} with its status ---------------------------


async def _client_error(request: Request, exc: ClientError) -> JSONResponse:
    return _error(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    where = f"{request.method[:20]} {request.url.path[:200]}"
    if exc.status_code == 404:
        message = f"no such page or endpoint: {where}"
    elif exc.status_code == 405:  # Starlette puts the route's methods in headers["Allow"]
        allowed = ", ".join(sorted((exc.headers or {}).get("Allow", "").split(", ")))
        message = f"{where} is not allowed; use {allowed}"
        return _error(405, message, {**(exc.headers or {}), "Allow": allowed})
    else:
        message = str(exc.detail)
    return _error(exc.status_code, message, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _error(422, f"invalid request: {exc.errors()}")


async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("bug while serving %s %s", request.method, request.url.path)
    return _error(500, "internal server error (a bug in seqmnist: see the server log)")


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ClientError, _client_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _server_error)


# --- routes ---------------------------------------------------------------------------------


def classify(classifier: Any, data: bytes, top_k: int, reading: bool = False) -> dict[str, Any]:
    """Decode, preprocess and classify one image; runs in a worker thread.

    ``warnings`` is ``Prediction.warnings`` (each one line the page shows under the answer);
    always a list, empty when all is clear. With ``reading`` (the opt-in ``?reading=1``), also
    how the prediction evolved as the model read the image (``explain.reading_of``).
    """
    image = open_image(data)
    prediction = classifier.predict([image], top_k=top_k)[0]
    # A duck-typed classifier (a test's stub) may give predictions without warnings.
    warnings = getattr(prediction, "warnings", None) or []
    answer = {
        "label": int(prediction.label),
        "top_k": [{"digit": int(d), "probability": float(p)} for d, p in prediction.top_k],
        "probabilities": [float(p) for p in prediction.probabilities],
        "preprocessed_png": png_base64(prediction.image),
        "warnings": [str(w) for w in warnings],
        "model": classifier.name,
    }
    if reading:
        from ..explain import reading_of

        answer["reading"] = reading_of(classifier, prediction.image)
    return answer


async def read_image_and_top_k(request: Request, body: bytes) -> tuple[bytes, Any]:
    """(image bytes, top_k or None) from a body in any of the accepted Content-Types."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        return await parse_multipart_body(request, body)
    if media_type == "application/json":
        return parse_json_body(body)
    if media_type.startswith("image/") or media_type == "application/octet-stream":
        return body, None  # the raw image file as the body
    raise ClientError(
        415,
        f"unsupported Content-Type {media_type or '(none)'!r}: send multipart/form-data "
        'with a \'file\' field, JSON {"image": "<base64>"}, or the image bytes as '
        "image/png",
    )


def _add_info_routes(app: FastAPI, classifier: Any, page: str, max_body_bytes: int) -> None:
    """The page, the health check and the model description."""

    @app.api_route(
        "/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False
    )
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.api_route("/healthz", methods=["GET", "HEAD"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route("/api/model", methods=["GET", "HEAD"])
    async def model_info() -> dict[str, Any]:
        config = classifier.config
        return {
            "name": classifier.name,
            "parameters": int(classifier.parameters),
            "test_accuracy": classifier.test_accuracy,
            "config": config.to_dict() if config is not None else None,
            "limits": {"max_body_bytes": max_body_bytes, "max_top_k": MAX_TOP_K},
        }


def _add_predict_route(
    app: FastAPI,
    classifier: Any,
    workers: anyio.CapacityLimiter,
    max_body_bytes: int,
    body_timeout: float,
) -> None:
    """POST /api/predict: read the body, take the image out, classify it in a worker thread."""

    @app.post("/api/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = await read_body(request, max_body_bytes, body_timeout)
        data, top_k = await read_image_and_top_k(request, body)
        if not data:
            raise ClientError(400, "the image is empty (0 bytes)")
        if top_k is None:
            top_k = request.query_params.get("top_k", DEFAULT_TOP_K)
        top_k = parse_top_k(top_k)
        reading = parse_flag("reading", request.query_params.get("reading", "0"))
        try:
            return await anyio.to_thread.run_sync(
                classify, classifier, data, top_k, reading, limiter=workers
            )
        except ImageError as exc:
            raise ClientError(422, str(exc)) from None


def create_app(
    classifier: Any,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_workers: int | None = None,
    body_timeout: float = BODY_TIMEOUT_S,
    cors_origins: tuple[str, ...] | list[str] = (),
) -> FastAPI:
    """The app serving ``classifier``, a loaded ``seqmnist.predict.Classifier``.

    The model is loaded once by the caller (the CLI, or a test) and shared by every request.
    ``max_workers`` caps the predictions running at once (default: one per CPU the process may
    use); ``body_timeout`` is the time a request body may take to arrive; ``cors_origins``: web
    pages of these origins may call the API from a browser (none by default).
    """
    origins = tuple(check_cors_origin(o) for o in cors_origins)
    page = load_page()
    # At most one prediction per core at a time; other requests wait their turn (in order) instead
    # of piling dozens of threads onto a few cores, which only makes every answer slower.
    workers = anyio.CapacityLimiter(max_workers or usable_cpus())
    app = _App(
        title="seqmnist",
        summary="Draw a digit; a recurrent network reads it row by row.",
        docs_url=None,  # the interactive docs load scripts from a CDN; this server stays offline
        redoc_url=None,
        openapi_url=None,
    )
    app.cors_origins = origins
    _add_error_handlers(app)
    _add_info_routes(app, classifier, page, max_body_bytes)
    _add_predict_route(app, classifier, workers, max_body_bytes, body_timeout)
    return app
