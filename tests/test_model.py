"""SeqClassifier: shapes, logits vs probabilities, and what each readout really reads."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqmnist.config import ModelConfig
from seqmnist.errors import ConfigError
from seqmnist.model import SeqClassifier, build_model, count_parameters, recurrent_macs_per_sample

B, T, F = 3, 28, 28
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(B, T, F, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "cell,bidirectional,readout,layers",
    list(itertools.product(["lstm", "gru", "rnn"], [True, False], ["final", "last", "mean"], [1, 2])),
)
def test_output_shapes_every_architecture(cell, bidirectional, readout, layers):
    torch.manual_seed(0)
    model = SeqClassifier(ModelConfig(cell=cell, hidden=8, layers=layers, bidirectional=bidirectional, readout=readout))
    d = 2 if bidirectional else 1
    x = _x()
    output, h_n = model.run_rnn(x)
    assert output.shape == (B, T, d * 8)
    assert h_n.shape == (layers * d, B, 8)
    assert model.readout(output, h_n).shape == (B, d * 8)
    assert model(x).shape == (B, 10)


def test_forward_returns_logits_not_probabilities():
    torch.manual_seed(0)
    model = SeqClassifier(ModelConfig(hidden=8)).eval()
    out = model(_x())
    # Logits: rows do not sum to one, and some are negative.
    assert not torch.allclose(out.sum(dim=1), torch.ones(B), atol=1e-3)
    assert (out < 0).any()


def test_softmax_output_returns_probabilities_of_the_same_logits():
    torch.manual_seed(0)
    plain = SeqClassifier(ModelConfig(hidden=8)).eval()
    article = SeqClassifier(ModelConfig(hidden=8, softmax_output=True)).eval()
    article.load_state_dict(plain.state_dict())
    x = _x()
    probs = article(x)
    assert torch.allclose(probs.sum(dim=1), torch.ones(B), atol=1e-6)
    assert (probs >= 0).all()
    assert torch.allclose(probs, plain(x).softmax(dim=1), atol=1e-6)


def test_bidirectional_lstm_output_vs_h_n():
    """The article's claim `output[:, -1, :] == h_n` holds for the forward half only."""
    torch.manual_seed(0)
    h = 8
    model = SeqClassifier(ModelConfig(cell="lstm", hidden=h, bidirectional=True)).eval()
    output, h_n = model.run_rnn(_x())
    assert torch.allclose(output[:, -1, :h], h_n[-2], atol=1e-6)  # forward: after the last row
    assert torch.allclose(output[:, 0, h:], h_n[-1], atol=1e-6)  # backward: after the first row
    assert not torch.allclose(output[:, -1, h:], h_n[-1], atol=1e-3)  # backward half of "last"


@pytest.mark.parametrize("layers", [1, 2])
def test_final_readout_is_both_final_states(layers):
    torch.manual_seed(0)
    model = SeqClassifier(ModelConfig(hidden=8, layers=layers, readout="final")).eval()
    output, h_n = model.run_rnn(_x())
    assert torch.allclose(model.readout(output, h_n), torch.cat([h_n[-2], h_n[-1]], dim=1))


def test_last_and_mean_readouts():
    torch.manual_seed(0)
    model = SeqClassifier(ModelConfig(hidden=8, readout="last")).eval()
    output, h_n = model.run_rnn(_x())
    assert torch.equal(model.readout(output, h_n), output[:, -1, :])
    model.config.readout = "mean"
    assert torch.allclose(model.readout(output, h_n), output.mean(dim=1))


def test_unidirectional_final_equals_last():
    torch.manual_seed(0)
    model = SeqClassifier(ModelConfig(hidden=8, bidirectional=False, readout="final")).eval()
    output, h_n = model.run_rnn(_x())
    assert torch.allclose(model.readout(output, h_n), output[:, -1, :], atol=1e-6)


def test_dropout_only_in_training_mode():
    torch.manual_seed(0)
    model = SeqClassifier(ModelConfig(hidden=8, layers=2, dropout=0.5))
    x = _x()
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_build_model_validates_config():
    with pytest.raises(ConfigError, match="--cell"):
        build_model(ModelConfig(cell="transformer"))


def test_recurrent_macs_hand_computed():
    # 1-layer bidirectional LSTM, H=64, F=28, 28 steps:
    # 4 gates * 64 * (28 + 64) per step and direction = 23,552; * 28 steps * 2 directions.
    assert recurrent_macs_per_sample(ModelConfig()) == 4 * 64 * 92 * 28 * 2 == 1_318_912
    # 2-layer unidirectional GRU, H=10: layer 1 reads 28 pixels, layer 2 reads 10 features.
    cfg = ModelConfig(cell="gru", hidden=10, layers=2, bidirectional=False)
    assert recurrent_macs_per_sample(cfg) == 3 * 10 * (28 + 10) * 28 + 3 * 10 * (10 + 10) * 28
    # 2-layer bidirectional RNN: layer 2 reads 2H features.
    cfg = ModelConfig(cell="rnn", hidden=5, layers=2)
    assert recurrent_macs_per_sample(cfg, steps=1) == 5 * (28 + 5) * 2 + 5 * (10 + 5) * 2


def test_parameter_count_of_default_model():
    # nn.LSTM per direction: 4H*(F+H) weights + 8H biases; head: 2H*10 + 10.
    h = 64
    expected = 2 * (4 * h * (28 + h) + 8 * h) + 2 * h * 10 + 10
    assert count_parameters(build_model(ModelConfig())) == expected
