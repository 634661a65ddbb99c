"""Where the process runs: device choice, CPU threads, allocator tuning, torch.distributed glue,
and SIGTERM handled as Ctrl-C.

Launch (one machine, N processes)::

    torchrun --standalone --nproc_per_node=N -m seqmnist train ...

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (and its own
TORCHELASTIC_RUN_ID, by which launch.py tells a real launch from variables left in a shell); a
plain ``seqmnist train`` runs as a single process (rank 0 of 1). Only the primary rank (0)
prints, writes files or plots.

Collectives wait at most ``COLLECTIVE_TIMEOUT`` for the other processes (PyTorch's default is 30
minutes); a process that is lost (killed, crashed, timed out) ends the others with
``ProcessLost``, one line naming it and the command that resumes.

Teardown order matters: a DistributedDataParallel wrapper still alive when its process group is
destroyed (or when the interpreter exits) can abort the process ("terminate called without an
active exception"). ``end_distributed`` releases the wrapper first, waits for every rank at a
last barrier, then destroys the group.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError
from .launch import local_processes, stray_torchrun_variables, under_torchrun, usable_cpus

# How long a collective (all-reduce, barrier, DDP's gradient sync) waits for the other processes.
# Ranks do the same work between collectives, so they normally wait milliseconds; the longest
# legitimate wait is the others waiting while rank 0 downloads MNIST (11 MB) at the start.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    # (host name, process id) of every rank, gathered once when the group starts: to tell which
    # process was lost when a collective fails or torchrun stops this one.
    peers: tuple[tuple[str, int], ...] = ()

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_primary(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class Runtime:
    """The device this process trains on, its place in the process group, its CPU threads."""

    device: torch.device
    dist: DistInfo
    threads: int


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu.

    An explicit choice that is unavailable is an error.
    """
    cuda_ok = torch.cuda.is_available()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda_ok else "mps" if mps_ok else "cpu"
    if name == "cuda":
        if not cuda_ok:
            raise ConfigError(
                "--device cuda: no CUDA device is available; use --device cpu or auto"
            )
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not mps_ok:
        raise ConfigError(
            "--device mps: MPS is not available on this machine; use --device cpu or auto"
        )
    if name not in ("cpu", "mps"):
        raise ConfigError(f"--device must be one of auto, cpu, cuda, mps; got {name!r}")
    return torch.device(name)


@contextlib.contextmanager
def training_runtime(device_name: str, threads: int, amp: str) -> Iterator[Runtime]:
    """Set the process up for training (process group, device, threads, allocator) and tear the
    process group down afterwards, however the block ends."""
    probe = select_device(device_name)  # decides the backend before joining the group
    if amp != "off" and probe.type != "cuda":
        raise ConfigError(
            f"--amp {amp} needs a CUDA device (this run uses {probe.type}); use --amp off"
        )
    info = init_distributed(probe.type)
    try:
        device = select_device(device_name, info.local_rank)
        if device.type == "cuda":
            # NCCL collectives without device ids (barrier) use the current device: this rank's.
            torch.cuda.set_device(device)
        if info.enabled:
            info = replace(info, peers=_gather_peers(info))
        if device.type == "cpu":
            keep_freed_memory_for_reuse()
        yield Runtime(device, info, configure_threads(threads))
    finally:
        shutdown(info)


def configure_threads(threads: int) -> int:
    """By default one thread per CPU this process may use (launch.usable_cpus: its affinity
    mask and cgroup quota, not the machine's core count), shared among the processes torchrun
    started on this machine. More threads than that only slows PyTorch down, so that is allowed
    but warned about."""
    cpus = usable_cpus()
    if threads <= 0:
        threads = max(1, cpus // local_processes())
    elif threads > cpus:
        warnings.warn(
            f"--threads {threads} exceeds the {cpus} CPUs this process may use; "
            "training will be slower",
            stacklevel=2,
        )
    torch.set_num_threads(threads)
    return threads


def keep_freed_memory_for_reuse() -> bool:
    """Ask glibc's allocator to keep large freed blocks instead of returning them to the OS.

    Each CPU training step allocates and frees activation buffers of a few MB. By default glibc
    serves blocks that large with fresh mmap()s, so every step pays page faults to zero new
    pages; raising the mmap and trim thresholds lets the buffers be reused from the heap
    (measured: ~20 % more samples/s on the 2-core machine). A no-op off glibc.
    """
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # constants from <malloc.h>
        return bool(
            libc.mallopt(m_mmap_threshold, 64 << 20) and libc.mallopt(m_trim_threshold, 512 << 20)
        )
    except (OSError, AttributeError):
        return False


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun prepared (gloo on CPU, nccl on CUDA); no-op otherwise.

    Outside torchrun, its variables left in the environment are ignored with one warning."""
    stray = stray_torchrun_variables()
    if stray:
        warnings.warn(
            f"ignoring {', '.join(stray)} in the environment: this process was not started by "
            "torchrun, so it trains alone (unset them to silence this)",
            stacklevel=2,
        )
    if not under_torchrun():
        return DistInfo()
    info = DistInfo(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
    return info


def _gather_peers(info: DistInfo) -> tuple[tuple[str, int], ...]:
    """Every rank's (host, pid), in rank order (one collective at start-up)."""
    peers: list[Any] = [None] * info.world_size
    dist.all_gather_object(peers, (socket.gethostname(), os.getpid()))
    return tuple(tuple(p) for p in peers)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def end_distributed(info: DistInfo, release: Callable[[], None]) -> None:
    """The end of a distributed run, in the order that does not abort: ``release()`` drops the
    DistributedDataParallel wrapper (and anything else holding the group), a last barrier lets
    every rank finish its collectives, then the group is destroyed. Work after this (rank 0's
    test, summary.json) needs no other process."""
    release()
    if info.enabled and dist.is_initialized():
        barrier(info)
        shutdown(info)


def all_reduce_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (one collective); identity in a single process."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's boolean, on every rank (e.g. 'stop now')."""
    if not info.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


# --- a lost process ---------------------------------------------------------------------------

# How a collective reports that another process went away (gloo, NCCL, the TCP store).
LOST_PEER_SIGNS = (
    "Connection reset",
    "Connection closed",
    "Connection refused",
    "Broken pipe",
    "Timed out",
    "timed out",
    "Socket Timeout",
    "NCCL communicator was aborted",
    "remote process exited",
)


def is_lost_peer_error(exc: BaseException) -> bool:
    """A collective failed because another process died, hung or closed its connection."""
    if isinstance(exc, dist.DistError):
        return True
    return isinstance(exc, RuntimeError) and any(sign in str(exc) for sign in LOST_PEER_SIGNS)


def lost_ranks(info: DistInfo) -> list[int]:
    """The ranks on this machine whose process has exited (or is a zombie torchrun has not yet
    reaped); ranks on other machines cannot be seen from here and count as alive."""
    host = socket.gethostname()
    return [
        rank
        for rank, (peer_host, pid) in enumerate(info.peers)
        if rank != info.rank and peer_host == host and not _process_alive(pid)
    ]


def _process_alive(pid: int) -> bool:
    # Linux: a zombie (dead, not yet reaped by torchrun) still answers os.kill; read its state.
    if Path("/proc/self/stat").is_file():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a job scheduler, `docker stop`, `kill`, torchrun stopping its other workers)
    stops training as Ctrl-C does: with a resumable checkpoint and the resume command. Signal
    handlers live in the main thread only. ``ignore_sigterm()`` inside the block (the run is
    already stopping with its one line) keeps SIGTERM ignored after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is interrupt:
            signal.signal(signal.SIGTERM, previous)


def ignore_sigterm() -> None:
    """From now on SIGTERM is ignored (main thread only): a process that is already ending with
    its one-line report is not cut short by torchrun stopping the rest of the run."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
