"""The public API as users call it: ``import seqmnist`` and the names it lists."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import seqmnist
from seqmnist.errors import ConfigError, SeqMnistError

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = dict(epochs=2, batch_size=50, val_size=100, hidden=8, threads=1, augment_shift=0)


def test_every_public_name_resolves_and_no_name_is_hidden_by_a_module():
    for name in seqmnist.__all__:
        assert getattr(seqmnist, name) is not None, name
    # importing the modules of the same family must not replace the functions
    for module in ("explain", "inspect", "train", "config", "api"):
        importlib.import_module(f"seqmnist.{module}")

    assert callable(seqmnist.watch) and callable(seqmnist.fit) and callable(seqmnist.recipe)


def test_import_stays_light():
    code = "import seqmnist, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_recipe_applies_overrides_and_refuses_unknown_fields():
    cfg = seqmnist.recipe("seed", epochs=3, hidden=32)
    assert (cfg.epochs, cfg.model.hidden, cfg.model.readout, cfg.preset) == (3, 32, "last", "seed")
    assert "default" in seqmnist.presets()
    with pytest.raises(ConfigError, match="wings"):
        seqmnist.recipe("default", wings=2)
    with pytest.raises(ConfigError, match="unknown preset"):
        seqmnist.recipe("fastest")


def test_fit_load_predict_watch_and_draw(synthetic_data_dir, tmp_path):
    run = tmp_path / "run"
    summary = seqmnist.fit(
        "default", run, data_dir=synthetic_data_dir, download=False, quiet=True, **TINY
    )
    assert 0 <= summary["test_acc"] <= 1
    assert {p.name for p in run.glob("*.png")} == {"curves.png", "confusion.png", "errors.png"}
    with pytest.raises(SeqMnistError, match="already"):
        seqmnist.fit("default", run, data_dir=synthetic_data_dir, download=False, quiet=True)
    clf = seqmnist.load(run)
    reading = seqmnist.watch(clf, seqmnist.example_image())
    assert reading.image.shape == (28, 28) and reading.image.dtype == np.uint8
    assert reading.probabilities.shape == (28, 10) and reading.steps == list(range(1, 29))
    assert reading.label == clf.predict(seqmnist.example_image()).pop().label
    assert [(s.layer, s.direction) for s in reading.states] == [(0, "forward"), (0, "backward")]
    assert reading.states[0].hidden.shape == (28, 8) and reading.states[0].cell.shape == (28, 8)
    assert reading.sequence.shape == (28, 28) and reading.pixel_index[1, 0] == 28
    written = seqmnist.draw_reading(reading, tmp_path / "pictures", stem="seven")
    names = sorted(p.name for p in written)
    assert names == sorted(
        f"seven-{n}" for n in ("probabilities.png", "states.png", "attributions.png", "reading.gif")
    )
    with Image.open(tmp_path / "pictures" / "seven-reading.gif") as gif:
        assert gif.n_frames == 28
    before = {p: p.stat().st_mtime_ns for p in written}
    with pytest.raises(SeqMnistError, match="already exists"):
        seqmnist.draw_reading(reading, tmp_path / "pictures", stem="seven")
    assert {p: p.stat().st_mtime_ns for p in written} == before


def test_the_run_pictures(tiny_run, synthetic_data_dir, tmp_path):
    test = seqmnist.mnist("test", data_dir=synthetic_data_dir, download=False)
    assert test.images.shape[1:] == (28, 28) and len(test.labels) == len(test.images)
    paths = [
        seqmnist.draw_samples(test.images[:10], test.labels[:10], tmp_path / "s.png"),
        seqmnist.draw_sequence(test.images[0], int(test.labels[0]), tmp_path / "q.png"),
        seqmnist.draw_sequence(test.images[0], 1, tmp_path / "p.png", order="pixels"),
        seqmnist.draw_curves(tiny_run, tmp_path / "c.png"),
        seqmnist.draw_confusion(tiny_run, tmp_path / "m.png"),
        seqmnist.draw_mistakes(tiny_run, tmp_path / "e.png", data_dir=synthetic_data_dir),
    ]
    for path in paths:
        assert Image.open(path).size[0] > 100
    result = seqmnist.evaluate(tiny_run, data_dir=synthetic_data_dir, download=False)
    assert np.array(result["confusion_matrix"]).sum() == len(test.labels)
    with pytest.raises(SeqMnistError, match="split"):
        seqmnist.mnist("validation")


def test_inspect_model_shows_the_articles_claim_false(tiny_run, synthetic_data_dir):
    clf = seqmnist.load(tiny_run)
    test = seqmnist.mnist("test", data_dir=synthetic_data_dir, download=False)
    info = seqmnist.inspect_model(clf, test.images[:4])
    assert info["shapes"]["output"] == [4, 28, 32] and info["shapes"]["h_n"] == [2, 4, 16]
    assert info["all_as_expected"]
    with pytest.raises(SeqMnistError, match="uint8"):
        seqmnist.inspect_model(clf, np.zeros((2, 28, 28), np.float32))


def test_example_image_is_found_from_any_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = seqmnist.example_image()
    assert path.is_absolute() and Image.open(path).size == (160, 200)
    assert "seven" in seqmnist.example_images()
    with pytest.raises(SeqMnistError, match="no example image"):
        seqmnist.example_image("eleven")
    assert os.getcwd() == str(tmp_path)


def test_watch_takes_what_predict_takes_and_refuses_what_it_refuses(tiny_run):
    clf = seqmnist.load(tiny_run)
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255
    from_array = seqmnist.watch(clf, digit, attributions=False)
    from_float = seqmnist.watch(clf, digit / 255.0, attributions=False)
    np.testing.assert_array_equal(from_array.probabilities, from_float.probabilities)
    assert from_array.attribution is None
    with pytest.raises(SeqMnistError, match="blank|empty|no ink"):
        seqmnist.watch(clf, np.zeros((28, 28), np.uint8))
    with pytest.raises(SeqMnistError, match="max_steps"):
        seqmnist.watch(clf, digit, max_steps=0)
    with pytest.raises(SeqMnistError):
        seqmnist.watch(clf, Path("no-such-file.png"))
