"""The Python API (seqmnist.load / Classifier.predict) and `seqmnist predict` on people's own
files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import seqmnist
from photos import make_photo
from seqmnist.checkpoint import save_checkpoint
from seqmnist.cli import main
from seqmnist.config import ModelConfig, preset_config
from seqmnist.data import load_mnist, to_model_input
from seqmnist.errors import CheckpointError, SeqMnistError
from seqmnist.images import ImageError
from seqmnist.model import SeqClassifier
from seqmnist.predict import Classifier, Prediction, load


@pytest.fixture(scope="module")
def clf(real_run: Path) -> Classifier:
    return seqmnist.load(real_run)


@pytest.fixture(scope="module")
def test_split(real_data_dir: Path):
    return load_mnist(real_data_dir, train=False, download=False)


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory, test_split) -> dict[str, tuple[Path, int]]:
    """Photos of 6 real test digits as files of different formats: name -> (path, label)."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(5)
    files = {}
    for i, (kind, ext) in enumerate(
        [
            ("rgb", "png"),
            ("jpeg", "jpg"),
            ("grey", "bmp"),
            ("rgba-sheet", "png"),
            ("chalkboard", "webp"),
            ("grey", "tiff"),
        ]
    ):
        digit, label = test_split.images[i].numpy(), int(test_split.labels[i])
        path = folder / f"digit{i}.{ext}"
        make_photo(digit, kind, rng).save(path)
        files[path.name] = (path, label)
    return files


# --- loading ---------------------------------------------------------------------------------


def test_load_run_directory_and_checkpoint(real_run, clf):
    summary = json.loads((real_run / "summary.json").read_text())
    assert isinstance(clf, Classifier)
    assert clf.name == real_run.name
    assert clf.path == real_run / "checkpoint_best.pt"
    assert clf.test_accuracy == pytest.approx(summary["test_acc"])
    assert clf.config.normalize is True and clf.parameters > 10_000
    assert not clf.model.training
    same = load(real_run / "checkpoint_last.pt")
    assert same.name == real_run.name and same.path.name == "checkpoint_last.pt"
    with pytest.raises(CheckpointError):
        load(real_run / "missing.pt")


def test_import_seqmnist_stays_light():
    code = "import sys, seqmnist; assert 'torch' not in sys.modules and 'load' in seqmnist.__all__"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predict_mnist_matches_training_accuracy(clf, test_split):
    """All 10,000 test digits through the API: the accuracy `seqmnist train` reported, exactly
    (so inputs are normalised as in training)."""
    probs = clf.predict_mnist(test_split.images)
    assert probs.shape == (10_000, 10)
    assert torch.allclose(probs.sum(1), torch.ones(10_000), atol=1e-5)
    accuracy = (probs.argmax(1) == test_split.labels).float().mean().item()
    assert accuracy == pytest.approx(clf.test_accuracy, abs=1e-4)


# --- every input type ------------------------------------------------------------------------


def test_predict_every_input_type(clf, test_split, photo_files):
    digit, label = test_split.images[0].numpy(), int(test_split.labels[0])  # a 7
    photo = make_photo(digit, "rgb", np.random.default_rng(6))
    path, _ = photo_files["digit0.png"]
    inputs = {
        "PIL image": photo,
        "PIL grey": photo.convert("L"),
        "array uint8 (28, 28)": digit,
        "array float (28, 28)": digit.astype(np.float32) / 255,
        "array (H, W, 3)": np.asarray(photo),
        "array (H, W, 4)": np.asarray(photo.convert("RGBA")),
        "path str": str(path),
        "Path": path,
        "bytes": path.read_bytes(),
        "tensor uint8 (28, 28)": torch.from_numpy(digit),
        "tensor float (28, 28)": torch.from_numpy(digit).float() / 255,
    }
    for what, x in inputs.items():
        (p,) = clf.predict(x)
        assert isinstance(p, Prediction)
        assert p.label == label, what
        assert p.image.shape == (28, 28) and p.image.dtype == np.uint8
    (p,) = clf.predict(torch.from_numpy(digit))
    assert np.array_equal(p.image, digit)  # MNIST form: the model sees the digit itself
    assert p.source is None and clf.predict(str(path))[0].source == str(path)


def test_predict_lists_and_batches(clf, test_split, photo_files):
    images, labels = test_split.images[:8], test_split.labels[:8].tolist()
    assert [p.label for p in clf.predict(images)] == labels  # tensor (B, 28, 28)
    assert [p.label for p in clf.predict(images.numpy())] == labels  # array (B, 28, 28)
    assert [p.label for p in clf.predict(images.float() / 255)] == labels
    mixed = clf.predict([str(path) for path, _ in photo_files.values()] + [images[0].numpy()])
    assert [p.label for p in mixed] == [label for _, label in photo_files.values()] + [labels[0]]
    assert [p.source for p in mixed][:-1] == [str(path) for path, _ in photo_files.values()]
    assert clf.predict([]) == []


def test_prediction_fields(clf, test_split):
    (p,) = clf.predict(test_split.images[1], top_k=4)
    assert len(p.probabilities) == 10 and sum(p.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert len(p.top_k) == 4 and p.top_k[0][0] == p.label == int(np.argmax(p.probabilities))
    assert [q for _, q in p.top_k] == sorted((q for _, q in p.top_k), reverse=True)
    assert json.loads(json.dumps(p.to_dict()))["label"] == p.label
    for bad in (0, 11):
        with pytest.raises(SeqMnistError, match="top_k"):
            clf.predict(test_split.images[1], top_k=bad)


def test_preprocess_returns_what_the_model_sees(clf, photo_files):
    path, _ = photo_files["digit1.jpg"]
    seen = clf.preprocess(path)
    assert seen.shape == (28, 28) and seen.dtype == np.uint8
    assert np.array_equal(clf.predict(path)[0].image, seen)


def test_predict_errors_name_the_input(clf, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    with pytest.raises(ImageError, match=r"blank\.png.*no ink"):
        clf.predict(blank)
    with pytest.raises(ImageError, match=r"nothing\.png.*no such file"):
        clf.predict(tmp_path / "nothing.png")
    with pytest.raises(ImageError, match="upload"):
        clf.predict(b"not an image")
    with pytest.raises(ImageError, match="cannot predict on a dict"):
        clf.predict({"a": 1})
    with pytest.raises(ImageError, match="no ink"):  # int64 pixels are accepted (0..255)
        clf.predict(torch.zeros(28, 28, dtype=torch.int64))


def test_softmax_output_model_is_not_softmaxed_twice(tmp_path):
    """A seed-preset model already returns probabilities; the API must pass them through."""
    torch.manual_seed(0)
    model_config = ModelConfig(hidden=8, readout="last", softmax_output=True)
    model = SeqClassifier(model_config)
    config = preset_config("seed")
    config.model = model_config
    save_checkpoint(
        tmp_path / "seed.pt",
        {
            "model_config": vars(model_config),
            "train_config": config.to_dict(),
            "model_state": model.state_dict(),
            "epoch": 1,
        },
    )
    clf = load(tmp_path / "seed.pt")
    assert clf.config.normalize is False and clf.name == "seed"
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    with torch.inference_mode():
        expected = model.eval()(to_model_input(images, normalize=False))
    assert torch.allclose(clf.predict_mnist(images), expected, atol=1e-6)


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_predict_files_and_folders(real_run, photo_files, tmp_path, capsys):
    folder = next(iter(photo_files.values()))[0].parent
    before = sorted(p.name for p in folder.iterdir())
    threads = torch.get_num_threads()
    assert main(["predict", str(real_run), str(folder)]) == 0
    assert torch.get_num_threads() == threads  # restored after the one-thread run
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert err == "" and len(lines) == len(photo_files)
    names = sorted(photo_files)  # folders are walked in sorted order
    for line, name in zip(lines, names):
        path, label = photo_files[name]
        assert line.startswith(f"{path}  {label}  (")
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written

    out_dir = tmp_path / "seen"
    assert (
        main(
            [
                "predict",
                str(real_run),
                str(photo_files["digit0.png"][0]),
                "--json",
                "--top-k",
                "2",
                "--save-preprocessed",
                str(out_dir),
            ]
        )
        == 0
    )
    (result,) = json.loads(capsys.readouterr().out)
    assert result["label"] == photo_files["digit0.png"][1] and len(result["top_k"]) == 2
    saved = Image.open(out_dir / "digit0.png.png")  # the name keeps the extension
    assert saved.size == (28, 28) and saved.mode == "L"


def test_cli_predict_prints_names_the_terminal_cannot_encode(real_run, photo_files, tmp_path):
    """A file name of bytes that are not UTF-8 (or a Chinese name under a Latin-1 locale) ended
    the folder's predictions with a UnicodeEncodeError traceback."""
    digit, label = photo_files["digit0.png"]
    folder = tmp_path / "names"
    folder.mkdir()
    (folder / "七.png").write_bytes(digit.read_bytes())
    with open(os.path.join(os.fsencode(folder), b"bad\xff.png"), "wb") as f:
        f.write(digit.read_bytes())
    for encoding in ("utf-8", "latin-1"):
        done = subprocess.run(
            [sys.executable, "-m", "seqmnist", "predict", str(real_run), str(folder)],
            capture_output=True,
            env={**os.environ, "PYTHONIOENCODING": encoding},
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        lines = done.stdout.decode(encoding).splitlines()
        assert len(lines) == 2 and all(f"  {label}  (" in line for line in lines), lines
        assert b"Traceback" not in done.stderr


def test_cli_predict_bad_files(real_run, photo_files, tmp_path, capsys):
    good, label = photo_files["digit0.png"]
    bad = {
        "empty.png": b"",
        "text.png": b"hello, not an image\n",
        "truncated.png": good.read_bytes()[:300],
        "huge.png": bytes.fromhex("89504e470d0a1a0a0000000d49484452000186a0000186a00800000000")
        + b"\x00" * 4
        + bytes.fromhex("0000000049454e44ae426082"),  # claims 100,000 x 100,000 (bad CRC)
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    Image.new("RGB", (80, 80), "white").save(tmp_path / "blank.png")
    args = [str(good)] + [str(tmp_path / n) for n in [*bad, "blank.png", "missing.png"]]

    assert main(["predict", str(real_run), *args]) == 1
    out, err = capsys.readouterr()
    assert out.strip().splitlines() == [out.strip().splitlines()[0]] and out.startswith(
        f"{good}  {label}"
    )
    err_lines = err.strip().splitlines()
    assert len(err_lines) == len(bad) + 2  # one line per bad file, no traceback
    for line, name in zip(err_lines, [*bad, "blank.png", "missing.png"]):
        assert line.startswith("seqmnist: error: ") and name in line, line
    assert "Traceback" not in err

    assert main(["predict", str(real_run), *args, "--json"]) == 1
    results = json.loads(capsys.readouterr().out)
    assert [("error" in r) for r in results] == [False] + [True] * (len(bad) + 2)
    assert results[0]["label"] == label


def test_cli_predict_bad_model_and_flags(real_run, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope"), "x.png"]) == 1
    assert "no such run directory" in capsys.readouterr().err
    assert main(["predict", str(real_run), "x.png", "--top-k", "0"]) == 1
    assert "--top-k" in capsys.readouterr().err
    (tmp_path / "empty-folder").mkdir()
    assert main(["predict", str(real_run), str(tmp_path / "empty-folder")]) == 1
    assert "no image files" in capsys.readouterr().err


def test_a_damaged_summary_does_not_stop_a_good_checkpoint_from_classifying(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "summary.json").write_text("{ not json")
    clf = load(run, device="cpu")
    assert clf.test_accuracy is None  # shown as unknown, not an error
    one = np.zeros((28, 28), dtype=np.uint8)
    one[4:24, 13:16] = 255  # a vertical stroke
    assert len(clf.predict([one, one])) == 2


# --- lists with bad images, argument checks ----------------------------------------------------


def test_a_bad_image_in_a_list_gives_an_error_result(clf, test_split, photo_files, tmp_path):
    from seqmnist.predict import FailedPrediction

    blank = tmp_path / "blank.png"
    Image.new("L", (64, 64), 255).save(blank)
    good_path, good_label = photo_files["digit0.png"]
    digit, label = test_split.images[1].numpy(), int(test_split.labels[1])
    items = [str(good_path), str(blank), digit, tmp_path / "missing.png", {"not": "an image"}]
    results = clf.predict(items)
    assert [r.ok for r in results] == [True, False, True, False, False]
    assert results[0].label == good_label and results[2].label == label
    assert results[0].source == str(good_path) and results[1].source == str(blank)
    bad = results[1]
    assert isinstance(bad, FailedPrediction) and isinstance(bad.error, ImageError)
    assert "blank.png" in str(bad.error) and "no ink" in str(bad.error)
    assert bad.to_dict() == {"source": str(blank), "error": str(bad.error)}
    with pytest.raises(ImageError, match="no ink"):
        _ = bad.label  # using a failed result as a prediction fails loudly
    assert "no such file" in str(results[3].error) and "dict" in str(results[4].error)
    assert [r.label for r in clf.predict(items[::2][:2])] == [good_label, label]

    with pytest.raises(ImageError, match=r"blank\.png.*no ink"):
        clf.predict(items, errors="raise")
    with pytest.raises(ImageError, match="no ink"):
        clf.predict(blank)  # a single image: nothing else to return, so it raises
    (one,) = clf.predict(blank, errors="item")
    assert not one.ok


def test_wrong_argument_types_are_library_errors(clf, test_split):
    image = test_split.images[0]
    for top_k in ("3", 2.0, None, True, [3]):
        with pytest.raises(SeqMnistError, match="top_k") as info:
            clf.predict(image, top_k=top_k)
        assert "\n" not in str(info.value)
    assert len(clf.predict(image, top_k=np.int64(2))[0].top_k) == 2
    with pytest.raises(SeqMnistError, match="errors"):
        clf.predict(image, errors="ignore")
    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = image.numpy(), image.numpy()[:20]
    with pytest.raises(ImageError, match="dtype object"):
        clf.predict(objects)
    with pytest.raises(ImageError, match="dtype"):
        clf.predict(np.array([["a", "b"], ["c", "d"]]))
    (failed,) = clf.predict([np.full((28, 28), "x", dtype=object)])
    assert not failed.ok and "dtype" in str(failed.error)
