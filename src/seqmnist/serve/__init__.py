"""``seqmnist serve``: a draw-a-digit web page and a JSON API around one trained classifier.

FastAPI and uvicorn come with the ``serve`` extra. They are imported here, inside functions, so
that ``import seqmnist`` works without them and a missing extra is one clear error message.
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


def _import_multipart() -> None:
    """python-multipart (form uploads) is ``python_multipart`` since 0.0.13, ``multipart`` before."""
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
    """The FastAPI app serving ``classifier`` (a ``seqmnist.predict.Classifier``); see ``app.py``."""
    require_serve_extra()
    from .app import create_app as _create_app

    return _create_app(classifier, **kwargs)


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
        hint = "pick another --port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "check --host and --port"
        raise SeqMnistError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; {hint}") from None
    return sock


def serve(
    model_path: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8000, device: str = "cpu",
    threads: int = 1, log_level: str = "info",
) -> None:
    """Load the model once, then serve it with uvicorn until Ctrl-C.

    ``threads`` is PyTorch's intra-op thread count for each prediction. One image is far too small
    to split across cores; concurrent requests already run in parallel worker threads, and extra
    intra-op threads only fight them (measured on 2 busy cores: 150 ms per image with 2 threads,
    1.2 ms with 1).
    """
    require_serve_extra()
    import torch
    import uvicorn

    from ..predict import load

    torch.set_num_threads(threads)
    sock = bind_socket(host, port)  # first: a taken port is reported before the model loads
    try:
        classifier = load(model_path, device=device)
        app = create_app(classifier)
        shown_host = f"[{host}]" if ":" in host else host
        print(f"seqmnist: serving {classifier.name} on http://{shown_host}:{sock.getsockname()[1]}/ "
              "(Ctrl-C stops)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])
    finally:
        sock.close()
