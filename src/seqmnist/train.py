"""``fit(config)``: seeding, the epoch loop, checkpoints, metrics log, resume and interruption.

A run directory holds everything about one run::

    runs/<name>/config.json          the resolved TrainConfig
               metrics.csv           one row per epoch (metrics.METRIC_COLUMNS)
               checkpoint_last.pt    end of the latest epoch: resume from here
               checkpoint_best.pt    best validation accuracy (the last epoch when val_size = 0)
               summary.json          test metrics of the best checkpoint, timings, versions
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .checkpoint import (
    BEST_NAME,
    CONFIG_NAME,
    LAST_NAME,
    METRICS_NAME,
    SUMMARY_NAME,
    load_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig
from .data import Split, derived_seed, epoch_permutation, load_mnist, split_train_val
from .distributed import DistInfo, all_reduce_sum, barrier, init_distributed, shutdown
from .ema import WeightEMA
from .engine import evaluate, train_one_epoch
from .errors import ConfigError, SeqMnistError, TrainingInterrupted
from .metrics import MetricsLog, confusion_matrix, per_class_report
from .model import build_model, count_parameters, recurrent_macs_per_sample



def select_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit choice that is unavailable is an error."""
    cuda_ok = torch.cuda.is_available()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if cuda_ok else "mps" if mps_ok else "cpu"
    if name == "cuda":
        if not cuda_ok:
            raise ConfigError("--device cuda: no CUDA device is available; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not mps_ok:
        raise ConfigError("--device mps: MPS is not available on this machine; use --device cpu or auto")
    return torch.device(name)


def configure_threads(threads: int, dist_info: DistInfo) -> int:
    """Use the cores present: by default one thread per core, shared among local processes."""
    if threads <= 0:
        local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        threads = max(1, (os.cpu_count() or 1) // local_procs)
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
        return bool(libc.mallopt(m_mmap_threshold, 64 << 20) and libc.mallopt(m_trim_threshold, 512 << 20))
    except (OSError, AttributeError):
        return False


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def load_run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise SeqMnistError(f"{run_dir} has no {CONFIG_NAME}: pass a run directory made by `seqmnist train`")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise SeqMnistError(f"{path} is not a valid seqmnist config ({exc})") from None


def _resume_command(run_dir: Path, dist_info: DistInfo) -> str:
    """The command that continues this run: with the same process count under torchrun."""
    if not dist_info.enabled:
        return f"seqmnist train --resume {run_dir}"
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", dist_info.world_size))
    if per_node == dist_info.world_size:
        return f"torchrun --standalone --nproc_per_node={per_node} -m seqmnist train --resume {run_dir}"
    return f"the same torchrun command as before, with `-m seqmnist train --resume {run_dir}`"


def _evaluate_shared(
    model: nn.Module, split: Split, config: TrainConfig, dist_info: DistInfo, device: torch.device
) -> tuple[float, float]:
    """Mean loss and accuracy on ``split``. Under DDP each rank scores its own shard and the sums
    are all-reduced, so the ranks share the work instead of repeating it, and all of them get the
    same figures (they must agree on which epoch is best)."""
    part = split.shard(dist_info.rank, dist_info.world_size) if dist_info.enabled else split
    result = evaluate(model, part, normalize=config.normalize, amp=config.amp)
    loss_sum, correct, total = all_reduce_sum([result["loss_sum"], result["correct"], result["samples"]], dist_info, device)
    return loss_sum / total, correct / total


def make_optimizer(config: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    # On the CPU the fused implementation updates each parameter in one kernel instead of ~10
    # small ops: 0.1 ms instead of 0.36 ms per step for the default model on the 2-core machine.
    # (On CUDA PyTorch's default, foreach, is kept: the fused one is unmeasured there.)
    fused = device.type == "cpu"
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def _make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    if config.schedule == "constant":
        return None
    total_steps = config.epochs * steps_per_epoch
    if total_steps < 4:
        return None  # too few steps for a cycle: keep the lr constant
    # One-cycle: a short warm-up from lr/10 to the peak lr, then cosine annealing to lr/1000.
    # Each phase must span at least 2 steps (OneCycleLR divides by its length).
    warmup = min(max(config.warmup_fraction, 2 / total_steps), 1 - 2 / total_steps)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=config.lr,
        total_steps=total_steps,
        pct_start=warmup,
        div_factor=10.0,
        final_div_factor=100.0,
    )


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    # RNG states must be CPU ByteTensors; load_checkpoint(map_location=cuda) moved them to the GPU.
    torch.set_rng_state(state["cpu"].cpu())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


class _Progress:
    """A tqdm bar per epoch on the primary rank when stderr is a terminal (and not --quiet)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def start(self, epoch: int, epochs: int, total: int) -> None:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="img", leave=False, dynamic_ncols=True)

    def update(self, n: int, running_loss: float | None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if running_loss is not None:
                self.bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
) -> dict[str, Any]:
    """Train ``config`` into ``run_dir`` and return the summary (also written to summary.json).

    ``resume`` continues from ``run_dir/checkpoint_last.pt``; the result equals that of an
    uninterrupted run (same seed, same device type). A fresh run refuses a ``run_dir`` that already
    holds a run unless ``overwrite`` is set. ``after_run(run_dir)`` runs on the primary
    rank once summary.json exists (the CLI draws the plots there).
    Raises ``TrainingInterrupted`` on Ctrl-C after making sure a resumable checkpoint exists.
    """
    config.validate()
    wall_start = time.perf_counter()
    run_dir = Path(run_dir)
    if not resume and not overwrite and any((run_dir / n).exists() for n in (LAST_NAME, BEST_NAME, METRICS_NAME)):
        raise SeqMnistError(
            f"{run_dir} already holds a run: continue it with --resume {run_dir}, replace it with "
            "--overwrite, or choose another --out"
        )
    probe = select_device(config.device)  # decides the backend before joining the group
    dist_info = init_distributed(probe.type)
    try:
        device = select_device(config.device, dist_info.local_rank)
        if device.type == "cuda":
            # NCCL collectives without device ids (barrier) use the current device: make it this rank's.
            torch.cuda.set_device(device)
        return _fit(config, run_dir, device, dist_info, data_dir, download, resume, quiet, progress, log, after_run, wall_start)
    finally:
        shutdown(dist_info)


def _fit(config, run_dir, device, dist_info, data_dir, download, resume, quiet, progress, log, after_run, wall_start):
    primary = dist_info.is_primary
    say = (log or print) if (primary and not quiet) else (lambda _msg: None)
    threads = configure_threads(config.threads, dist_info)
    if device.type == "cpu":
        keep_freed_memory_for_reuse()

    # --- data: uint8 tensors, resident on the training device -------------------------------
    # Under torchrun only rank 0 may download; the other ranks wait for it, then read the files.
    if not primary:
        barrier(dist_info)
    full = load_mnist(data_dir, train=True, download=download and primary)
    if primary:
        barrier(dist_info)
    if config.val_size >= len(full):
        raise ConfigError(f"--val-size {config.val_size} must be smaller than the {len(full)} training images")
    if config.val_size > 0:
        train_split, val_split = split_train_val(full, config.val_size, config.seed)
    else:
        train_split, val_split = full, None
    train_split = train_split.to(device)
    val_split = val_split.to(device) if val_split is not None else None
    test_split: Split | None = None  # read once at the end, unless the recipe asks every epoch
    if config.eval_test_every_epoch:
        test_split = load_mnist(data_dir, train=False, download=download).to(device)

    # --- model, optimiser, schedule (identical on every rank: same seed) --------------------
    torch.manual_seed(config.seed)
    model = build_model(config.model).to(device)
    trainable: nn.Module = model
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        trainable = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(config, model, device)
    # The weights we evaluate and save: an exponential moving average of the trained ones, which
    # smooths out the noise of a high learning rate (or the trained weights themselves when off).
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
    eval_model: nn.Module = ema.module if ema is not None else model
    shard = epoch_permutation(len(train_split), seed=config.seed, epoch=1, rank=dist_info.rank, world_size=dist_info.world_size)
    steps_per_epoch = -(-int(shard.numel()) // config.batch_size)
    scheduler = _make_scheduler(config, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if (config.amp == "fp16" and device.type == "cuda") else None

    # --- run directory: fresh or resumed ------------------------------------------------------
    metrics_log = MetricsLog(run_dir / METRICS_NAME)
    start_epoch, best_val_acc, best_epoch, train_seconds = 1, -1.0, 0, 0.0
    if resume:
        ckpt = load_checkpoint(run_dir / LAST_NAME, map_location=device)
        saved = TrainConfig.from_dict(ckpt["train_config"])
        if _recipe(saved) != _recipe(config):
            raise ConfigError(f"{run_dir / LAST_NAME} was trained with a different config; resume it without changing flags")
        # The global batch, the shards and the schedule's step count all depend on the world size.
        saved_world = int(ckpt.get("world_size", 1))
        if saved_world != dist_info.world_size:
            raise ConfigError(
                f"{run_dir / LAST_NAME} was trained by {saved_world} process(es), not {dist_info.world_size}: "
                f"resume it with the same number (torchrun --nproc_per_node={saved_world}, or no torchrun for 1)"
            )
        model.load_state_dict(ckpt["train_state"] if ema is not None else ckpt["model_state"])
        if ema is not None:
            ema.module.load_state_dict(ckpt["model_state"])
            ema.updates = int(ckpt["ema_updates"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        if scheduler is not None and ckpt.get("scheduler_state"):
            scheduler.load_state_dict(ckpt["scheduler_state"])
        if scaler is not None and ckpt.get("scaler_state"):
            scaler.load_state_dict(ckpt["scaler_state"])
        _set_rng_state(ckpt["rng_state"], device)
        start_epoch = int(ckpt["epoch"]) + 1
        best_val_acc = float(ckpt["best_val_acc"])
        best_epoch = int(ckpt["best_epoch"])
        train_seconds = float(ckpt["train_seconds"])
        if primary:
            metrics_log.truncate_after(int(ckpt["epoch"]))
        say(f"resuming {run_dir} after epoch {ckpt['epoch']} of {config.epochs}")
    elif primary:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SeqMnistError(f"cannot create the run directory {run_dir} ({exc.strerror}): choose another --out") from None
        for stale in (METRICS_NAME, SUMMARY_NAME, LAST_NAME, BEST_NAME):
            (run_dir / stale).unlink(missing_ok=True)
        write_json_atomic(run_dir / CONFIG_NAME, config.to_dict())

    world_batch = config.batch_size * dist_info.world_size

    def checkpoint_payload(epoch: int) -> dict[str, Any]:
        return {
            "model_config": asdict(config.model),
            "train_config": config.to_dict(),
            "model_state": eval_model.state_dict(),  # what evaluate / predict / export load
            # With EMA, the raw trained weights and the average's step count, to resume exactly.
            "train_state": model.state_dict() if ema is not None else None,
            "ema_updates": ema.updates if ema is not None else None,
            "optimizer_state": optimizer.state_dict(),
            "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
            "scaler_state": scaler.state_dict() if scaler is not None else None,  # fp16 loss scale
            "rng_state": _rng_state(device),
            "epoch": epoch,
            "best_val_acc": best_val_acc,
            "best_epoch": best_epoch,
            "train_seconds": train_seconds,
            "world_size": dist_info.world_size,
        }

    if primary and not resume:
        # Epoch 0: so that Ctrl-C during the first epoch still leaves something to resume from.
        save_checkpoint(run_dir / LAST_NAME, checkpoint_payload(0))

    if primary:
        say(
            f"training {config.model.cell.upper()} hidden={config.model.hidden} layers={config.model.layers} "
            f"{'bi' if config.model.bidirectional else 'uni'}directional readout={config.model.readout} "
            f"({count_parameters(model):,} parameters) on {device} x{dist_info.world_size}, {threads} threads; "
            f"preset {config.preset}, {config.epochs} epochs, batch {world_batch}, {len(train_split):,} training images"
        )

    show_bar = (progress if progress is not None else sys.stderr.isatty()) and primary and not quiet
    bar = _Progress(show_bar)
    epoch = start_epoch - 1
    samples_seen, seconds_spent = 0.0, 0.0
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            order = epoch_permutation(
                len(train_split), seed=config.seed, epoch=epoch, rank=dist_info.rank, world_size=dist_info.world_size
            )
            bar.start(epoch, config.epochs, int(order.numel()))
            lr = optimizer.param_groups[0]["lr"]
            stats = train_one_epoch(
                trainable, train_split, order,
                optimizer=optimizer, scheduler=scheduler, batch_size=config.batch_size,
                normalize=config.normalize, grad_clip=config.grad_clip, amp=config.amp,
                scaler=scaler, on_batch=bar.update, augment_shift=config.augment_shift, ema=ema,
                # Seeded per (seed, epoch, rank) so a resumed run augments exactly as an uninterrupted one.
                augment_generator=torch.Generator().manual_seed(derived_seed(config.seed, epoch, 1 + dist_info.rank)),
            )
            bar.close()
            loss_sum, correct, samples, seconds = all_reduce_sum(
                [stats["loss_sum"], stats["correct"], stats["samples"], stats["seconds"]], dist_info, device
            )
            seconds /= dist_info.world_size  # ranks run concurrently: mean wall time
            train_seconds += seconds
            samples_seen += samples
            seconds_spent += seconds
            row: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": loss_sum / samples,
                "train_acc": correct / samples,
                "lr": lr,
                "epoch_seconds": seconds,
                "train_seconds": train_seconds,
                "samples_per_s": samples / seconds,
            }
            if val_split is not None:
                row["val_loss"], row["val_acc"] = _evaluate_shared(eval_model, val_split, config, dist_info, device)
            if test_split is not None:
                row["test_loss"], row["test_acc"] = _evaluate_shared(eval_model, test_split, config, dist_info, device)
            # Model selection on validation only; without a validation split the last epoch is "best".
            improved = val_split is None or row["val_acc"] > best_val_acc
            if improved:
                best_val_acc = row.get("val_acc", -1.0)
                best_epoch = epoch
            if primary:
                # Order matters for a kill between writes: checkpoint_last goes last, so it never
                # holds an epoch whose metrics row or best checkpoint is missing (a resume drops
                # rows after checkpoint_last's epoch and redoes that epoch identically).
                payload = checkpoint_payload(epoch)
                metrics_log.append(row)
                if improved:
                    save_checkpoint(run_dir / BEST_NAME, payload)
                save_checkpoint(run_dir / LAST_NAME, payload)
            say(_epoch_line(row, config.epochs))
    except KeyboardInterrupt:
        bar.close()
        done = epoch - 1
        raise TrainingInterrupted(
            f"interrupted during epoch {epoch}; {run_dir / LAST_NAME} holds epoch {max(done, start_epoch - 1)}. "
            f"Resume with: {_resume_command(run_dir, dist_info)}",
            str(run_dir),
            max(done, start_epoch - 1),
        ) from None

    # --- the test set, once, on the best checkpoint -------------------------------------------
    summary: dict[str, Any] = {}
    if primary:
        best = load_checkpoint(run_dir / BEST_NAME, map_location=device)
        model.load_state_dict(best["model_state"])
        if test_split is None:
            test_split = load_mnist(data_dir, train=False, download=download).to(device)
        test = evaluate(model, test_split, normalize=config.normalize, amp=config.amp, return_outputs=True)
        matrix = confusion_matrix(test["predictions"], test_split.labels.cpu())
        macs = recurrent_macs_per_sample(config.model)
        throughput = samples_seen / seconds_spent if seconds_spent else None
        summary = {
            "run_dir": str(run_dir),
            "preset": config.preset,
            "test_acc": test["acc"],
            "test_loss": test["loss"],
            "test_samples": test["samples"],
            "best_epoch": best_epoch,
            "best_val_acc": best_val_acc if val_split is not None else None,
            "epochs": config.epochs,
            "train_seconds": train_seconds,
            "total_seconds": time.perf_counter() - wall_start,
            "samples_per_s": throughput,
            # Recurrent matmul work: forward 2*MACs FLOPs per sample, backward about twice that.
            "train_gflops_per_s": (6 * macs * throughput / 1e9) if throughput else None,
            "parameters": count_parameters(model),
            "per_class": per_class_report(matrix),
            "confusion_matrix": matrix.tolist(),
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "world_size": dist_info.world_size,
            "global_batch": world_batch,
            "versions": {
                "seqmnist": __version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
        }
        write_json_atomic(run_dir / SUMMARY_NAME, summary)
        say(
            f"test accuracy {test['acc']:.2%} (loss {test['loss']:.4f}) with the best checkpoint (epoch {best_epoch}); "
            f"training {train_seconds:.1f}s, total {summary['total_seconds']:.1f}s; run saved in {run_dir}"
        )
        if after_run is not None:
            after_run(run_dir)
    return summary


def _recipe(config: TrainConfig) -> dict[str, Any]:
    """The fields that must match for a resume to be valid (not device, threads or seed-free knobs)."""
    d = config.to_dict()
    for key in ("device", "threads"):
        d.pop(key)
    return d


def _epoch_line(row: dict[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch']:>{len(str(epochs))}}/{epochs}", f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%}"]
    if "val_acc" in row:
        parts.append(f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.2%}")
    if "test_acc" in row:
        parts.append(f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.2%}")
    parts.append(f"lr {row['lr']:.2e}")
    parts.append(f"{row['epoch_seconds']:.1f}s")
    parts.append(f"{row['samples_per_s']:,.0f} samples/s")
    return "  ".join(parts)
