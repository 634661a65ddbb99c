"""Where the process runs: device choice, CPU threads, allocator tuning, torch.distributed glue,
and SIGTERM handled as Ctrl-C.

Launch (one machine, N processes)::

    torchrun --standalone --nproc_per_node=N -m seqmnist train ...

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; a plain
``seqmnist train`` has none of them and runs as a single process (rank 0 of 1).
Only the primary rank (0) prints, writes files or plots.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

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
        if device.type == "cpu":
            keep_freed_memory_for_reuse()
        yield Runtime(device, info, configure_threads(threads))
    finally:
        shutdown(info)


def configure_threads(threads: int) -> int:
    """Use the cores present: by default one thread per core, shared among local processes.
    More threads than cores only slows PyTorch down, so that is allowed but warned about."""
    cores = os.cpu_count() or 1
    if threads <= 0:
        local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        threads = max(1, cores // local_procs)
    elif threads > cores:
        warnings.warn(
            f"--threads {threads} exceeds the {cores} cores here; training will be slower",
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


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun prepared (gloo on CPU, nccl on CUDA); no-op otherwise."""
    if not launched_by_torchrun():
        return DistInfo()
    info = DistInfo(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=int(os.environ["WORLD_SIZE"]),
    )
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return info


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


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


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a job scheduler, `docker stop`, `kill`) stops training as Ctrl-C does: with a
    resumable checkpoint and the resume command. Signal handlers live in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
