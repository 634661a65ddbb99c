"""The one exception type the library raises for problems a user can fix.

The CLI turns a ``SeqMnistError`` into a single ``seqmnist: error: ...`` line and a non-zero
exit; anything else is a bug and keeps its traceback (shown with ``--debug``).
"""

from __future__ import annotations


class SeqMnistError(Exception):
    """A user-facing error: the message names what is wrong and what to do about it."""


class DataError(SeqMnistError):
    """MNIST files are missing, truncated or corrupt."""


class ImageError(SeqMnistError):
    """An image cannot be used: unreadable, empty, truncated, not an image, too large, or blank."""


class InputError(ImageError):
    """What was passed to ``predict`` is not in the input contract: the message names the form
    and the argument or change that fixes it."""


class CheckpointError(SeqMnistError):
    """A file is not a seqmnist checkpoint, or one this version cannot read."""


class ConfigError(SeqMnistError):
    """A configuration value is out of range or inconsistent."""


class ExplainError(SeqMnistError):
    """Something ``explain`` cannot do with this model or these arguments."""


class TrainingInterrupted(SeqMnistError):
    """Ctrl-C during training; the run directory holds a checkpoint to resume from."""

    def __init__(self, message: str, run_dir: str, epoch: int) -> None:
        super().__init__(message)
        self.run_dir = run_dir
        self.epoch = epoch


class ProcessLost(SeqMnistError):
    """Another process of a distributed run died, hung or closed its connection. Every survivor
    raises it; only ``reporter`` (the lowest surviving rank) prints it, so the run says it once."""

    def __init__(self, message: str, reporter: bool) -> None:
        super().__init__(message)
        self.reporter = reporter


class OutOfMemory(SeqMnistError):
    """The batch or the model does not fit in the memory this process may use."""


class TrainingDiverged(SeqMnistError):
    """The training loss became NaN or infinite."""


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception's message cut to its first line, for a one-line error that quotes it."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]
