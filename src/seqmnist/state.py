"""``TrainState``: everything training changes, saved and restored by one pair of methods.

What a checkpoint holds is defined once, in ``state_dict()``; ``load_state_dict()`` reads back
exactly those keys, so saving and resuming cannot drift apart. A checkpoint is also enough to
rebuild the model for inference (``model_config`` + ``model_state``); see checkpoint.py.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .ema import WeightEMA
from .errors import ConfigError
from .model import build_model
from .runtime import Runtime


def make_optimizer(
    config: TrainConfig, model: nn.Module, device: torch.device, capturable: bool = False
) -> torch.optim.Optimizer:
    """AdamW, Adam or RMSprop; ``capturable`` keeps its step count on the GPU so that a CUDA
    graph can record ``step()`` (cudagraph.py)."""
    if config.optimizer == "rmsprop":
        # The published sMNIST / pMNIST LSTM recipes (Cooijmans et al. 2017, Lezcano-Casado &
        # Martinez-Rubio 2019) use RMSprop with PyTorch's defaults (alpha 0.99, no momentum).
        # torch's RMSprop has no fused implementation.
        return torch.optim.RMSprop(
            model.parameters(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            capturable=capturable,
        )
    # On the CPU the fused implementation updates each parameter in one kernel instead of ~10
    # small ops: 0.1 ms instead of 0.36 ms per step for the default model on the 2-core machine.
    # (On CUDA PyTorch's default, foreach, is kept.)
    fused = device.type == "cpu"
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(
        model.parameters(),
        lr=config.lr,
        weight_decay=config.weight_decay,
        fused=fused,
        capturable=capturable,
    )


def make_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
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


class TrainState:
    """The model, its moving average, the optimiser, schedule and loss scaler, and the run's
    progress (epoch, best epoch and accuracy, seconds). Built identically on every rank."""

    def __init__(
        self,
        config: TrainConfig,
        runtime: Runtime,
        steps_per_epoch: int,
        started: float | None = None,
        capturable: bool = False,
    ) -> None:
        """``started``: ``time.perf_counter()`` when this session began (default: now);
        ``capturable``: build the optimiser so that a CUDA graph can record a step."""
        self.config = config
        self.world_size = runtime.dist.world_size
        device = runtime.device
        torch.manual_seed(config.seed)  # same initial weights on every rank
        self.model = build_model(config.model).to(device)
        self.trainable: nn.Module = self.model
        if runtime.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device.index] if device.type == "cuda" else None
            self.trainable = DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(config, self.model, device, capturable)
        self.scheduler = make_scheduler(config, self.optimizer, steps_per_epoch)
        # fp16 needs loss scaling; disabled, the scaler passes everything straight through.
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=config.amp == "fp16" and device.type == "cuda"
        )
        # The weights we evaluate and save: a moving average of the trained ones, which smooths
        # out the noise of a high learning rate (or the trained weights themselves when off).
        self.ema = WeightEMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.device = device
        self.epoch = 0  # last finished epoch
        self.best_epoch = 0
        self.best_val_acc = -1.0
        self.train_seconds = 0.0  # in the training loop, all sessions of this run
        self.earlier_seconds = 0.0  # wall time of this run's earlier sessions (resumes)
        self.started = time.perf_counter() if started is None else started

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated, selected, saved for inference and tested."""
        return self.ema.module if self.ema is not None else self.model

    def step(self, loss: torch.Tensor) -> None:
        """One optimisation step: backward, (un)scaling, clipping, update, schedule, average."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def total_seconds(self) -> float:
        """Wall time of the whole run so far: earlier sessions plus this one."""
        return self.earlier_seconds + (time.perf_counter() - self.started)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def finish_epoch(self, epoch: int, seconds: float, val_acc: float | None) -> bool:
        """Count the epoch; True when it is the best so far (selection on validation only;
        without a validation split every epoch is the newest best)."""
        self.epoch = epoch
        self.train_seconds += seconds
        improved = val_acc is None or val_acc > self.best_val_acc
        if improved:
            self.best_val_acc = val_acc if val_acc is not None else -1.0
            self.best_epoch = epoch
        return improved

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint payload (checkpoint.py adds the format fields)."""
        return {
            "model_config": asdict(self.config.model),
            "train_config": self.config.to_dict(),
            "model_state": self.eval_model.state_dict(),  # what evaluate / predict / export load
            # With EMA, the raw trained weights and the average's step count, to resume exactly.
            "train_state": self.model.state_dict() if self.ema is not None else None,
            "ema_updates": self.ema.updates if self.ema is not None else None,
            "optimizer_state": self.optimizer.state_dict(),
            "scheduler_state": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler_state": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng_state": _rng_state(self.device),
            "epoch": self.epoch,
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "train_seconds": self.train_seconds,
            "total_seconds": self.total_seconds(),
            "world_size": self.world_size,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Continue from a ``state_dict()`` written by the same recipe and process count."""
        saved = TrainConfig.from_dict(ckpt["train_config"])
        where = ckpt.get("path", "the checkpoint")
        if saved.recipe() != self.config.recipe():
            raise ConfigError(
                f"{where} was trained with a different config; resume it without changing flags"
            )
        # The global batch, the shards and the schedule's step count all depend on the world size.
        saved_world = int(ckpt.get("world_size", 1))
        if saved_world != self.world_size:
            raise ConfigError(
                f"{where} was trained by {saved_world} process(es), not {self.world_size}: "
                "resume it with "
                f"the same number (torchrun --nproc_per_node={saved_world}, or no torchrun for 1)"
            )
        self.model.load_state_dict(
            ckpt["train_state"] if self.ema is not None else ckpt["model_state"]
        )
        if self.ema is not None:
            self.ema.module.load_state_dict(ckpt["model_state"])
            self.ema.updates = int(ckpt["ema_updates"])
        # The saved param groups carry the implementation flags of the session that wrote them
        # (fused on a CPU, capturable under CUDA graphs); this session keeps its own.
        # (RMSprop has no "fused".)
        group = self.optimizer.param_groups[0]
        flags = {k: group[k] for k in ("fused", "capturable") if k in group}
        self.optimizer.load_state_dict(ckpt["optimizer_state"])
        for group in self.optimizer.param_groups:
            group.update(flags)
        on_device = bool(flags.get("fused") or flags.get("capturable"))
        _place_step_counters(self.optimizer, on_device=on_device)
        if self.scheduler is not None and ckpt.get("scheduler_state"):
            self.scheduler.load_state_dict(ckpt["scheduler_state"])
        if self.scaler.is_enabled() and ckpt.get("scaler_state"):
            self.scaler.load_state_dict(ckpt["scaler_state"])
        _set_rng_state(ckpt["rng_state"], self.device)
        self.epoch = int(ckpt["epoch"])
        self.best_val_acc = float(ckpt["best_val_acc"])
        self.best_epoch = int(ckpt["best_epoch"])
        self.train_seconds = float(ckpt["train_seconds"])
        # Checkpoints from before total_seconds was kept: the training time is the best lower bound.
        self.earlier_seconds = float(ckpt.get("total_seconds", self.train_seconds))


def _place_step_counters(optimizer: torch.optim.Optimizer, on_device: bool) -> None:
    """Put the optimiser's per-parameter step counts where this session's implementation reads
    them: on the parameter's device for fused and capturable ones, else on the CPU (a count on a
    GPU would cost the plain implementation a host sync per parameter and step). load_state_dict
    placed them as the saved session's flags said."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                where = param.device if on_device else torch.device("cpu")
                state["step"] = state["step"].to(device=where, dtype=torch.float32)


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
