"""``seqmnist explain``: the pictures per image, no overwriting, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seqmnist.cli import main

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FILES = ("probabilities.png", "states.png", "attributions.png", "reading.gif")


def _digit(path, column=13):
    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, column : column + 3] = 255
    Image.fromarray(digit).save(path)
    return str(path)


def test_explain_writes_four_pictures_per_image_and_refuses_to_overwrite(
    tiny_run, tmp_path, capsys
):
    one, two = _digit(tmp_path / "one.png"), _digit(tmp_path / "sub-one.png", 8)
    out = tmp_path / "out"
    fast = ["--max-steps", "14"]  # every 2nd row: half the frames to draw
    assert main(["explain", str(tiny_run), one, two, "--out", str(out), *fast]) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("wrote") == 8 and stdout.startswith(one)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}-{f}" for stem in ("one", "sub-one") for f in FILES
    )
    with Image.open(out / "one-reading.gif") as gif:
        assert gif.n_frames == 14
    before = {p: p.read_bytes() for p in out.iterdir()}
    assert main(["explain", str(tiny_run), one, "--out", str(out), *fast]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seqmnist: error: ") and err.count("\n") == 1 and "--overwrite" in err
    assert {p: p.read_bytes() for p in out.iterdir()} == before
    assert main(["explain", str(tiny_run), one, "--out", str(out), "--overwrite", *fast]) == 0


def test_a_bad_image_is_one_error_line_and_the_others_still_get_pictures(
    tiny_run, tmp_path, capsys
):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    good = _digit(tmp_path / "good.png")
    out = tmp_path / "out"
    args = ["--out", str(out), "--no-attributions", "--max-steps", "7"]
    code = main(["explain", str(tiny_run), str(bad), good, *args])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.count("seqmnist: error: ") == 1 and "notes.png" in captured.err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"good-{f}" for f in FILES if f != "attributions.png"
    )


def test_max_steps_is_checked_before_anything(tiny_run, tmp_path, capsys):
    assert (
        main(["explain", str(tiny_run), "x.png", "--max-steps", "0", "--out", str(tmp_path / "o")])
        == 1
    )
    assert "--max-steps" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_duplicate_names_get_numbered(tiny_run, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    first, second = _digit(tmp_path / "d.png"), _digit(tmp_path / "a" / "d.png", 9)
    out = tmp_path / "out"
    args = ["explain", str(tiny_run), first, second, "--out", str(out), "--no-attributions"]
    assert main([*args, "--max-steps", "7"]) == 0
    assert (out / "d-probabilities.png").is_file() and (out / "d-2-probabilities.png").is_file()
    with Image.open(out / "d-reading.gif") as gif:
        assert gif.n_frames == 7


def test_a_test_image_by_index_is_read_exactly_as_mnist_holds_it(
    tiny_run, synthetic_data_dir, tmp_path, capsys
):
    """Issue 22: every view takes --index N (the error gallery's and evaluate --json's names)."""
    from seqmnist.data import load_mnist
    from seqmnist.explain import watch
    from seqmnist.predict import load

    out = tmp_path / "out"
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    args = ["explain", str(tiny_run), "--index", "3", "--out", str(out), "--no-attributions"]
    assert main([*args, "--max-steps", "7", *data]) == 0
    assert capsys.readouterr().out.startswith("test-3 ")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"test-3-{f}" for f in FILES if f != "attributions.png"
    )
    digit = load_mnist(synthetic_data_dir, train=False, download=False).images[3]  # (28, 28)
    reading = watch(load(tiny_run), digit, mnist_form=True, attributions=False)
    assert np.array_equal(reading.image, digit.numpy())  # not prepared again: the very pixels
    size = len(load_mnist(synthetic_data_dir, train=False, download=False))
    assert main(["explain", str(tiny_run), "--index", str(size), *data]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--index {size} is outside the test split" in err
    assert main(["explain", str(tiny_run), "--out", str(tmp_path / "none")]) == 1
    assert "--index N" in capsys.readouterr().err


def test_mnist_form_refuses_what_is_not_an_mnist_digit(tiny_run):
    from seqmnist.errors import SeqMnistError
    from seqmnist.explain import watch
    from seqmnist.predict import load

    with pytest.raises(SeqMnistError, match="uint8 \\(28, 28\\)"):
        watch(load(tiny_run), np.zeros((28, 28), np.float32), mnist_form=True)
