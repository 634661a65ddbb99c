"""When a training run cannot go on, one line that says why and what to do, instead of a traceback
of PyTorch's internals: another process of a distributed run was lost, or memory ran out.

``one_line_failures`` wraps the part of ``fit`` that trains; ``Watch`` is what it knows of the
run so far (the TrainState once it exists), for the message.
"""

from __future__ import annotations

import contextlib
import gc
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from .config import TrainConfig
from .console import resume_command
from .errors import OutOfMemory, ProcessLost, TrainingInterrupted, first_line
from .run import RunDir
from .runtime import Runtime, ignore_sigterm, is_lost_peer_error, lost_ranks

# How PyTorch's allocators word a failed allocation when it is not a torch.OutOfMemoryError.
OOM_SIGNS = (
    "DefaultCPUAllocator: can't allocate memory",
    "DefaultCPUAllocator: not enough memory",
    "out of memory",
    "std::bad_alloc",
    "MPS backend out of memory",
)


@dataclass
class Watch:
    state: Any = None  # the run's TrainState, once built
    stage: str | None = None  # set for what follows training ("the end of training", "the test")

    def where(self) -> str:
        """What the run was doing: start-up, an epoch (the one after the last finished), ..."""
        if self.stage is not None:
            return self.stage
        return "start-up" if self.state is None else f"epoch {self.state.epoch + 1}"


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(sign in str(exc) for sign in OOM_SIGNS)


@contextlib.contextmanager
def one_line_failures(run: RunDir, rt: Runtime, config: TrainConfig) -> Iterator[Watch]:
    """Turn a lost process (a failed collective, or torchrun's SIGTERM after one of its workers
    died) into ``ProcessLost`` and an exhausted allocator into ``OutOfMemory``. Whatever ends the
    block, the DDP wrapper is released first, so that the process group can be torn down."""
    watch = Watch()
    try:
        yield watch
    except (KeyboardInterrupt, TrainingInterrupted) as exc:
        _release(watch, exc)
        lost = lost_ranks(rt.dist) if rt.dist.enabled else []
        if lost and not isinstance(exc.__cause__, BrokenPipeError):
            raise _process_lost(run, rt, watch, lost, None) from None
        raise
    except Exception as exc:  # MemoryError included
        lost_peer = rt.dist.enabled and is_lost_peer_error(exc)
        if lost_peer:
            # torchrun stops the survivors with SIGTERM a moment after one of them died: let this
            # one find out which and say it, instead of being cut short as "interrupted".
            ignore_sigterm()
        _release(watch, exc)
        if lost_peer:
            raise _process_lost(run, rt, watch, _wait_for_lost_ranks(rt), exc) from None
        if is_out_of_memory(exc):
            raise _out_of_memory(rt, config, watch, exc) from None
        raise


def release_ddp(state: Any) -> None:
    """Drop the DistributedDataParallel wrapper (train through the bare model from here on): it
    must be gone before its process group is destroyed."""
    if state is not None and state.trainable is not state.model:
        state.trainable = state.model
        gc.collect()  # the wrapper's reducer sits in reference cycles


def _release(watch: Watch, exc: BaseException | None) -> None:
    # The frames of the exception and of those it replaced (a KeyboardInterrupt behind
    # TrainingInterrupted) hold the wrapper too (train_one_epoch's ``trainable``): clear them.
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__
    release_ddp(watch.state)


def _wait_for_lost_ranks(rt: Runtime, seconds: float = 2.0) -> list[int]:
    """The ranks found dead; a peer killed a moment ago closes its sockets (the error seen here)
    just before the kernel marks it exited, so look again for a moment before saying "unknown"."""
    deadline = time.monotonic() + seconds
    while not (lost := lost_ranks(rt.dist)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return lost


def _process_lost(
    run: RunDir, rt: Runtime, watch: Watch, lost: list[int], exc: BaseException | None
) -> ProcessLost:
    ignore_sigterm()  # already stopping: a second SIGTERM must not cut the line short
    info = rt.dist
    survivors = [r for r in range(info.world_size) if r not in lost]
    if lost:
        pids = ", ".join(f"rank {r} (pid {info.peers[r][1]})" for r in lost)
        who = f"{pids} of this {info.world_size}-process run stopped (killed or crashed)"
    else:
        who = (
            f"another process of this {info.world_size}-process run stopped answering "
            f"({first_line(exc) if exc else 'interrupted'})"
        )
    saved = (
        f"epoch {watch.state.epoch}"
        if info.is_primary and watch.state is not None
        else "the last finished epoch"
    )
    return ProcessLost(
        f"{who} during {watch.where()}; {run.last_checkpoint} holds {saved}. "
        f"Resume with: {resume_command(run.path, rt)}",
        reporter=bool(survivors) and info.rank == min(survivors),
    )


def _out_of_memory(
    rt: Runtime, config: TrainConfig, watch: Watch, exc: BaseException
) -> OutOfMemory:
    where = "GPU" if rt.device.type == "cuda" else rt.device.type.upper()
    return OutOfMemory(
        f"out of {where} memory during {watch.where()} (--batch-size {config.batch_size} per "
        f"process, --hidden {config.model.hidden}): train again with a smaller --batch-size "
        "or --hidden"
    )
