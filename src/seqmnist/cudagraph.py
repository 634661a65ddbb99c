"""One training step as one CUDA graph, for recipes whose step is launch-bound on a GPU.

At batch 32 (the article's recipe, ``--preset seed``) a training step is a few hundred small
kernels - the LSTM, the loss, backward, Adam - and on a GPU launching them from Python takes
longer than running them. A CUDA graph records the step's kernels once and replays them with one
launch. The replayed kernels are those of an eager step with the same (capturable) optimiser,
on the same tensors: measured on an H100, the weights after 20 steps are bit-identical. The
capturable optimiser itself differs from PyTorch's default Adam in the last bits, which is why
``--cuda-graphs`` is part of a run's recipe.

A captured step replays exactly what was recorded, so the recipe must not change between steps
in ways the graph cannot see: ``graph_blocker`` names the first reason a run cannot use one
(then training runs eagerly, as on the CPU).
"""

from __future__ import annotations

import torch

from .config import TrainConfig
from .engine import forward_loss

# Eager steps before the capture, on a side stream: cuDNN and cuBLAS pick their algorithms and
# allocate their workspaces, and the optimiser creates its state, outside the recording (the
# pattern of PyTorch's "whole network capture" example).
WARMUP_STEPS = 3


def graph_blocker(
    config: TrainConfig, device: torch.device, world_size: int, train_images: int
) -> str | None:
    """Why this run's training step cannot be one CUDA graph, or None when it can."""
    reasons = (
        (not config.cuda_graphs, "turned off with --no-cuda-graphs"),
        (device.type != "cuda", "not on a CUDA device"),
        (world_size > 1, "training under torchrun (DDP's gradient hooks)"),
        (config.amp == "fp16", "fp16's loss scaler reads the GPU on the host every step"),
        (config.schedule != "constant", "the one-cycle schedule changes the lr every step"),
        (config.ema_decay > 0, "the weight average's decay changes during its warm-up"),
        (config.model.dropout > 0, "dropout"),
        (train_images % config.batch_size != 0, "the last batch of an epoch is smaller"),
    )
    return next((why for blocked, why in reasons if blocked), None)


class GraphedStep:
    """``step(x, labels) -> (logits, loss)``: forward, loss and ``TrainState.step`` in one.

    The first ``WARMUP_STEPS`` calls run eagerly on a side stream; the next one records the
    step into a graph and every call from then on copies its batch into the graph's input
    tensors and replays it. Each call is one real training step on its batch. The returned
    tensors are the graph's own outputs: read them before the next call.
    """

    def __init__(self, state) -> None:  # a TrainState built with capturable=True
        self.state = state
        self.eager_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.side_stream = torch.cuda.Stream()

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.graph is None and self.eager_steps < WARMUP_STEPS:
            self.eager_steps += 1
            return self._eager_on_side_stream(x, labels)
        if self.graph is None:
            self._record(x, labels)  # records the step; the replay below runs it
        else:
            if x.shape != self.static_x.shape:  # copy_ would broadcast a smaller batch
                raise ValueError(
                    f"a CUDA-graph step takes batches of shape {tuple(self.static_x.shape)}; "
                    f"got {tuple(x.shape)} (graph_blocker keeps such recipes eager)"
                )
            self.static_x.copy_(x)  # (B, 28, 28)
            self.static_labels.copy_(labels)  # (B,)
        self.graph.replay()
        return self.static_logits, self.static_loss

    def _train_step(self, x: torch.Tensor, labels: torch.Tensor):
        logits, loss = forward_loss(self.state.model, x, labels, self.state.config.amp)
        self.state.step(loss)
        return logits, loss

    def _eager_on_side_stream(self, x: torch.Tensor, labels: torch.Tensor):
        side = self.side_stream
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = self._train_step(x, labels)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def _record(self, x: torch.Tensor, labels: torch.Tensor) -> None:
        self.static_x, self.static_labels = x.clone(), labels.clone()
        # Gradients are created inside the recording, in the graph's own memory: every replay's
        # backward then writes them afresh (the recorded zero_grad sees None and does nothing).
        self.state.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.static_logits, self.static_loss = self._train_step(
                self.static_x, self.static_labels
            )
        self.graph = graph  # only a finished recording is ever replayed
