"""``seqmnist serve``: a draw-a-digit web page and a JSON API around one trained classifier.

FastAPI and uvicorn come with the ``serve`` extra. They are imported here, inside functions, so
that ``import seqmnist`` works without them and a missing extra is one clear error message.

Slow and oversized clients (``server_config``). uvicorn bounds the time *between* requests
(``timeout_keep_alive``) and, with its h11 protocol, the size of a request line plus headers
(``h11_max_incomplete_event_size``), but it has no timeout for a request that is still *arriving*
(uvicorn issue #157: ``--timeout-request-start`` was never implemented), so one client trickling a
header byte every few seconds would hold a connection forever. Here:

- request line + headers: must arrive within ``HEAD_TIMEOUT_S`` of the connection opening (or of
  the next request's first byte), else the connection is closed. This is the one addition to
  uvicorn: ``_HeadDeadlineProtocol``, its h11 protocol class plus that timer, handed to uvicorn
  through its public ``http=`` option;
- request line + headers: at most ``MAX_HEAD_BYTES`` (``h11_max_incomplete_event_size``; more is
  a 400 from uvicorn);
- body: must arrive within ``app.BODY_TIMEOUT_S`` (the app's ``read_body``; a 408 JSON error) and
  be at most ``app.MAX_BODY_BYTES`` (a 413);
- idle keep-alive connections close after ``KEEP_ALIVE_S``;
- at most ``MAX_CONNECTIONS`` connections at once (``limit_concurrency``; more get a 503).

In front of the public internet, a reverse proxy (nginx's ``client_header_timeout`` /
``client_body_timeout``) remains the usual belt to these braces.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import TYPE_CHECKING, Any

from ..errors import SeqMnistError

if TYPE_CHECKING:
    from fastapi import FastAPI

MISSING_EXTRA = "seqmnist serve needs the 'serve' extra: pip install 'seqmnist[serve]'"

HEAD_TIMEOUT_S = 10.0  # the request line and headers must arrive within this
MAX_HEAD_BYTES = 16 * 1024  # request line + headers (browsers send well under 4 KiB)
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this (uvicorn's default)
MAX_CONNECTIONS = 100  # open connections at once; more are answered 503


def _import_multipart() -> None:
    """python-multipart (form uploads): ``python_multipart`` since 0.0.13, ``multipart`` before."""
    try:
        import python_multipart  # noqa: F401
    except ImportError:
        import multipart  # noqa: F401


def require_serve_extra() -> None:
    """Raise ``SeqMnistError`` unless FastAPI, uvicorn and python-multipart are importable."""
    try:
        import fastapi  # noqa: F401

        _import_multipart()
        import uvicorn  # noqa: F401
    except ImportError:
        raise SeqMnistError(MISSING_EXTRA) from None


def create_app(classifier: Any, **kwargs: Any) -> FastAPI:
    """The FastAPI app serving ``classifier`` (a ``seqmnist.predict.Classifier``); see app.py."""
    require_serve_extra()
    from .app import create_app as _create_app

    return _create_app(classifier, **kwargs)


def _head_deadline_protocol(head_timeout: float) -> type:
    """uvicorn's h11 protocol class plus a deadline for each request's line and headers."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class _HeadDeadlineProtocol(H11Protocol):
        _head_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._head_timer = self.loop.call_later(head_timeout, self._head_timed_out)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            waiting = self.conn.their_state is h11.IDLE  # part of a request head, not all of it
            if waiting and self._head_timer is None:  # the first bytes of a keep-alive request
                self._head_timer = self.loop.call_later(head_timeout, self._head_timed_out)
            elif not waiting:
                self._stop_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.logger.warning(
                    "Request headers took over %g s; connection closed.", head_timeout
                )
                self.transport.close()

    return _HeadDeadlineProtocol


def server_config(
    app: Any, *, log_level: str = "info", head_timeout: float = HEAD_TIMEOUT_S
) -> Any:
    """The ``uvicorn.Config`` ``serve`` runs ``app`` under: the limits in the module docstring."""
    import uvicorn

    return uvicorn.Config(
        app,
        http=_head_deadline_protocol(head_timeout),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        log_level=log_level,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port).

    Binding here, before uvicorn starts, turns "address already in use" into a clear error
    (uvicorn itself would log it and exit the process).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise SeqMnistError(f"cannot listen on {host}:{port}: {exc}; check --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = (
            "pick another --port"
            if exc.errno in (errno.EADDRINUSE, errno.EACCES)
            else "check --host and --port"
        )
        raise SeqMnistError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; {hint}"
        ) from None
    return sock


def serve(
    model_path: str | os.PathLike,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device: str = "cpu",
    threads: int = 1,
    log_level: str = "info",
    cors_origins: tuple[str, ...] | list[str] = (),
) -> None:
    """Load the model once, then serve it with uvicorn until Ctrl-C.

    ``threads`` is PyTorch's intra-op thread count for each prediction. One image is far too small
    to split across cores; concurrent requests already run in parallel worker threads, and extra
    intra-op threads only fight them (measured on 2 busy cores: 150 ms per image with 2 threads,
    1.2 ms with 1). ``cors_origins``: browser pages of these origins may call the API.
    """
    require_serve_extra()
    import torch
    import uvicorn

    from ..predict import load
    from .app import check_cors_origin

    cors_origins = [check_cors_origin(o) for o in cors_origins]  # a bad one: before anything
    torch.set_num_threads(threads)
    sock = bind_socket(host, port)  # first: a taken port is reported before the model loads
    try:
        classifier = load(model_path, device=device)
        app = create_app(classifier, cors_origins=cors_origins)
        shown_host = f"[{host}]" if ":" in host else host
        print(
            f"seqmnist: serving {classifier.name} on http://{shown_host}:{sock.getsockname()[1]}/ "
            "(Ctrl-C stops)",
            flush=True,
        )
        uvicorn.Server(server_config(app, log_level=log_level)).run(sockets=[sock])
    finally:
        sock.close()
