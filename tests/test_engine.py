"""The two loops: what train_one_epoch and evaluate return, and the divergence check."""

from __future__ import annotations

import math

import pytest
import torch

from seqmnist.config import ModelConfig
from seqmnist.data import Split
from seqmnist.engine import evaluate, train_one_epoch
from seqmnist.errors import TrainingDiverged
from seqmnist.model import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _split(n: int = 40) -> Split:
    g = torch.Generator().manual_seed(0)
    return Split(
        torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g), torch.arange(n) % 10
    )


def _model(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=8, **kw))


def test_train_one_epoch_returns_sums_and_updates_weights():
    model, split = _model(), _split()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    seen, losses = [], []

    def step(loss):
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()

    stats = train_one_epoch(
        model,
        split,
        torch.randperm(40),
        step,
        batch_size=16,
        normalize=True,
        on_batch=lambda n, loss: seen.append(n),
    )
    assert len(losses) == 3  # one optimisation step per batch
    assert stats["samples"] == 40 and seen == [16, 16, 8]
    assert 0 <= stats["correct"] <= 40
    assert stats["loss_sum"] / 40 == pytest.approx(math.log(10), rel=0.2)  # untrained: about ln 10
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_train_state_step_steps_the_scheduler_and_the_average_once_per_batch():
    from conftest import tiny_config
    from seqmnist.runtime import DistInfo, Runtime
    from seqmnist.state import TrainState

    config = tiny_config(hidden=8, schedule="onecycle", epochs=1, ema_decay=0.9, grad_clip=0.5)
    state = TrainState(config, Runtime(torch.device("cpu"), DistInfo(), 1), steps_per_epoch=4)
    lrs = []
    train_one_epoch(
        state.model,
        _split(),
        torch.arange(40),
        state.step,
        batch_size=10,
        normalize=True,
        on_batch=lambda n, loss: lrs.append(state.lr()),
    )
    assert state.scheduler.last_epoch == 4 and state.ema.updates == 4
    assert len(set(lrs)) == 4  # the one-cycle lr moved after every step


def test_evaluate_matches_a_manual_computation():
    model, split = _model(), _split(25)
    result = evaluate(model, split, batch_size=7, normalize=False, return_outputs=True)
    x = split.images.float() / 255
    with torch.no_grad():
        logits = model.eval()(x)
    assert result["samples"] == 25
    assert result["loss"] == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, split.labels)), rel=1e-5
    )
    assert result["accuracy"] == pytest.approx(
        float((logits.argmax(1) == split.labels).float().mean())
    )
    assert torch.allclose(result["probabilities"], logits.softmax(1), atol=1e-6)
    assert torch.equal(result["predictions"], logits.argmax(1))


def test_evaluate_softmax_output_model_is_not_softmaxed_twice():
    model, split = _model(softmax_output=True), _split(10)
    result = evaluate(model, split, normalize=True, return_outputs=True)
    with torch.no_grad():
        probs = model.eval()(((split.images.float() / 255) - 0.1307) / 0.3081)
    assert torch.allclose(result["probabilities"], probs, atol=1e-6)
    # the article's loss: cross-entropy on probabilities, bounded below by about 1.46
    assert result["loss"] > 1.46


def test_nan_loss_raises_training_diverged():
    model = _model()
    with torch.no_grad():
        model.head.weight.fill_(math.nan)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    with pytest.raises(TrainingDiverged, match="became nan"):
        train_one_epoch(model, _split(), torch.arange(40), step, batch_size=10, normalize=True)
