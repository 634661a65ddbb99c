"""``seqmnist.explain``: the recomputed states equal PyTorch's, the prefix probabilities end at
the model's own answer, integrated gradients converge; and the API as users call it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seqmnist.attribution import blank_baseline, integrated_gradients
from seqmnist.config import ModelConfig
from seqmnist.explain import ExplainError, prefix_probabilities, prefix_steps
from seqmnist.model import SeqClassifier
from seqmnist.rnn_states import final_states, recurrent_states

pytestmark = pytest.mark.usefixtures("torch_one_thread")

STACKS = [(1, False), (1, True), (2, False), (3, True)]  # (layers, bidirectional)


def _rnn(kind, layers, bidirectional, **extra):
    torch.manual_seed(layers + 10 * bidirectional)
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
    return cls(7, 5, num_layers=layers, bidirectional=bidirectional, batch_first=True, **extra)


def _assert_last_layer_and_h_n_match(states, output, h_n):
    """The recomputed last layer's hidden states are PyTorch's output (B, T, D*H), and the
    final ones its h_n (L*D, B, H)."""
    mine = torch.cat([s["hidden"] for s in states[-1]], dim=2)  # (B, T, D*H), last layer
    torch.testing.assert_close(mine, output, atol=1e-5, rtol=0)
    torch.testing.assert_close(final_states(states), h_n, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("layers", "bidirectional"), STACKS)
def test_recomputed_lstm_gates_reproduce_output_h_n_and_c_n(layers, bidirectional):
    rnn = _rnn("lstm", layers, bidirectional).eval()
    x = torch.randn(3, 9, 7)
    output, (h_n, c_n) = rnn(x)
    states = recurrent_states(rnn, x)
    _assert_last_layer_and_h_n_match(states, output, h_n)
    torch.testing.assert_close(final_states(states, "cell"), c_n, atol=1e-5, rtol=0)
    for layer in states:  # gates are sigmoids; the cell input g a tanh
        for state in layer:
            for gate in ("input", "forget", "output"):
                assert state[gate].min() >= 0 and state[gate].max() <= 1
            assert state["cell_input"].abs().max() <= 1


@pytest.mark.parametrize(("layers", "bidirectional"), STACKS)
def test_recomputed_gru_reproduces_output_and_h_n(layers, bidirectional):
    rnn = _rnn("gru", layers, bidirectional).eval()
    x = torch.randn(2, 6, 7)
    output, h_n = rnn(x)
    states = recurrent_states(rnn, x)
    _assert_last_layer_and_h_n_match(states, output, h_n)
    assert set(states[0][0]) == {"reset", "update", "new", "hidden"}


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_recomputed_plain_rnn_reproduces_output(nonlinearity):
    rnn = _rnn("rnn", 2, True, nonlinearity=nonlinearity).eval()
    x = torch.randn(2, 6, 7)
    output, h_n = rnn(x)
    states = recurrent_states(rnn, x)
    _assert_last_layer_and_h_n_match(states, output, h_n)


def test_every_layer_not_only_the_last_matches_a_stack_built_layer_by_layer():
    """Layer 0 of a stack equals a one-layer LSTM with the same weights (so the check above on
    the last layer's output is not the only one on the inner layers)."""
    deep = _rnn("lstm", 2, True).eval()
    single = nn.LSTM(7, 5, batch_first=True, bidirectional=True)
    single.load_state_dict({k: v for k, v in deep.state_dict().items() if "_l0" in k})
    x = torch.randn(2, 5, 7)
    states = recurrent_states(deep, x)
    torch.testing.assert_close(
        torch.cat([s["hidden"] for s in states[0]], 2), single(x)[0], atol=1e-5, rtol=0
    )


def test_prefix_steps():
    assert prefix_steps(28) == list(range(1, 29))
    assert prefix_steps(784)[:3] == [16, 32, 48] and prefix_steps(784)[-1] == 784
    assert len(prefix_steps(784)) == 49
    assert prefix_steps(196, 28) == list(range(7, 197, 7))
    assert prefix_steps(10, 3) == [4, 8, 10]
    with pytest.raises(ExplainError, match="max_steps"):
        prefix_steps(28, 0)


CONFIGS = [
    ModelConfig(),
    ModelConfig(readout="last", softmax_output=True),
    ModelConfig(readout="mean", layers=2, cell="gru"),
    ModelConfig(order="permuted", pixels_per_step=16, bidirectional=False, hidden=8),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.cell}-{c.readout}-{c.order}")
def test_prefix_probabilities_end_at_the_models_own_answer(config):
    torch.manual_seed(0)
    model = SeqClassifier(config).eval()
    images = torch.randn(3, 28, 28)
    steps = prefix_steps(config.steps, 7)
    probs = prefix_probabilities(model, images, steps)  # (B, S, 10)
    assert probs.shape == (3, len(steps), 10)
    with torch.no_grad():
        out = model(images)
    final = out if config.softmax_output else torch.softmax(out, 1)
    torch.testing.assert_close(probs[:, -1], final, atol=1e-6, rtol=0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, len(steps)), atol=1e-5, rtol=0)
    # an early prefix is a different question: its answer differs from the final one
    assert not torch.allclose(probs[:, 0], probs[:, -1])


def test_a_prefix_is_the_model_run_on_the_truncated_sequence():
    """Bidirectional: the backward direction of prefix t starts at step t-1, so prefix 10 of a
    row-reading model equals the model on an image whose first 10 rows are all it has."""
    torch.manual_seed(1)
    model = SeqClassifier(ModelConfig(hidden=6)).eval()
    image = torch.randn(1, 28, 28)
    probs = prefix_probabilities(model, image, [10])[0, 0]
    with torch.no_grad():
        direct = torch.softmax(model.head(model.readout(*model.run_rnn(image[:, :10]))), 1)[0]
    torch.testing.assert_close(probs, direct)


@pytest.mark.parametrize("normalize", [True, False])
def test_integrated_gradients_converge_from_a_blank_image_in_input_space(normalize):
    torch.manual_seed(2)
    model = SeqClassifier(ModelConfig(hidden=12)).eval()
    baseline = blank_baseline(normalize)
    expected = (0 - 0.1307) / 0.3081 if normalize else 0.0
    assert torch.allclose(baseline, torch.full((1, 28, 28), expected))
    image = baseline.clone()
    image[0, 6:22, 12:16] = (1 - 0.1307) / 0.3081 if normalize else 1.0
    result = integrated_gradients(model, image, target=3, normalize=normalize)
    with torch.no_grad():
        outputs = (model(image)[0, 3], model(baseline)[0, 3])
        gap = float(outputs[0] - outputs[1])
    # result.gap runs both images in one batch, this test one by one: float32 rounds each
    # output to ~1e-7 of its size, which is all of a small gap's 5th digit (a CI machine read
    # -0.00110386 against -0.00110388), so the tolerance follows the outputs, not the gap.
    rounding = 1e-6 * max(1.0, max(abs(float(o)) for o in outputs))
    assert result.gap == pytest.approx(gap, abs=rounding)
    assert abs(result.delta) < 0.05 * abs(gap)
    assert result.pixels.sum() == pytest.approx(gap, abs=0.05 * abs(gap))
    # pixels equal to the baseline get no attribution: IG is (x - x') * mean gradient
    assert np.all(result.pixels[0:6] == 0)


def test_ordinals_in_picture_titles():
    from seqmnist.explain_plots import ordinal

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 16, 21, 22, 28, 112)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "16th", "21st", "22nd", "28th", "112th"
    ]  # fmt: skip
