"""Fault injection: a training run killed, interrupted or out of disk space at any point can always
be continued, and then ends exactly where an uninterrupted run ends.

The faults, each against the same 3-epoch recipe (two layers, dropout, shifts: everything a resume
must restore) and its uninterrupted reference run:

- a kill at every file write of a whole run, just before the write lands (its temp file left
  behind, as a real kill leaves it) and just after it;
- the disk filling up at every write (an injected ENOSPC at fsync, where a full disk shows), and
  a real full disk on a small tmpfs where the tests run as root;
- SIGINT and SIGTERM at random points of an epoch;
- SIGKILL of a real `seqmnist train` process at random moments.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import seqmnist.run
from conftest import tiny_config
from resume_helpers import RESUME_OVERRIDES, assert_same_run, fit_tiny, signal_at
from seqmnist.config import TrainConfig, flag_fields, preset_config
from seqmnist.errors import TrainingInterrupted
from seqmnist.options import flag_name
from seqmnist.run import LAST_NAME, WriteError

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CONFIG = tiny_config(**RESUME_OVERRIDES)


class SimulatedKill(BaseException):
    """Stands for the process dying: nothing in seqmnist catches it (it is not an Exception)."""


class NthCall:
    """Stands in for ``real``: its ``n``-th call (counting from 0) runs ``fault`` instead."""

    def __init__(self, real, n: int, fault) -> None:
        self.real, self.n, self.fault, self.calls = real, n, fault, 0

    def __call__(self, *args):
        self.calls += 1
        return (self.fault if self.calls - 1 == self.n else self.real)(*args)


def recover(data_dir: Path, run_dir: Path) -> None:
    """What a user does after the process died: resume if a checkpoint exists, else start over
    (the error message of --resume on a folder without one says the same)."""
    resume = (run_dir / LAST_NAME).is_file()
    fit_tiny(data_dir, CONFIG, run_dir, resume=resume)


def leftover_temp_files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.glob("*.tmp"))


def count_writes(data_dir: Path, run_dir: Path, monkeypatch) -> list[str]:
    """The files a whole run writes, in order (every atomic write ends in one os.replace)."""
    written = []
    real_replace = os.replace

    def recording_replace(src, dst):
        written.append(Path(dst).name)
        return real_replace(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(seqmnist.run.os, "replace", recording_replace)
        fit_tiny(data_dir, CONFIG, run_dir)
    return written


@pytest.fixture(scope="module")
def writes(synthetic_data_dir, tmp_path_factory) -> list[str]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        return count_writes(
            synthetic_data_dir, tmp_path_factory.mktemp("count") / "run", monkeypatch
        )


def test_a_run_writes_its_files_in_the_order_that_makes_kills_safe(writes):
    # config first; per epoch the metrics row, the best checkpoint when it improved, then
    # checkpoint_last (so it never holds an epoch whose row or best checkpoint is missing).
    assert writes[:2] == ["config.json", LAST_NAME]  # the epoch-0 checkpoint
    assert writes[-1] == "summary.json" and writes.count("metrics.csv") == 3
    assert writes.count(LAST_NAME) == 4
    for epoch_start in [i for i, name in enumerate(writes) if name == "metrics.csv"]:
        rest = writes[epoch_start + 1 :]
        assert rest[0] in (LAST_NAME, "checkpoint_best.pt")


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_at_any_write_leaves_a_run_that_ends_as_the_uninterrupted_one(
    when, writes, reference_run, synthetic_data_dir, tmp_path, monkeypatch
):
    real_replace = os.replace

    def die(src, dst):
        # Before: the process dies with the new file still a temp file beside the old one
        # (renamed, so that atomic_write's own cleanup cannot remove it).
        real_replace(src, f"{dst}.killed.tmp" if when == "before" else dst)
        raise SimulatedKill(dst)

    for kill_at in range(len(writes)):
        run_dir = tmp_path / f"kill-{when}-{kill_at}"
        dying_replace = NthCall(real_replace, kill_at, die)
        with monkeypatch.context() as patch:
            patch.setattr(seqmnist.run.os, "replace", dying_replace)
            with pytest.raises(SimulatedKill):
                fit_tiny(synthetic_data_dir, CONFIG, run_dir)
        recover(synthetic_data_dir, run_dir)
        assert_same_run(run_dir, reference_run)
        assert leftover_temp_files(run_dir) == [], f"kill {when} write {kill_at}"


def test_a_full_disk_at_any_write_is_one_line_and_the_run_resumes_to_the_same_result(
    writes, reference_run, synthetic_data_dir, tmp_path, monkeypatch
):
    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    for full_at in range(len(writes)):
        run_dir = tmp_path / f"full-{full_at}"
        failing_fsync = NthCall(os.fsync, full_at, disk_full)
        with monkeypatch.context() as patch:
            patch.setattr(seqmnist.run.os, "fsync", failing_fsync)
            with pytest.raises(WriteError) as info:
                fit_tiny(synthetic_data_dir, CONFIG, run_dir)
        message = str(info.value)
        assert "\n" not in message and "the disk is full" in message, message
        assert writes[full_at] in message
        assert leftover_temp_files(run_dir) == []
        recover(synthetic_data_dir, run_dir)  # space freed: carry on
        assert_same_run(run_dir, reference_run)


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)])
    return done.returncode == 0


def test_a_real_full_disk_mid_run_is_one_line_and_the_run_resumes(
    reference_run, synthetic_data_dir, tmp_path
):
    """A 4 MB tmpfs filled up during epoch 2: the kernel's ENOSPC, through torch.save's writer."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "4m"):
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC test covers the logic)")
    try:
        run_dir, filler = disk / "run", disk / "filler"

        def fill_the_disk(epoch: int, done: int) -> None:
            if epoch == 2 and not filler.exists():
                with filler.open("wb") as f:
                    try:
                        while True:
                            f.write(b"\0" * 65536)
                            f.flush()
                    except OSError:
                        pass

        with pytest.raises(WriteError) as info:
            fit_tiny(synthetic_data_dir, CONFIG, run_dir, on_batch=fill_the_disk)
        message = str(info.value)
        assert "\n" not in message and "the disk is full" in message, message
        assert leftover_temp_files(run_dir) == []
        filler.unlink()
        fit_tiny(synthetic_data_dir, CONFIG, run_dir, resume=True)
        assert_same_run(run_dir, reference_run)
    finally:
        subprocess.run(["umount", str(disk)])


# Random points of the 3 x 10 batches of 50: (epoch, images done, signal); fixed so that a
# failure can be replayed.
SIGNAL_POINTS = [
    (e, 50 * random.Random(seed).randint(1, 10), s)
    for seed, (e, s) in enumerate(
        [(1, signal.SIGINT), (2, signal.SIGTERM), (3, signal.SIGINT), (3, signal.SIGTERM)]
    )
]


@pytest.mark.parametrize(("epoch", "images", "signum"), SIGNAL_POINTS)
def test_sigint_and_sigterm_at_random_points_resume_to_the_same_result(
    epoch, images, signum, reference_run, synthetic_data_dir, tmp_path
):
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as info:
        fit_tiny(synthetic_data_dir, CONFIG, run_dir, on_batch=signal_at(epoch, images, signum))
    assert info.value.epoch == epoch - 1
    fit_tiny(synthetic_data_dir, CONFIG, run_dir, resume=True)
    assert_same_run(run_dir, reference_run)


def _train_argv(data_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    """`seqmnist train` with exactly CONFIG's recipe: a flag for every field that differs from
    the default preset."""
    default = preset_config("default")
    flags = []
    for spec in flag_fields():
        owner = (CONFIG, default) if spec.owner is TrainConfig else (CONFIG.model, default.model)
        value, default_value = (getattr(config, spec.name) for config in owner)
        if value != default_value:
            assert not isinstance(value, bool), spec.name  # would need --no-...
            flags += [flag_name(spec.name), str(value)]
    argv = [sys.executable, "-m", "seqmnist", "train", "--data-dir", str(data_dir)]
    argv += ["--no-download", "--out", str(run_dir), "--quiet", "--no-plots"]
    return argv + flags + list(extra)


def _epochs_recorded(run_dir: Path) -> int:
    try:
        return max(0, len((run_dir / "metrics.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0  # no metrics.csv yet


def _kill_after(proc: subprocess.Popen, run_dir: Path, epochs: int, delay: float) -> bool:
    """SIGKILL ``proc`` ``delay`` s after ``run_dir`` has recorded ``epochs`` epochs (0: after
    config.json appears). True when it died mid-run (before its summary)."""
    deadline = time.monotonic() + 60
    while proc.poll() is None:
        assert time.monotonic() < deadline, "training did not get there"
        if (run_dir / "config.json").exists() and _epochs_recorded(run_dir) >= epochs:
            break
        time.sleep(0.001)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return not (run_dir / "summary.json").exists()


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_the_run(reference_run, synthetic_data_dir, tmp_path):
    """A real process killed with SIGKILL (no handler runs) at random moments of its training
    (after a random number of finished epochs, plus a random fraction of the next one):
    `seqmnist train --resume` (or a fresh start, if it died before its first checkpoint) ends
    with the uninterrupted run's result."""
    rng = random.Random(11)
    killed_mid_run = 0
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(_train_argv(synthetic_data_dir, run_dir))
        killed_mid_run += _kill_after(proc, run_dir, rng.randint(0, 2), rng.uniform(0, 0.1))
        resume = ["--resume", str(run_dir)] if (run_dir / LAST_NAME).is_file() else []
        argv = _train_argv(synthetic_data_dir, run_dir, *resume)
        if resume:
            argv = [sys.executable, "-m", "seqmnist", "train", *resume, "--quiet", "--no-plots"]
            argv += ["--data-dir", str(synthetic_data_dir), "--no-download"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert_same_run(run_dir, reference_run)
        assert leftover_temp_files(run_dir) == []
    assert killed_mid_run >= 2  # else the kills came too late to test anything
