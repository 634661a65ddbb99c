"""WeightEMA: the warm-up rule and the update arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqmnist.ema import WeightEMA


def test_decay_warms_up_then_holds():
    ema = WeightEMA(nn.Linear(2, 2), decay=0.995)
    assert ema.current_decay() == pytest.approx(2 / 11)  # first update: (1 + 1) / (10 + 1)
    ema.updates = 79
    assert ema.current_decay() == pytest.approx(0.9)  # n = 80
    ema.updates = 1789
    assert ema.current_decay() == pytest.approx(0.995)  # (10 d - 1) / (1 - d) = 1790 steps
    ema.updates = 10**6
    assert ema.current_decay() == 0.995


def test_update_moves_the_average_toward_the_model_by_one_minus_decay():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ema = WeightEMA(model, decay=0.5)
    start = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    decay = ema.current_decay()
    ema.update(model)
    assert ema.updates == 1
    for averaged, before, current in zip(ema.module.parameters(), start, model.parameters()):
        assert torch.allclose(averaged, decay * before + (1 - decay) * current)
        assert not averaged.requires_grad


def test_buffers_are_copied_not_averaged():
    model = nn.BatchNorm1d(2)
    ema = WeightEMA(model, decay=0.9)
    model.running_mean.fill_(3.0)
    ema.update(model)
    assert torch.equal(ema.module.running_mean, model.running_mean)


def test_decay_outside_0_1_is_refused():
    with pytest.raises(ValueError):
        WeightEMA(nn.Linear(1, 1), decay=1.0)
