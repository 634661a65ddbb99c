"""``fit(config, run_dir)``: train a model into a run directory, then test it once.

Read ``fit`` top to bottom: runtime -> data -> state (fresh or resumed) -> for each epoch: train,
validate, record, checkpoint -> test once -> summary. The run directory's files are described
in run.py, the checkpoint's content in state.py.

Under torchrun every process runs ``fit``; they train shards of each epoch and add up their
metrics, and only the primary rank prints and writes (see runtime.py)::

    torchrun --standalone --nproc_per_node=2 -m seqmnist train
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .console import ProgressBar, epoch_line, result_lines, resume_command, start_line
from .cudagraph import GraphedStep, graph_blocker
from .data import (
    Augmentation,
    Split,
    derived_seed,
    epoch_permutation,
    load_mnist,
    split_train_val,
    train_subset,
)
from .engine import evaluate, train_one_epoch
from .errors import ConfigError, TrainingInterrupted
from .evaluation import score
from .failures import one_line_failures, release_ddp
from .model import count_parameters, recurrent_macs_per_sample
from .printed import with_printed_digits
from .run import RunDir
from .runtime import (
    Runtime,
    all_reduce_sum,
    barrier,
    end_distributed,
    sigterm_as_interrupt,
    training_runtime,
)
from .state import TrainState
from .stuck import chance_record, majority_share, stuck_warning
from .tblog import ExperimentLog
from .trained import load_trained


@dataclass
class Splits:
    train: Split
    val: Split | None  # None when val_size is 0
    test: Split | None  # loaded up front only when the recipe tests every epoch


def fit(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    after_run: Callable[[Path], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    origin: dict[str, Any] | None = None,
    log_to: Sequence[str] = (),
) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` and return the summary (also written to summary.json).

    ``resume`` continues from ``run_dir/checkpoint_last.pt``; the result equals that of an
    uninterrupted run (same seed, same device type). A fresh run refuses a ``run_dir`` that
    already holds a run unless ``overwrite`` (one whose first epoch never finished is replaced).
    ``after_run(run_dir)`` runs on the primary rank once summary.json exists (the CLI draws the
    plots there); ``on_batch(epoch, images_done)`` after every optimisation step. Ctrl-C or
    SIGTERM raise ``TrainingInterrupted`` once a resumable checkpoint exists; a lost process of a
    distributed run raises ``ProcessLost``, an exhausted allocator ``OutOfMemory``. ``origin``
    goes to config_origin.json; ``log_to``: see tblog.py.
    """
    config.validate()
    experiment = ExperimentLog(log_to)  # a missing extra fails here, before anything is written
    run = RunDir(run_dir)
    # On every rank, before any of them starts work:
    if resume:
        run.check_resumable()
    replacing = False if resume else run.refuse_to_replace(overwrite)
    started = time.perf_counter()
    with training_runtime(config.device, config.threads, config.amp) as rt, sigterm_as_interrupt():
        primary = rt.dist.is_primary
        say = (log or _print_line) if (primary and not quiet) else (lambda _msg: None)
        with one_line_failures(run, rt, config) as watch, run.released_at_exit():
            splits = _load_splits(config, rt, data_dir, download)
            state, graphed = _build_state(config, rt, len(splits.train), started, say)
            watch.state = state
            if _start(run, state, rt, say, resume, replacing, origin):
                end_distributed(rt.dist, lambda: release_ddp(state))
                return run.read_summary() or {}  # finished before: nothing to do
            throughput = _train_epochs(
                state, splits, run, rt, say, progress, quiet, on_batch, graphed, experiment
            )
            watch.stage = "the end of training"
            end_distributed(rt.dist, lambda: release_ddp(state))
            if not primary:
                return {}
            watch.stage = "the test"
            summary = _test_once(run, state, rt, splits, data_dir, download, throughput)
            experiment.finish(config.to_dict(), summary)
        for line in result_lines(summary, config):
            say(line)
    if after_run is not None:
        after_run(run.path)
    return summary


def _print_line(message: str) -> None:
    """Progress lines, flushed one by one: `| tee log` shows them as they come, and a closed
    stdout stops training at its next line rather than when a buffer fills, epochs later."""
    print(message, flush=True)


def _warn(message: str, say: Callable[[str], None], to_stderr: bool) -> None:
    """A stuck run says so even under --quiet, which silences ``say``: then on stderr, as the
    CLI's other warnings; otherwise in the progress stream beside the epoch line it is about."""
    if to_stderr:
        print(f"seqmnist: {message}", file=sys.stderr, flush=True)
    else:
        say(message)


def _build_state(
    config: TrainConfig, rt: Runtime, train_images: int, started: float, say: Callable[[str], None]
) -> tuple[TrainState, GraphedStep | None]:
    """A fresh TrainState, and the CUDA graph of its step where the recipe allows one."""
    blocker = graph_blocker(config, rt.device, rt.dist.world_size, train_images)
    steps = _steps_per_epoch(config, train_images, rt)
    # Only a graphed run builds the capturable optimiser (PyTorch's default one differs from it in
    # the last bits), so --cuda-graphs is part of the recipe: a resume cannot switch it.
    state = TrainState(config, rt, steps, started, capturable=blocker is None)
    if blocker is None:
        say("each training step runs as one CUDA graph (--no-cuda-graphs for eager steps)")
        return state, GraphedStep(state)
    if rt.device.type == "cuda" and config.cuda_graphs:
        say(f"training steps run eagerly, not as CUDA graphs: {blocker}")
    return state, None


def _start(
    run: RunDir,
    state: TrainState,
    rt: Runtime,
    say: Callable[[str], None],
    resume: bool,
    replacing: bool,
    origin: dict[str, Any] | None,
) -> bool:
    """Resume ``state`` from the run, or create the run; True when it had finished before."""
    if resume:
        return _resume(run, state, rt, say)
    return _create(run, state, rt, say, replacing, origin)


def _create(
    run: RunDir,
    state: TrainState,
    rt: Runtime,
    say: Callable[[str], None],
    replacing: bool,
    origin: dict[str, Any] | None,
) -> bool:
    """A fresh run: rank 0 writes config.json and the epoch-0 checkpoint (so that Ctrl-C during
    the first epoch still leaves something to resume from). False: there is training to do."""
    if rt.dist.is_primary:
        if replacing:
            say(f"replacing {run.path}: its first epoch never finished")
        run.create(state.config, overwrite=True, origin=origin)
        run.claim()
        _save(run, state, row=None, improved=False)
    return False


def _resume(run: RunDir, state: TrainState, rt: Runtime, say: Callable[[str], None]) -> bool:
    """Load checkpoint_last into ``state``; True when the run had already finished."""
    state.load_state_dict(load_checkpoint(run.last_checkpoint, map_location=rt.device))
    epochs = state.config.epochs
    if state.epoch >= epochs and run.summary_file.is_file():
        say(f"{run.path} finished all {epochs} epochs already; nothing to do")
        return True
    if rt.dist.is_primary:
        run.claim()
        run.remove_temp_files()  # half-written files of a killed session
        run.truncate_metrics_after(state.epoch)  # rows after the checkpoint's epoch are redone
    say(f"resuming {run.path} after epoch {state.epoch} of {epochs}")
    return False


def _load_splits(config: TrainConfig, rt: Runtime, data_dir: Any, download: bool) -> Splits:
    """MNIST as uint8 tensors resident on the training device. Under torchrun only rank 0 may
    download; the other ranks wait for it, then read the files."""
    primary = rt.dist.is_primary
    if not primary:
        barrier(rt.dist)
    full = load_mnist(data_dir, train=True, download=download and primary)
    if primary:
        barrier(rt.dist)
    if config.val_size >= len(full):
        raise ConfigError(
            f"--val-size {config.val_size} must be smaller than the {len(full)} training images"
        )
    train, val = (
        split_train_val(full, config.val_size, config.seed) if config.val_size else (full, None)
    )
    train = with_printed_digits(train, config.printed_digits, config.seed)  # the recipe's fonts
    if config.train_size > len(train):
        raise ConfigError(
            f"--train-size {config.train_size} is more than the {len(train)} training images "
            f"left after --val-size {config.val_size} (with --printed-digits "
            f"{config.printed_digits}): pass at most {len(train)} (0 = all)"
        )
    train = train_subset(train, config.train_size, config.seed)  # --train-size: a seeded subset
    test = (
        load_mnist(data_dir, train=False, download=download)
        if config.eval_test_every_epoch
        else None
    )
    return Splits(
        train.to(rt.device),
        val.to(rt.device) if val else None,
        test.to(rt.device) if test else None,
    )


def _steps_per_epoch(config: TrainConfig, train_images: int, rt: Runtime) -> int:
    shard = -(
        -train_images // rt.dist.world_size
    )  # each rank's share, padded like DistributedSampler
    return -(-shard // config.batch_size)


def _train_epochs(
    state: TrainState,
    splits: Splits,
    run: RunDir,
    rt: Runtime,
    say: Callable[[str], None],
    progress: bool | None,
    quiet: bool,
    on_batch: Callable[[int, int], None] | None,
    graphed: GraphedStep | None = None,
    experiment: ExperimentLog | None = None,
) -> float | None:
    """The epoch loop, after the run's first line (``start_line``).

    Returns this session's training throughput (images/s), None if no epoch ran. Ctrl-C, SIGTERM
    and a closed stdout (`seqmnist train | head -3`: the first failed line) stop it alike: with
    the last epoch's checkpoint and the command that resumes.
    """
    config = state.config
    show_bar = (
        (progress if progress is not None else sys.stderr.isatty())
        and rt.dist.is_primary
        and not quiet
    )
    bar = ProgressBar(show_bar)
    if rt.dist.is_primary and experiment is not None:
        experiment.start(run.path)  # event files anew from metrics.csv
    saved_epoch, epoch = state.epoch, state.epoch
    images, seconds = 0.0, 0.0
    try:
        say(start_line(state, rt, len(splits.train)))  # inside: a closed stdout stops here too
        for epoch in range(state.epoch + 1, config.epochs + 1):
            row = _train_and_validate(state, splits, epoch, rt, bar, on_batch, graphed)
            images, seconds = images + row.pop("samples"), seconds + row["epoch_seconds"]
            improved = state.finish_epoch(epoch, row["epoch_seconds"], row.get("val_acc"))
            row["train_seconds"] = state.train_seconds
            if rt.dist.is_primary:
                _save(run, state, row, improved)
                if experiment is not None:  # the row as metrics.csv holds it, as a rebuild reads it
                    experiment.epoch(run.read_metrics()[-1])
            saved_epoch = epoch
            say(epoch_line(row, config.epochs))
            steps = epoch * _steps_per_epoch(config, len(splits.train), rt)
            if warning := stuck_warning(row, _chance(splits), steps, config):
                _warn(warning, say, quiet and rt.dist.is_primary)
    except (KeyboardInterrupt, BrokenPipeError) as exc:
        bar.close()
        closed = isinstance(exc, BrokenPipeError)
        stopped = TrainingInterrupted(
            f"{'output closed' if closed else 'interrupted'} during epoch {epoch}; "
            f"{run.last_checkpoint} holds epoch {saved_epoch}. "
            f"Resume with: {resume_command(run.path, rt)}",
            str(run.path),
            saved_epoch,
        )
        # The cause tells the CLI which exit code to give (a closed pipe's, or Ctrl-C's).
        raise stopped from (exc if closed else None)
    return images / seconds if seconds else None


def _train_and_validate(
    state: TrainState,
    splits: Splits,
    epoch: int,
    rt: Runtime,
    bar: ProgressBar,
    on_batch: Callable[[int, int], None] | None,
    graphed: GraphedStep | None = None,
) -> dict[str, Any]:
    """One epoch of training, then validation (and test, for the article's recipe): a row."""
    config, dist = state.config, rt.dist
    order = epoch_permutation(
        len(splits.train), seed=config.seed, epoch=epoch, rank=dist.rank, world_size=dist.world_size
    )
    bar.start(epoch, config.epochs, int(order.numel()))
    done = [0]

    def after_step(n: int, running_loss: float | None) -> None:
        bar.update(n, running_loss)
        lrs.after_step()
        done[0] += n
        if on_batch is not None:
            on_batch(epoch, done[0])

    lrs = LrRange(state)
    # Seeded per (seed, epoch, rank) so a resumed run augments exactly as an uninterrupted one.
    generator = torch.Generator().manual_seed(derived_seed(config.seed, epoch, 1 + dist.rank))
    stats = train_one_epoch(
        state.trainable,
        splits.train,
        order,
        state.step,
        batch_size=config.batch_size,
        normalize=config.normalize,
        amp=config.amp,
        augment=Augmentation.of(config),
        on_batch=after_step,
        graphed=graphed,
        augment_generator=generator,
    )
    bar.close()
    keys = ("loss_sum", "correct", "samples", "seconds")
    loss_sum, correct, samples, seconds = all_reduce_sum([stats[k] for k in keys], dist, rt.device)
    seconds /= dist.world_size  # ranks run concurrently: mean wall time
    row: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": loss_sum / samples,
        "train_acc": correct / samples,
        **lrs.columns(),  # lr (at the epoch's start), lr_min, lr_max
        "epoch_seconds": seconds,
        "samples_per_s": samples / seconds,
        "samples": samples,
    }
    for name, split in (("val", splits.val), ("test", splits.test)):
        if split is not None:
            row[f"{name}_loss"], row[f"{name}_acc"] = _evaluate_shared(
                state.eval_model, split, config, rt
            )
    return row


class LrRange:
    """The lowest and highest learning rate the steps of one epoch used (metrics.csv's lr_min,
    lr_max): the lr at the epoch's start says nothing of a one-cycle peak inside the epoch."""

    def __init__(self, state: TrainState) -> None:
        self.state = state
        self.start = self.low = self.high = self.next = state.lr()  # the first step's lr

    def after_step(self) -> None:
        """Count the lr the step just taken used; read the next step's (a Python float: only the
        constant schedule runs as a CUDA graph, so no read waits for the GPU)."""
        self.low, self.high = min(self.low, self.next), max(self.high, self.next)
        if self.state.scheduler is not None:
            self.next = self.state.lr()

    def columns(self) -> dict[str, float]:
        return {"lr": self.start, "lr_min": self.low, "lr_max": self.high}


def _chance(splits: Splits) -> float:
    """Accuracy of always guessing the most common class of the split that measures the run."""
    return majority_share((splits.val if splits.val is not None else splits.train).labels)


def _evaluate_shared(
    model: nn.Module, split: Split, config: TrainConfig, rt: Runtime
) -> tuple[float, float]:
    """Mean loss and accuracy on ``split``. Under DDP each rank scores its own shard and the sums
    are all-reduced, so the ranks share the work and all of them get the same figures (they must
    agree on which epoch is best)."""
    part = split.shard(rt.dist.rank, rt.dist.world_size) if rt.dist.enabled else split
    result = evaluate(model, part, normalize=config.normalize, amp=config.amp)
    sums = [result["loss_sum"], result["correct"], result["samples"]]
    loss_sum, correct, total = all_reduce_sum(sums, rt.dist, rt.device)
    return loss_sum / total, correct / total


def _save(run: RunDir, state: TrainState, row: dict[str, Any] | None, improved: bool) -> None:
    """Record a finished epoch. Order matters for a kill between writes: checkpoint_last goes last,
    so it never holds an epoch whose metrics row or best checkpoint is missing (a resume drops rows
    after checkpoint_last's epoch and redoes that epoch identically)."""
    payload = state.state_dict()
    if row is not None:
        run.append_metrics(row)
    if improved:
        save_checkpoint(run.best_checkpoint, payload)
    save_checkpoint(run.last_checkpoint, payload)


def _test_once(
    run: RunDir,
    state: TrainState,
    rt: Runtime,
    splits: Splits,
    data_dir: Any,
    download: bool,
    throughput: float | None,
) -> dict[str, Any]:
    """The test set, once, on the best checkpoint as users load it; writes summary.json."""
    config = state.config
    best = load_trained(run.best_checkpoint, rt.device)
    test_split = splits.test or load_mnist(data_dir, train=False, download=download).to(rt.device)
    test = score(best.model, test_split, normalize=config.normalize, amp=config.amp)
    macs = recurrent_macs_per_sample(config.model)
    device = rt.device
    summary = {
        "run_dir": str(run.path),
        "preset": config.preset,
        "order": config.model.order,
        "test_acc": test["accuracy"],
        "test_loss": test["loss"],
        "test_samples": test["samples"],
        "best_epoch": state.best_epoch,
        "best_val_acc": state.best_val_acc if splits.val is not None else None,
        **chance_record(run.read_metrics(), _chance(splits)),
        "epochs": config.epochs,
        "train_seconds": state.train_seconds,
        "total_seconds": state.total_seconds(),
        "samples_per_s": throughput,
        # Recurrent matmul work: forward 2*MACs FLOPs per sample, backward about twice that.
        "train_gflops_per_s": (6 * macs * throughput / 1e9) if throughput else None,
        "parameters": count_parameters(best.model),
        "per_class": test["per_class"],
        "confusion_matrix": test["confusion_matrix"],
        "device": str(device),
        "device_type": device.type,
        "host": platform.node(),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "world_size": rt.dist.world_size,
        "global_batch": config.batch_size * rt.dist.world_size,
        "versions": {
            "seqmnist": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    run.write_summary(summary)
    return summary
