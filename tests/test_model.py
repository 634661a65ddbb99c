"""SeqClassifier: shapes, logits vs probabilities, and what each readout really reads."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import pytest
import torch

from seqmnist.cells.irnn import IRNN_INPUT_STD
from seqmnist.config import CELLS, READOUTS, ModelConfig
from seqmnist.errors import ConfigError
from seqmnist.model import (
    SeqClassifier,
    build_model,
    count_parameters,
    recurrent_macs_per_sample,
)

B, T, F = 3, 28, 28
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _x(seed: int = 0) -> torch.Tensor:
    """Images (B, 28, 28); for the default order (rows) also the sequence (B, T, F)."""
    return torch.randn(B, T, F, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "cell,bidirectional,readout,layers",
    list(itertools.product(CELLS, [True, False], READOUTS, [1, 2])),
)
def test_output_shapes_every_architecture(cell, bidirectional, readout, layers):
    torch.manual_seed(0)
    config = ModelConfig(
        cell=cell, hidden=8, layers=layers, bidirectional=bidirectional, readout=readout
    )
    model = SeqClassifier(config)
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


@pytest.mark.parametrize(
    ("order", "k", "steps", "features"),
    [("rows", 0, 28, 28), ("columns", 0, 28, 28), ("pixels", 16, 49, 16), ("permuted", 4, 196, 4)],
)
def test_every_order_reads_images_into_its_sequence(order, k, steps, features):
    torch.manual_seed(0)
    config = ModelConfig(order=order, pixels_per_step=k, hidden=8, bidirectional=False)
    assert (config.steps, config.features_per_step) == (steps, features)
    model = SeqClassifier(config).eval()
    assert model.rnn.input_size == features
    x = _x()  # images (B, 28, 28)
    seq = model.read(x)
    assert seq.shape == (B, steps, features)
    output, h_n = model.run_rnn(seq)
    assert output.shape == (B, steps, 8) and h_n.shape == (1, B, 8)
    logits = model(x)
    assert logits.shape == (B, 10)
    assert torch.equal(logits, model.head(model.readout(output, h_n)))


def test_columns_model_differs_from_rows_model_with_the_same_weights():
    torch.manual_seed(0)
    rows = SeqClassifier(ModelConfig(hidden=8)).eval()
    columns = SeqClassifier(ModelConfig(order="columns", hidden=8)).eval()
    columns.load_state_dict(rows.state_dict())
    x = _x()
    assert torch.allclose(columns(x), rows(x.transpose(1, 2)), atol=1e-6)
    assert not torch.allclose(columns(x), rows(x), atol=1e-4)


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_irnn_starts_from_identity_and_zero_bias(layers, bidirectional):
    torch.manual_seed(0)
    config = ModelConfig(cell="irnn", hidden=16, layers=layers, bidirectional=bidirectional)
    rnn = SeqClassifier(config).rnn
    assert isinstance(rnn, torch.nn.RNN) and rnn.nonlinearity == "relu"
    names = dict(rnn.named_parameters())
    assert len(names) == 4 * layers * (2 if bidirectional else 1)
    for name, param in names.items():
        if name.startswith("weight_hh"):
            assert torch.equal(param, torch.eye(16)), name
        elif name.startswith("bias"):
            assert torch.equal(param, torch.zeros(16)), name
        else:  # weight_ih: small Gaussian, as the paper
            assert param.abs().max() < 10 * IRNN_INPUT_STD and param.std() > IRNN_INPUT_STD / 2
    plain = SeqClassifier(ModelConfig(cell="rnn", hidden=16)).rnn
    assert plain.nonlinearity == "tanh" and not torch.equal(plain.weight_hh_l0, torch.eye(16))


def test_irnn_with_zero_input_keeps_its_state():
    """Identity recurrence, zero bias, ReLU: a blank image leaves the zero state at zero."""
    model = SeqClassifier(ModelConfig(cell="irnn", hidden=8, order="pixels")).eval()
    output, h_n = model.run_rnn(model.read(torch.zeros(2, 28, 28)))
    assert output.shape == (2, 784, 16) and not output.any() and not h_n.any()


def test_recurrent_macs_follow_the_reading_order():
    # Unidirectional LSTM, H=128: T steps of F pixels.
    for order, k, steps, features in [("rows", 0, 28, 28), ("pixels", 16, 49, 16),
                                      ("permuted", 0, 784, 1)]:  # fmt: skip
        cfg = ModelConfig(order=order, pixels_per_step=k, hidden=128, bidirectional=False)
        assert recurrent_macs_per_sample(cfg) == 4 * 128 * (features + 128) * steps
    # IRNN: one gate block, like a plain RNN.
    cfg = ModelConfig(cell="irnn", order="pixels", hidden=100, bidirectional=False)
    assert recurrent_macs_per_sample(cfg) == 100 * (1 + 100) * 784


def test_legacy_config_with_input_size_builds_a_rows_model_that_loads_strictly():
    legacy = {k: v for k, v in asdict(ModelConfig(hidden=8)).items()
              if k not in ("order", "pixels_per_step", "permutation_seed")}  # fmt: skip
    legacy["input_size"] = 28
    config = ModelConfig.from_dict(legacy)
    assert (config.order, config.steps, config.features_per_step) == ("rows", 28, 28)
    torch.manual_seed(0)
    old = SeqClassifier(ModelConfig(hidden=8)).eval()
    state = old.state_dict()  # what a checkpoint from before reading orders holds: no reader keys
    assert all(key.startswith(("rnn.", "head.")) for key in state)
    new = build_model(config).eval()
    new.load_state_dict(state, strict=True)
    assert torch.equal(new(_x()), old(_x()))
    with pytest.raises(ConfigError, match="input_size must be 28"):
        ModelConfig.from_dict({**legacy, "input_size": 1})


def test_new_orders_do_not_change_the_default_models_weights():
    """The reader holds no parameters and draws no random numbers: same seed, same weights."""
    torch.manual_seed(0)
    rows = SeqClassifier(ModelConfig())
    torch.manual_seed(0)
    permuted = SeqClassifier(ModelConfig(order="permuted", pixels_per_step=28))
    assert all(torch.equal(a, b) for a, b in zip(rows.parameters(), permuted.parameters()))
    assert list(rows.reader.parameters()) == []
