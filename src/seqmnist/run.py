"""``RunDir``: the run directory's layout and life, and the one atomic-write helper.

A run directory holds everything about one training run::

    runs/<name>/config.json          the resolved TrainConfig
               config_origin.json    where it came from: preset, --config file, flags
               metrics.csv           one row per epoch (METRIC_COLUMNS)
               checkpoint_last.pt    end of the latest epoch: resume from here
               checkpoint_best.pt    best validation accuracy (the last epoch when val_size = 0)
               summary.json          test metrics of the best checkpoint, timings, versions
               *.png                 plots

Every file is written whole or not at all (temp file, fsync, rename), so a crash, a full disk or
Ctrl-C never leaves half a file; a file that is damaged anyway is reported in one line.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

try:
    import fcntl  # POSIX advisory locks: a run in training holds one on its directory
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from .config import TrainConfig
from .errors import CheckpointError, ConfigError, SeqMnistError, first_line

CONFIG_NAME = "config.json"
ORIGIN_NAME = "config_origin.json"
METRICS_NAME = "metrics.csv"
LAST_NAME = "checkpoint_last.pt"
BEST_NAME = "checkpoint_best.pt"
SUMMARY_NAME = "summary.json"

# Column order of metrics.csv; plots and tests read these names.
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "epoch_seconds",
    "train_seconds",
    "samples_per_s",
    "lr_min",
    "lr_max",
)
# Columns added later: a metrics.csv written before them reads with these left empty (None).
LATER_METRIC_COLUMNS = ("lr_min", "lr_max")


# How PyTorch's zip writer words a write that the disk refused.
TORCH_WRITE_FAILURES = ("unexpected pos", "PytorchStreamWriter failed writing", "file write failed")


class WriteError(SeqMnistError):
    """A file could not be written: read-only folder, full disk, missing permission."""


def write_failure(path: str | os.PathLike, exc: OSError) -> WriteError:
    """One line for a failed write that says what to do about it."""
    if exc.errno == errno.ENOSPC:
        return WriteError(f"cannot write {path}: the disk is full; free some space and try again")
    reason = exc.strerror or str(exc) or type(exc).__name__
    return WriteError(
        f"cannot write {path} ({reason}): choose a writable location or fix its permissions"
    )


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it.

    ``os.umask`` can only be read by setting it, which for a moment changes the mode of every file
    any other thread creates (the web server has threads). Linux shows it in /proc/self/status;
    elsewhere the set-and-restore runs under a lock, with the stricter 077 meanwhile, so that a file
    another thread creates in that moment is at worst private, never more open than meant.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


T = TypeVar("T")


def atomic_write(path: str | os.PathLike, write: Callable[[Any], T], *, to_path: bool = False) -> T:
    """Call ``write(f)`` on a temp file beside ``path``, fsync, then rename it over ``path``;
    returns what ``write`` returns. Every file seqmnist writes in one piece goes through here.

    Readers see the old file or the new one, never a part, and the file gets the mode a plain
    ``open()`` would give (0644 under umask 022). With ``to_path=True``, ``write`` gets the temp
    file's path instead, for writers that only take a file name (``torch.onnx.export``,
    ``torch.jit.save``); it may rewrite that file and check it before the rename. Any failure
    (including Ctrl-C, or an exception from ``write``) removes the temp file; an ``OSError``
    becomes a one-line ``WriteError``.
    """
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        mode = 0o666 & ~current_umask()  # mkstemp makes the file private (0600)
        if to_path:
            os.close(fd)
            result = write(Path(tmp))
            os.chmod(tmp, mode)  # after the writer: it may have made the file anew
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as f:
                result = write(f)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        return result
    except OSError as exc:
        raise write_failure(path, _root_os_error(exc)) from None
    except RuntimeError as exc:
        # torch.save's zip writer reports a full disk as a RuntimeError, not an OSError.
        if any(marker in str(exc) for marker in TORCH_WRITE_FAILURES):
            raise write_failure(path, OSError(errno.ENOSPC, "no space left")) from None
        raise
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _root_os_error(exc: OSError) -> OSError:
    cause = exc.__cause__ or exc.__context__
    return cause if isinstance(cause, OSError) and cause.errno else exc


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    text = json.dumps(data, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON file that must hold an object; a damaged one is a one-line error naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise CheckpointError(
            f"{path} is not a readable {what} ({first_line(exc)}); delete it or train the run again"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path} is not a seqmnist {what} (a JSON object); delete it or train the run again"
        )
    return data


class RunDir:
    """One run directory: where its files are, how they are created, read and replaced."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.config_file = self.path / CONFIG_NAME
        self.metrics_file = self.path / METRICS_NAME
        self.last_checkpoint = self.path / LAST_NAME
        self.best_checkpoint = self.path / BEST_NAME
        self.summary_file = self.path / SUMMARY_NAME
        self._claim: int | None = None  # descriptor of the directory while this process trains

    def __str__(self) -> str:
        return str(self.path)

    def holds_run(self) -> bool:
        return any(
            p.exists() for p in (self.last_checkpoint, self.best_checkpoint, self.metrics_file)
        )

    def is_run(self) -> bool:
        """Made by ``seqmnist train`` (as opposed to a folder that only holds a checkpoint)."""
        return self.config_file.is_file() or self.summary_file.is_file()

    def unfinished(self) -> bool:
        """A run whose first epoch never finished (stopped by Ctrl-C, a lost process, out of
        memory): config.json and the epoch-0 checkpoint at most, nothing worth keeping."""
        finished_something = (self.metrics_file, self.best_checkpoint, self.summary_file)
        unfinished = self.holds_run() and not any(p.exists() for p in finished_something)
        return unfinished and not self.in_use()

    def claim(self) -> None:
        """Mark the directory as being trained by this process until ``release`` (or its end,
        however it ends: the kernel drops the lock of a killed process), so that another
        ``seqmnist train`` does not take a run in its first epoch for an abandoned one."""
        if fcntl is None or self._claim is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held elsewhere (an explicit --overwrite), or no locks on this file system
            os.close(fd)
            return
        self._claim = fd

    def release(self) -> None:
        if self._claim is not None:
            os.close(self._claim)
            self._claim = None

    @contextlib.contextmanager
    def released_at_exit(self) -> Iterator[None]:
        """Release the claim taken inside the block, however the block ends."""
        try:
            yield
        finally:
            self.release()

    def in_use(self) -> bool:
        """Another process trains here now (it holds the lock ``claim`` takes)."""
        if fcntl is None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
        finally:
            os.close(fd)
        return False

    def refuse_to_replace(self, overwrite: bool) -> bool:
        """A fresh run must not silently replace one that is here, unless ``overwrite``; a run
        whose first epoch never finished is replaced anyway. True when it replaces one (the
        caller says so)."""
        if self.in_use() and not overwrite:
            raise SeqMnistError(
                f"{self.path} is being trained by another seqmnist process now: "
                "wait for it to end, or choose another --out"
            )
        if self.unfinished():
            return True
        if self.holds_run() and not overwrite:
            raise SeqMnistError(
                f"{self.path} already holds a run: continue it with --resume {self.path}, "
                "replace it with --overwrite, or choose another --out"
            )
        return False

    def create(
        self, config: TrainConfig, overwrite: bool, origin: dict[str, Any] | None = None
    ) -> None:
        """Start a fresh run here: refuse to replace a run unless ``overwrite``, clear stale files,
        write config.json (and config_origin.json: where it came from)."""
        self.refuse_to_replace(overwrite)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for stale in (
                self.metrics_file,
                self.summary_file,
                self.last_checkpoint,
                self.best_checkpoint,
            ):
                stale.unlink(missing_ok=True)
            self.remove_temp_files()
        except OSError as exc:
            raise SeqMnistError(
                f"cannot create the run directory {self.path} ({exc.strerror}): "
                "choose another --out"
            ) from None
        write_json_atomic(self.config_file, config.to_dict())
        self.write_origin(origin)

    def write_origin(self, origin: dict[str, Any] | None) -> None:
        """Record where the config came from (None: remove an earlier run's record)."""
        path = self.path / ORIGIN_NAME
        if origin is None:
            path.unlink(missing_ok=True)
        else:
            write_json_atomic(path, origin)

    def remove_temp_files(self) -> None:
        """Delete what writes cut short by a kill left behind: ``atomic_write``'s temp files of
        this run's own files (``checkpoint_last.pt.<random>.tmp``; up to a checkpoint each)."""
        for name in (CONFIG_NAME, ORIGIN_NAME, METRICS_NAME, LAST_NAME, BEST_NAME, SUMMARY_NAME):
            for leftover in self.path.glob(f"{name}.*.tmp"):
                leftover.unlink(missing_ok=True)

    def check_resumable(self) -> None:
        """Before resuming, before any data is loaded: a checkpoint to continue from, and a
        directory that can be written to."""
        if not self.last_checkpoint.is_file():
            if not self.path.is_dir():
                raise SeqMnistError(f"no such run directory: {self.path}")
            raise SeqMnistError(
                f"{self.path} has no {LAST_NAME} to resume from (training stopped before its "
                "first checkpoint, or this is not a run directory): start the run again with the "
                "flags it was started with"
            )
        self.check_writable()

    def check_writable(self) -> None:
        """Before resuming: a run that cannot be written to would fail only after an epoch."""
        if not os.access(self.path, os.W_OK):
            raise WriteError(
                f"cannot write to {self.path}: the run directory is read-only; "
                "copy it somewhere writable"
            )

    def read_config(self) -> TrainConfig:
        if not self.config_file.is_file():
            raise SeqMnistError(
                f"{self.path} has no {CONFIG_NAME}: pass a run directory made by `seqmnist train`"
            )
        data = read_json_object(self.config_file, "config")
        try:
            return TrainConfig.from_dict(data)
        except (ConfigError, TypeError) as exc:
            raise CheckpointError(
                f"{self.config_file} is not a valid seqmnist config ({first_line(exc)})"
            ) from None

    def read_summary(self) -> dict[str, Any] | None:
        """summary.json (written when training finishes), None if there is none."""
        if not self.summary_file.is_file():
            return None
        return read_json_object(self.summary_file, "summary")

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.summary_file, summary)

    def read_metrics(self) -> list[dict[str, float | None]]:
        return read_metrics(self.metrics_file)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Add one epoch's row. The whole file is rewritten atomically (it is a few KB), so a
        failed write never leaves a half row behind."""
        self._write_metrics(self.read_metrics() + [row])

    def truncate_metrics_after(self, epoch: int) -> None:
        """Keep rows up to ``epoch`` (on resume, drop epochs the checkpoint does not contain)."""
        self._write_metrics([r for r in self.read_metrics() if r["epoch"] <= epoch])

    def _write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = _metrics_csv(rows)
        atomic_write(self.metrics_file, lambda f: f.write(text.encode()))

    def checkpoint(self, prefer: str = "best") -> Path:
        """Its best checkpoint, else its last one (or the other way round)."""
        order = [self.best_checkpoint, self.last_checkpoint]
        for path in order if prefer == "best" else order[::-1]:
            if path.is_file():
                return path
        raise CheckpointError(
            f"{self.path} is a folder without {BEST_NAME} or {LAST_NAME}: pass a run directory "
            "made by `seqmnist train` or a checkpoint file"
        )


def resolve_checkpoint(path: str | os.PathLike, prefer: str = "best") -> Path:
    """A checkpoint file, or a run directory (its best checkpoint, else its last one)."""
    path = Path(path)
    if path.is_dir():
        return RunDir(path).checkpoint(prefer)
    if not path.exists():
        raise CheckpointError(f"no such run directory or checkpoint: {path}")
    return path


def read_metrics(path: str | os.PathLike) -> list[dict[str, float | None]]:
    """Rows of a metrics.csv as floats (None where a column was not recorded that epoch)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return [_parse_row(row) for row in rows]
    except (OSError, ValueError, csv.Error) as exc:
        raise CheckpointError(
            f"{path} is damaged ({first_line(exc)}); delete the bad rows or train the run again"
        ) from None


def _parse_row(row: dict[str, Any]) -> dict[str, float | None]:
    row = {k: "" for k in LATER_METRIC_COLUMNS if k not in row} | row
    if set(row) != set(METRIC_COLUMNS) or None in row.values():
        raise ValueError(
            f"row for epoch {row.get('epoch')!r} does not have the columns "
            f"{', '.join(METRIC_COLUMNS)}"
        )
    parsed = {k: (float(v) if v != "" else None) for k, v in row.items()}
    if parsed["epoch"] is None:
        raise ValueError("a row has no epoch")
    return parsed


def _metrics_csv(rows: list[dict[str, Any]]) -> str:
    lines = [",".join(METRIC_COLUMNS)]
    lines += [",".join(_fmt(row.get(k)) for k in METRIC_COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    return str(value)
