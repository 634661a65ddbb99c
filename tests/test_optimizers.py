"""RMSprop beside AdamW and Adam (issue 20): torch's RMSprop has no ``fused`` flag, so making it
and resuming it must not assume one."""

from __future__ import annotations

import copy

import torch

from conftest import tiny_config
from resume_helpers import assert_same_state
from seqmnist.runtime import DistInfo, Runtime
from seqmnist.state import TrainState


def _state(**overrides) -> TrainState:
    runtime = Runtime(torch.device("cpu"), DistInfo(), threads=1)
    return TrainState(tiny_config(**overrides), runtime, steps_per_epoch=10)


def _one_step(state: TrainState) -> None:
    logits = state.trainable(torch.rand(4, 28, 28))
    state.step(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])))


def test_rmsprop_trains_and_resumes_exactly():
    a = _state(optimizer="rmsprop", schedule="constant", lr=1e-3)
    assert isinstance(a.optimizer, torch.optim.RMSprop)
    before = {k: v.clone() for k, v in a.model.state_dict().items()}
    _one_step(a)
    assert any(not torch.equal(before[k], v) for k, v in a.model.state_dict().items())
    b = _state(optimizer="rmsprop", schedule="constant", lr=1e-3)
    # (a copy, as a checkpoint file is: load_state_dict may keep the saved tensors themselves)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # read "fused" before: KeyError on RMSprop
    assert "fused" not in b.optimizer.param_groups[0]
    torch.manual_seed(0)
    _one_step(a)
    torch.manual_seed(0)
    _one_step(b)
    assert_same_state(a.model.state_dict(), b.model.state_dict())
