"""Issue 22's views: what the readout costs, the gradient reaching each step, any digit in any
view (--index, --image), text that follows the model's direction count."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import synthetic_digits
from seqmnist import figures, pictures
from seqmnist.cli import main
from seqmnist.config import ModelConfig
from seqmnist.data import load_mnist, to_model_input
from seqmnist.gradients import format_gradients, step_gradients, unroll
from seqmnist.inspect import format_inspection, inspect_model
from seqmnist.model import build_model
from seqmnist.readout_probe import format_readout_probe, readout_probe


def _images(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = synthetic_digits(n, seed=3)
    return to_model_input(torch.from_numpy(images), True), torch.from_numpy(labels).long()


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(hidden=6),
        ModelConfig(cell="gru", hidden=5, layers=2),
        ModelConfig(cell="rnn", hidden=4, bidirectional=False, order="pixels", pixels_per_step=16),
        ModelConfig(cell="irnn", hidden=4, layers=2, bidirectional=False),
    ],
)
def test_unroll_reproduces_the_fused_rnn(config):
    torch.manual_seed(0)
    model = build_model(config).eval()
    x = model.read(_images(3)[0])
    with torch.no_grad():
        output, state = model.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state
        ours, our_h_n, steps = unroll(model.rnn, x)
    torch.testing.assert_close(ours, output, atol=1e-5, rtol=0)
    torch.testing.assert_close(our_h_n, h_n, atol=1e-5, rtol=0)
    assert len(steps) == (2 if config.bidirectional else 1) and len(steps[0]) == config.steps


def test_step_gradients_are_the_autograd_gradients():
    """dL/dx_t from the unrolled run equals autograd through the fused nn.LSTM; dL/dh_t of the
    last step equals the gradient at the readout, where nothing else feeds it."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=6, bidirectional=False)).eval()
    images, labels = _images(4)
    result = step_gradients(model, images, labels)
    x = model.read(images).requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model.head(model.run_rnn(x)[1][-1]), labels)
    loss.backward()
    expected = x.grad.norm(dim=2).mean(dim=0)
    np.testing.assert_allclose(result["input"], expected.numpy(), rtol=1e-4, atol=1e-9)
    assert result["matches_rnn"] and list(result["hidden"]) == ["forward"]
    hidden = result["hidden"]["forward"]
    assert hidden[-1] > hidden[0]  # the readout is at the last step: the gradient starts there
    text = format_gradients(result)
    assert "smallest / largest" in text and "(hidden state)" in text
    assert "backward" not in text and "forward" not in text  # one direction: no direction names


def test_readout_probe_on_the_articles_readout():
    """The article's backward half has read one (blank) step: nearly constant over images, and
    replacing it by its mean changes nothing; the forward half varies."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=8, readout="last")).eval()
    raw, labels = synthetic_digits(40, seed=5)
    raw[:, -1] = 0  # the last row blank, as in 99 % of MNIST
    images = to_model_input(torch.from_numpy(raw), True)
    probe = readout_probe(model, images, torch.from_numpy(labels).long(), blank_last=1.0)
    halves = probe["article_halves"]
    assert halves["backward"]["max_std"] < 1e-6 < halves["forward"]["max_std"]
    assert probe["mean_replaced"]["backward"] == probe["accuracy"]
    assert -1 < probe["h_range"][0] <= probe["h_range"][1] < 1 and probe["c_range"] is not None
    text = format_readout_probe(probe, "last")
    assert "nearly constant" in text and "with its backward half replaced" in text


def test_inspect_text_follows_the_direction_count():
    model = build_model(ModelConfig(hidden=4, bidirectional=False, readout="final"))
    text = format_inspection(inspect_model(model, _images(2)[0]))
    assert "backward" not in text and "its one direction" in text
    assert re.search(r"max \|diff\| = 0 \(\|values\| up to \d", text)


def test_sequence_picture_words_follow_the_model(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        pictures, "_short_sequence_figure", lambda s, o, d: seen.append(d) or _fig()
    )
    for directions in (1, 2, None):
        pictures.sequence_view(np.zeros((28, 28)), 3, tmp_path / "s.png", directions=directions)
    assert seen == [1, 2, None]
    assert pictures.reading_directions_text(49, 1) == "the model reads t = 0 → 48"
    assert "backward t = 48 → 0" in pictures.reading_directions_text(49, 2)


def _fig():
    return figures.pyplot().figure()


def _digit_file(folder: Path, data_dir: Path, index: int) -> Path:
    """A test image as a dark-on-light PNG five times MNIST's size, as a user might draw it."""
    image = load_mnist(data_dir, train=False, download=False).images[index].numpy()
    path = folder / "digit.png"
    Image.fromarray(255 - image).resize((140, 140)).save(path)
    return path


def test_cli_inspect_index_image_picture_and_random_layers(synthetic_data_dir, tmp_path, capsys):
    data = ["--data-dir", str(synthetic_data_dir), "--no-download", "--probe-size", "50"]
    out = tmp_path / "out.png"
    args = ["inspect", "--index", "7", "--layers", "2", "--hidden", "4", "--picture", str(out)]
    assert main([*args, "--gradients", str(tmp_path / "g.png"), *data]) == 0
    text = capsys.readouterr().out
    assert "batch: test image 7 and 7 more" in text and "h_n         (4, 8, 4)" in text
    assert "on 50 test images" in text and "with its backward half replaced" in text
    assert "|dL/dh_t| (backward state)" in text
    assert out.stat().st_size > 0 and (tmp_path / "g.png").stat().st_size > 0
    image = _digit_file(tmp_path, synthetic_data_dir, 2)
    assert main(["inspect", "--image", str(image), "--batch-size", "1", *data]) == 0
    assert f"batch: {image} and 0 more" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--index", "200"], "--index 200 is outside the test split: it has 200 images"),
        (["--index", "1", "--image", "x.png"], "--index and --image both name a digit"),
        (["RUN", "--layers", "2"], "--layers: it describes the random-weights model"),
        (
            ["RUN", "--layers", "2", "--gate-init", "chrono"],
            "--layers, --gate-init: they describe the random-weights model",
        ),
    ],
)
def test_cli_inspect_refusals(args, needle, synthetic_data_dir, tiny_run, capsys):
    args = [str(tiny_run) if a == "RUN" else a for a in args]
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    assert main(["inspect", *args, *data]) == 1
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_cli_show_as_sequence_of_an_image_file(synthetic_data_dir, tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(
        pictures,
        "sequence_view",
        lambda seq, label, out, order="rows", directions=None: drawn.update(seq=seq, label=label),
    )
    image = _digit_file(tmp_path, synthetic_data_dir, 4)
    args = ["show", "--as-sequence", "--image", str(image), "--out", str(tmp_path / "s.png")]
    assert main(args) == 0
    assert drawn["label"] is None and tuple(drawn["seq"].shape) == (28, 28)
    assert int(drawn["seq"].amax()) == 255  # made MNIST-like: light ink on black


def test_evaluate_json_lists_each_mistake_by_test_index(tiny_run, synthetic_data_dir, capsys):
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    assert main(["evaluate", str(tiny_run), "--json", *data]) == 0
    result = json.loads(capsys.readouterr().out)
    test = load_mnist(synthetic_data_dir, train=False, download=False)
    wrong = result["mistakes"]
    assert len(wrong) == round(result["samples"] * (1 - result["accuracy"]))
    for m in wrong:
        assert int(test.labels[m["index"]]) == m["true"] != m["pred"] and 0 < m["confidence"] <= 1


def test_error_gallery_captions_carry_test_indices(tmp_path, monkeypatch):
    captions = []
    monkeypatch.setattr(
        pictures, "_mosaic", lambda im, caps, *a, **k: captions.extend(caps) or _fig()
    )
    images = np.zeros((2, 28, 28), np.uint8)
    pictures.error_gallery(
        images, [3, 5], [8, 6], [0.5, 0.9], tmp_path / "e.png", indices=[17, 4021]
    )
    assert captions == ["#4021  5 → 6 (0.90)", "#17  3 → 8 (0.50)"]


def test_gradient_text_follows_the_articles_readout():
    """With the article's readout (last), the backward direction is read at the last step, not
    at step 0: the text said "backward: step 0" while its own figures peaked at the last step."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=6, readout="last")).eval()
    result = step_gradients(model, *_images(4))
    backward = result["hidden"]["backward"]
    assert backward[-1] > 0 and all(v == 0.0 for v in backward[:-1])  # only the last is read
    text = format_gradients(result)
    assert "backward: step 0" not in text and "exactly 0" in text
    final = step_gradients(build_model(ModelConfig(hidden=6)).eval(), *_images(4))
    assert "backward: step 0" in format_gradients(final)
