"""CUDA graphs for the training step: when a run may use one, and that it changes nothing.

Whether a graphed step equals an eager one is a GPU question: the test below needs CUDA, and
benchmarks/bench_gpu.py measured it on an H100 (benchmarks/README.md, "GPU"). On the CPU the
suite checks the rule that picks graphs and the optimiser they need.
"""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_config
from seqmnist.config import apply_overrides, preset_config
from seqmnist.cudagraph import GraphedStep, graph_blocker
from seqmnist.data import epoch_permutation, load_mnist
from seqmnist.engine import train_one_epoch
from seqmnist.runtime import DistInfo, Runtime
from seqmnist.state import TrainState

CUDA = torch.device("cuda")  # a device object needs no GPU; only graph_blocker reads it


def test_the_seed_preset_runs_as_cuda_graphs_on_a_gpu_and_never_on_the_cpu():
    seed = preset_config("seed")
    assert graph_blocker(seed, CUDA, 1, 60_000) is None
    assert graph_blocker(seed, torch.device("cpu"), 1, 60_000) == "not on a CUDA device"


@pytest.mark.parametrize(
    ("overrides", "world_size", "train_images", "reason"),
    [
        ({"cuda_graphs": False}, 1, 60_000, "--no-cuda-graphs"),
        ({}, 2, 60_000, "torchrun"),
        ({"amp": "fp16"}, 1, 60_000, "fp16"),
        ({"schedule": "onecycle"}, 1, 60_000, "one-cycle"),
        ({"ema_decay": 0.99}, 1, 60_000, "weight average"),
        ({"dropout": 0.2, "layers": 2}, 1, 60_000, "dropout"),
        ({}, 1, 60_001, "last batch"),
    ],
)
def test_each_recipe_feature_a_graph_cannot_replay_keeps_the_step_eager(
    overrides, world_size, train_images, reason
):
    config = apply_overrides(preset_config("seed"), overrides)
    assert reason in graph_blocker(config, CUDA, world_size, train_images)


def test_the_default_recipe_steps_eagerly_because_its_lr_changes_every_step():
    assert "one-cycle" in graph_blocker(preset_config("default"), CUDA, 1, 55_000)


def _state(capturable: bool, device: str = "cpu") -> TrainState:
    runtime = Runtime(torch.device(device), DistInfo(), 1)
    return TrainState(tiny_config(), runtime, steps_per_epoch=4, capturable=capturable)


def _train_a_little(state: TrainState, data_dir) -> None:
    train = load_mnist(data_dir, train=True, download=False).to(state.device)
    order = epoch_permutation(len(train), seed=0, epoch=1)[:100]
    train_one_epoch(state.model, train, order, state.step, batch_size=50, normalize=True)


def test_a_resumed_optimiser_runs_as_this_session_needs_not_as_the_saved_one(synthetic_data_dir):
    """A checkpoint written on a GPU with graphs (a capturable, unfused optimiser) resumes on the
    CPU with the CPU's fused one: those flags say how a session runs, not what it computes."""
    first = _state(capturable=False)
    _train_a_little(first, synthetic_data_dir)
    saved = first.state_dict()
    for group in saved["optimizer_state"]["param_groups"]:
        group.update(fused=None, capturable=True)  # as a graphed GPU session writes them
    resumed = _state(capturable=False)
    resumed.load_state_dict(saved)
    groups = resumed.optimizer.param_groups
    assert all(g["fused"] and not g["capturable"] for g in groups)
    steps = [s["step"] for s in resumed.optimizer.state.values()]
    assert steps and all(t.device.type == "cpu" and t.dtype == torch.float32 for t in steps)
    _train_a_little(resumed, synthetic_data_dir)


# The recipes graph_blocker lets through, beyond the seed preset itself: clipping, AdamW with
# weight decay, bf16 autocast.
GRAPHED_RECIPES = [
    {},
    {"grad_clip": 1.0, "optimizer": "adamw", "weight_decay": 1e-4},
    {"amp": "bf16"},
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("overrides", GRAPHED_RECIPES)
def test_graphed_steps_equal_eager_steps_with_the_same_optimiser(overrides, synthetic_data_dir):
    config = apply_overrides(
        preset_config("seed"), {"hidden": 16, "batch_size": 50, "device": "cuda", **overrides}
    )
    assert graph_blocker(config, CUDA, 1, 500) is None
    runtime = Runtime(CUDA, DistInfo(), 1)
    train = load_mnist(synthetic_data_dir, train=True, download=False).to(CUDA)
    order = epoch_permutation(len(train), seed=0, epoch=1)[:500]
    weights = []
    for graphs in (False, True):
        state = TrainState(config, runtime, steps_per_epoch=10, capturable=True)
        train_one_epoch(
            state.model,
            train,
            order,
            state.step,
            batch_size=50,
            normalize=False,
            amp=config.amp,
            graphed=GraphedStep(state) if graphs else None,
        )
        weights.append(torch.cat([p.detach().flatten() for p in state.model.parameters()]))
    assert torch.equal(weights[0], weights[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_an_eager_cuda_session_keeps_its_step_counts_on_the_cpu(synthetic_data_dir):
    """Resumed from a checkpoint loaded onto the GPU, PyTorch's default (foreach) Adam would read
    a GPU step count on the host for every parameter and step; they go back to the CPU."""
    first = _state(capturable=True, device="cuda")
    _train_a_little(first, synthetic_data_dir)
    resumed = _state(capturable=False, device="cuda")
    resumed.load_state_dict(first.state_dict())
    steps = [s["step"] for s in resumed.optimizer.state.values()]
    assert steps and all(t.device.type == "cpu" for t in steps)
