"""Regressions found by reviewing "watch it read" as a learner would use it."""

from __future__ import annotations

import numpy as np
import pytest

from seqmnist.explain import Reading
from seqmnist.rnn_states import LayerStates

pytest.importorskip("matplotlib")

T, H = 28, 4
GATES = ("input", "forget", "cell_input", "output")


def _reading(directions: list[tuple[int, str]]) -> Reading:
    """A hand-made rows reading with LSTM-shaped states for the given (layer, direction)s."""
    rng = np.random.default_rng(0)
    states = [
        LayerStates(
            layer, direction,
            rng.uniform(-1, 1, (T, H)).astype(np.float32),
            {g: rng.uniform(0, 1, (T, H)).astype(np.float32) for g in GATES},
            rng.uniform(-1, 1, (T, H)).astype(np.float32),
        )
        for layer, direction in directions
    ]  # fmt: skip
    probabilities = np.full((T, 10), 0.1, np.float32)
    index = np.arange(784).reshape(28, 28)
    image = np.zeros((28, 28), np.uint8)
    return Reading(image, None, "rows", image.astype(np.float32), index, list(range(1, T + 1)),
                   probabilities, states, None)  # fmt: skip


@pytest.mark.parametrize(
    "directions",
    [[(0, "forward")], [(0, "forward"), (0, "backward")], [(0, "forward"), (1, "forward")]],
    ids=["unidirectional-1-layer", "bidirectional", "unidirectional-2-layers"],
)
def test_states_title_fits_the_picture_and_names_backward_only_when_there_is_one(
    directions, tmp_path, monkeypatch
):
    """A one-column picture (1-layer unidirectional model) cut its title at both sides, and the
    title spoke of backward directions the model did not have."""
    from seqmnist import explain_plots

    seen = {}

    def keep(fig, out_path):
        fig.canvas.draw()
        title = fig._suptitle
        box = title.get_window_extent(fig.canvas.get_renderer())
        seen["inside"] = box.x0 >= 0 and box.x1 <= fig.bbox.width
        seen["text"] = title.get_text()
        __import__("matplotlib.pyplot").pyplot.close(fig)
        return out_path

    monkeypatch.setattr(explain_plots, "save_figure", keep)
    explain_plots.states(_reading(directions), tmp_path / "states.png")
    assert seen["inside"], seen["text"]
    has_backward = any(d == "backward" for _, d in directions)
    assert ("backward" in seen["text"]) == has_backward


def test_a_reading_prints_as_a_short_summary_not_its_arrays():
    """A notebook cell ending in `reading` printed every array (thousands of lines)."""
    text = repr(_reading([(0, "forward"), (0, "backward")]))
    assert len(text.splitlines()) == 1 and len(text) < 300, text
    for part in ("rows", "28 steps", "answer", "layer 0 forward", "layer 0 backward"):
        assert part in text, text


def test_integrated_gradients_stop_at_once_when_the_output_does_not_move():
    """A model whose output is the same for the image and the blank baseline (gap 0, as an
    untrained 784-step model nearly is) doubled its integration steps to 1024, since no delta is
    under 5 % of nothing: minutes of CPU for a picture of zeros."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("captum")
    from seqmnist.attribution import IG_START_STEPS, blank_baseline, integrated_gradients
    from seqmnist.config import ModelConfig
    from seqmnist.model import SeqClassifier

    torch.manual_seed(0)
    model = SeqClassifier(ModelConfig(hidden=4)).eval()
    with torch.no_grad():
        model.head.weight.zero_()  # every logit is its bias: the same for any image
    image = blank_baseline(True).clone()
    image[0, 6:22, 12:16] = (1 - 0.1307) / 0.3081
    result = integrated_gradients(model, image, target=3, normalize=True)
    assert result.gap == 0.0
    assert result.n_steps == IG_START_STEPS
    assert abs(result.delta) < 1e-6
