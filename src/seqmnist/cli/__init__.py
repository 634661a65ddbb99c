"""The ``seqmnist`` command line: parse, validate, dispatch. No training logic lives here.

Each subcommand is a pair of functions, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``,
registered in ``COMMANDS``. Library errors (``SeqMnistError``) become one line on stderr,
``seqmnist: error: ...``, and a non-zero exit; ``--debug`` shows the traceback instead. Output
into a closed pipe (``| head -1``) ends every command quietly with ``EXIT_OUTPUT_CLOSED``.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import ConfigError, ProcessLost, SeqMnistError, TrainingInterrupted
from ..launch import torchrun_rank
from .ablate_command import _add_ablate, _run_ablate
from .common import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OUTPUT_CLOSED
from .explain_command import _add_explain, _run_explain
from .image_commands import (
    _add_plot,
    _add_predict,
    _add_serve,
    _add_show,
    _run_plot,
    _run_predict,
    _run_serve,
    _run_show,
)
from .inspect_command import _add_inspect, _run_inspect
from .model_commands import (
    _add_compare,
    _add_evaluate,
    _add_export,
    _add_info,
    _run_compare,
    _run_evaluate,
    _run_export,
    _run_info,
)
from .train_command import _add_train, _run_train

# --- entry point ----------------------------------------------------------------------------

COMMANDS: dict[
    str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]
] = {
    "train": (_add_train, _run_train),
    "evaluate": (_add_evaluate, _run_evaluate),
    "info": (_add_info, _run_info),
    "show": (_add_show, _run_show),
    "plot": (_add_plot, _run_plot),
    "inspect": (_add_inspect, _run_inspect),
    "serve": (_add_serve, _run_serve),
    "predict": (_add_predict, _run_predict),
    "export": (_add_export, _run_export),
    "compare": (_add_compare, _run_compare),
    "ablate": (_add_ablate, _run_ablate),
    "explain": (_add_explain, _run_explain),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqmnist",
        description="Train, evaluate, explain and serve recurrent classifiers on MNIST read as "
        "a sequence.",
    )
    parser.add_argument("--version", action="version", version=f"seqmnist {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks on errors (default: off)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


_PACKAGE = Path(__file__).resolve().parents[1]  # src/seqmnist


def _show_warning(
    who: str,
    message: Warning | str,
    category: type,
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """The library's own warnings as one line, like its errors; other packages' as Python
    shows them (they are not ours to reword)."""
    if Path(filename).resolve().is_relative_to(_PACKAGE):
        print(f"{who}: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: Sequence[str] | None = None) -> int:
    _names_always_printable()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code = _dispatch(args)
    except BrokenPipeError:
        # stdout or stderr is a pipe whose reader has gone (`| head -1`, `| grep -m1`): the first
        # failed write stops the work and nothing more is said (there is no one to say it to;
        # even with --debug: it is not a fault). The per-file loops let this through to here.
        code = EXIT_OUTPUT_CLOSED
    if _silence_closed_output():
        code = EXIT_OUTPUT_CLOSED
    return code


def _names_always_printable() -> None:
    """A file name the terminal's encoding cannot show (bytes that are not UTF-8 on Linux, a
    Chinese name under a Latin-1 locale) is printed with backslash escapes, as Python's own
    stderr does, not a UnicodeEncodeError that ends a folder's predictions halfway."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def _dispatch(args: argparse.Namespace) -> int:
    _, run = COMMANDS[args.command]
    # Under torchrun every process runs this. Ctrl-C reaches all of them and a bad flag fails on all
    # of them alike, so only rank 0 reports those; any other error is reported by the rank it hit,
    # tagged with that rank (a lost process: the lowest surviving rank). Only a real torchrun
    # launch has ranks: a RANK left in a shell does not silence a plain command's errors.
    rank = torchrun_rank()
    who = "seqmnist" if rank == 0 else f"seqmnist [rank {rank}]"
    try:
        with warnings.catch_warnings():
            warnings.showwarning = functools.partial(_show_warning, who)
            return run(args)
    except TrainingInterrupted as exc:
        if rank == 0:
            print(f"seqmnist: {exc}", file=sys.stderr)
        # train stops on a closed stdout as on Ctrl-C (resumable), but says which it was
        closed = isinstance(exc.__cause__, BrokenPipeError)
        return EXIT_OUTPUT_CLOSED if closed else EXIT_INTERRUPTED
    except KeyboardInterrupt:
        if rank == 0:
            print("seqmnist: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SeqMnistError as exc:
        if args.debug:
            raise
        if _reports(exc, rank):
            print(f"{who}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _reports(exc: SeqMnistError, rank: int) -> bool:
    """Whether this process prints ``exc``: errors every rank hits alike once (rank 0)."""
    if isinstance(exc, ProcessLost):
        return exc.reporter
    return rank == 0 or not isinstance(exc, ConfigError)


def _silence_closed_output() -> bool:
    """Flush stdout and stderr now; True if either is a closed pipe, which then points at
    os.devnull.

    Output that is still buffered when the interpreter exits is flushed there, and into a closed
    pipe that prints "Exception ignored ... BrokenPipeError" and exits 120. Python's documentation
    (the signal module's note on SIGPIPE) recommends this: flush where the error can be handled,
    and redirect the stream to devnull so that the flush at exit has nowhere to fail. A stream
    that flushes fine (a terminal, a file, pytest's capture) is left alone.
    """
    closed = False
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            closed = True
            try:
                fd = stream.fileno()
            except (AttributeError, OSError, ValueError):  # not a real file: nothing at exit
                continue
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except (AttributeError, OSError, ValueError):  # None, closed or odd streams
            continue
    return closed
