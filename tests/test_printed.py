"""The printed-digit bank the default recipe adds to its training split (seqmnist.printed)."""

from __future__ import annotations

import pytest
import torch

from seqmnist.config import PRESETS, TrainConfig, preset_config
from seqmnist.data import Split
from seqmnist.printed import BANK_SIZE, printed_bank, with_printed_digits


def _mnist_like(n: int) -> Split:
    return Split(torch.zeros(n, 28, 28, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64))


def test_the_bank_holds_every_digit_equally_often_in_mnist_form():
    bank, families = printed_bank()
    assert len(bank) == BANK_SIZE
    assert bank.images.dtype == torch.uint8 and tuple(bank.images.shape[1:]) == (28, 28)
    assert torch.bincount(bank.labels, minlength=10).tolist() == [BANK_SIZE // 10] * 10
    # MNIST form: white ink on black, the ink's box about 20 px (the background corners are 0).
    assert int(bank.images[:, :2, :2].max()) == 0
    assert 0.05 < bank.images.float().mean().item() / 255 < 0.3
    assert families and not any(f.startswith(("DejaVu", "Liberation")) for f in families)


def test_the_config_range_is_the_bank_size():
    with pytest.raises(Exception, match="--printed-digits"):
        TrainConfig(printed_digits=BANK_SIZE + 1).validate()
    TrainConfig(printed_digits=BANK_SIZE).validate()


def test_none_asked_leaves_the_split_as_it_is():
    train = _mnist_like(5)
    assert with_printed_digits(train, 0, seed=0) is train


def test_the_draw_is_appended_seeded_and_the_same_on_every_call():
    train = _mnist_like(100)
    a = with_printed_digits(train, 300, seed=7)
    b = with_printed_digits(train, 300, seed=7)
    c = with_printed_digits(train, 300, seed=8)
    assert len(a) == 400 and torch.equal(a.images[:100], train.images)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images[100:], c.images[100:])
    everything = with_printed_digits(train, BANK_SIZE, seed=3)
    bank, _ = printed_bank()
    assert sorted(everything.labels[100:].tolist()) == sorted(bank.labels.tolist())


def test_only_the_default_preset_trains_on_printed_digits():
    assert preset_config("default").printed_digits == BANK_SIZE
    assert all(PRESETS[p].printed_digits == 0 for p in PRESETS if p != "default")


def test_a_config_written_before_printed_digits_existed_trains_on_mnist_alone():
    old = preset_config("default").to_dict()
    del old["printed_digits"]
    assert TrainConfig.from_dict(old).printed_digits == 0


def test_no_benchmark_face_is_a_training_face():
    """bench_foreign scores only faces of families the bank was not drawn from."""
    from PIL import ImageFont

    from foreign import font_files

    _, families = printed_bank()
    for path in font_files():
        assert ImageFont.truetype(path, 20).getname()[0] not in families


def test_a_run_trains_on_mnist_plus_the_printed_digits(tmp_path, synthetic_data_dir):
    from conftest import tiny_config
    from seqmnist.train import fit

    config = tiny_config(epochs=1, printed_digits=700)
    lines: list[str] = []
    fit(config, tmp_path / "run", data_dir=synthetic_data_dir, download=False, log=lines.append)
    expected = 600 - config.val_size + 700  # the synthetic training split plus the draw
    assert any(f"{expected:,} training images" in line for line in lines), lines[:2]


def test_the_script_still_draws_the_bank():
    """scripts/make_printed_digits.py and the checked-in bank agree: its first drawings (face 0,
    digit 0), re-rendered now, match the bank's first images. A newer FreeType or Pillow may
    move anti-aliased edges by a grey level or two, so "match" is a mean difference under 2."""
    import importlib.util
    from pathlib import Path

    from seqmnist.preprocess import to_mnist

    script = Path(__file__).resolve().parent.parent / "scripts" / "make_printed_digits.py"
    spec = importlib.util.spec_from_file_location("make_printed_digits", script)
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    rng = maker.np.random.default_rng(maker.SEED)
    bank, _ = printed_bank()
    for i in range(4):
        drawn = to_mnist(maker.draw(0, maker.FACES[0], rng)).astype(float)
        assert abs(drawn - bank.images[i].numpy()).mean() < 2.0, i
        assert bank.labels[i] == 0


def test_train_size_may_name_every_image_of_the_largest_training_split():
    """--val-size 0 with all 2,700 printed digits trains on 62,700 images; --train-size 62700
    names all of them and must not be refused by a range that forgot the printed digits."""
    full = preset_config("default")
    TrainConfig(**{**full.__dict__, "val_size": 0, "train_size": 60_000 + BANK_SIZE}).validate()
    with pytest.raises(Exception, match="--train-size"):
        TrainConfig(train_size=60_000 + BANK_SIZE + 1).validate()


def test_the_benchmark_leaves_out_installed_faces_of_the_bank_families(monkeypatch):
    """Where fontconfig lists the very files the bank was drawn from (matplotlib's STIX and
    Computer Modern), ``font_files`` drops them and keeps other families (DejaVu)."""
    import subprocess
    from pathlib import Path

    import matplotlib

    import foreign

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    listed = [ttf / name for name in ("cmr10.ttf", "STIXGeneralBol.ttf", "DejaVuSans.ttf")]
    listing = "".join(f"{path}: \n" for path in listed)
    monkeypatch.setattr(
        foreign.subprocess,
        "run",
        lambda *a, **k: subprocess.CompletedProcess(a, 0, stdout=listing, stderr=""),
    )
    foreign.font_files.cache_clear()  # cached for the whole session: list them anew, and after
    try:
        assert foreign.font_files() == (str(ttf / "DejaVuSans.ttf"),)
    finally:
        foreign.font_files.cache_clear()


def test_validation_and_test_splits_hold_no_printed_digit(synthetic_data_dir):
    """The bank joins the training split only: validation is held out of MNIST before the draw
    is appended, and the test split (evaluated every epoch here) is MNIST's own."""
    from conftest import tiny_config
    from seqmnist.runtime import DistInfo, Runtime
    from seqmnist.train import _load_splits

    config = tiny_config(printed_digits=BANK_SIZE, eval_test_every_epoch=True)
    rt = Runtime(torch.device("cpu"), DistInfo(), 1)
    splits = _load_splits(config, rt, synthetic_data_dir, False)
    bank = {bytes(image.numpy()) for image in printed_bank()[0].images}

    def printed_in(split: Split) -> int:
        return sum(bytes(image.numpy()) in bank for image in split.images)

    assert len(splits.train) == 600 - config.val_size + BANK_SIZE
    assert printed_in(splits.train) == BANK_SIZE
    assert len(splits.val) == config.val_size and printed_in(splits.val) == 0
    assert len(splits.test) == 200 and printed_in(splits.test) == 0
