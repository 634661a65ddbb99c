"""The two loops: ``train_one_epoch`` and ``evaluate``. They return metric dicts and do no file I/O.

Metrics are accumulated as tensors on the training device and read once per epoch (plus a few
times for the progress bar), so a GPU is never stalled by a per-batch ``.item()``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from .data import Augmentation, Split, iterate_batches, to_model_input
from .errors import TrainingDiverged

NO_AUGMENTATION = Augmentation()

# How often (in batches) the progress bar shows the running loss and the NaN check runs.
# Each check is one host sync; at 50 batches it costs nothing measurable.
SYNC_EVERY = 50


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Mixed precision only on CUDA, only when asked; a no-op context otherwise."""
    if amp == "off" or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def train_one_epoch(
    model: nn.Module,
    split: Split,
    order: torch.Tensor,
    step: Callable[[torch.Tensor], None],
    *,
    batch_size: int,
    normalize: bool,
    amp: str = "off",
    augment: Augmentation = NO_AUGMENTATION,
    augment_generator: torch.Generator | None = None,
    on_batch: Callable[[int, float | None], None] | None = None,
    graphed: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    | None = None,
) -> dict[str, float]:
    """One pass over ``split`` in the sample order ``order``; ``step(loss)`` is one optimisation
    step (``TrainState.step``: backward, clipping, update, schedule, moving average).
    ``graphed(x, labels) -> (logits, loss)``, when given, does forward, loss and ``step`` in one
    (a ``cudagraph.GraphedStep``) instead.

    Returns this process's sums: ``loss_sum`` (sum of per-sample losses), ``correct``, ``samples``,
    ``seconds``. ``on_batch(batch_size, running_loss_or_None)`` drives the progress bar.
    """
    model.train()
    device = split.images.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    start = time.perf_counter()
    for batch, (images, labels) in enumerate(
        iterate_batches(split, batch_size, order=order), start=1
    ):
        if augment.enabled:
            images = augment(images, augment_generator)
        x = to_model_input(images, normalize)  # (B, 28, 28)
        if graphed is not None:
            logits, loss = graphed(x, labels)
        else:
            logits, loss = forward_loss(model, x, labels, amp)
            step(loss)

        n = labels.shape[0]
        samples += n
        loss_sum += loss.detach().double() * n
        correct += (logits.detach().argmax(dim=1) == labels).sum()
        running = None
        if batch % SYNC_EVERY == 0:
            running = float(loss_sum) / samples
            _check_finite(running, f"batch {batch}")
        if on_batch is not None:
            on_batch(n, running)
    seconds = time.perf_counter() - start
    total_loss = float(loss_sum)
    _check_finite(total_loss, "the end of the epoch")
    return {
        "loss_sum": total_loss,
        "correct": float(correct),
        "samples": float(samples),
        "seconds": seconds,
    }


def forward_loss(
    model: nn.Module, x: torch.Tensor, labels: torch.Tensor, amp: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training forward pass: (B, 28, 28) float, (B,) -> logits (B, 10), mean loss (scalar).
    The loss is always taken in fp32, also under autocast."""
    with autocast_context(x.device, amp):
        logits = model(x)  # (B, 10)
        loss = nn.functional.cross_entropy(logits.float(), labels)
    return logits, loss


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    *,
    batch_size: int = 1000,
    normalize: bool,
    amp: str = "off",
    return_outputs: bool = False,
) -> dict:
    """Mean loss and accuracy on ``split``, and the sums behind them (``loss_sum``, ``correct``,
    ``samples``: what ranks add up under DDP); with ``return_outputs`` also ``predictions`` (N,)
    and ``probabilities`` (N, 10) on the CPU, for confusion matrices and error galleries."""
    model.eval()
    device = split.images.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    probs = []
    # A model with softmax_output (the article's) already returns probabilities; the loss is
    # then computed exactly as the article computes it, on those probabilities.
    returns_probabilities = getattr(getattr(model, "config", None), "softmax_output", False)
    for images, labels in iterate_batches(split, batch_size):
        with autocast_context(device, amp):
            out = model(to_model_input(images, normalize)).float()  # (B, 10)
        loss_sum += nn.functional.cross_entropy(out, labels, reduction="sum").double()
        correct += (out.argmax(dim=1) == labels).sum()
        if return_outputs:
            probs.append((out if returns_probabilities else out.softmax(dim=1)).cpu())
    n = max(len(split), 1)
    loss_total, correct_total = float(loss_sum), int(correct)
    result = {
        "loss": loss_total / n,
        "accuracy": correct_total / n,
        "samples": len(split),
        "loss_sum": loss_total,
        "correct": correct_total,
    }
    if return_outputs:
        p = torch.cat(probs) if probs else torch.zeros(0, 10)
        result["probabilities"] = p
        result["predictions"] = p.argmax(dim=1)
    return result


def _check_finite(value: float, where: object) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"the training loss became {value} (at {where}); lower --lr, keep --grad-clip on, "
            "or check the data"
        )
