"""The article's fixes as flags both ways, and --train-size (a seeded, resumable subset)."""

from __future__ import annotations

import json
import signal

import pytest
import torch

from conftest import cli_train, tiny_config
from resume_helpers import assert_same_run, fit_tiny, signal_at
from seqmnist.config import preset_config
from seqmnist.data import Split, train_subset
from seqmnist.errors import ConfigError, TrainingInterrupted
from seqmnist.train import fit


def _split(n: int) -> Split:
    return Split(torch.arange(n).view(n, 1, 1).expand(n, 28, 28).to(torch.uint8), torch.arange(n))


def test_train_subset_is_seeded_and_a_subset():
    full = _split(200)
    a, b, c = (train_subset(full, 50, seed) for seed in (0, 0, 1))
    assert len(a) == 50 and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)
    assert len(set(a.labels.tolist())) == 50  # no image twice
    assert torch.equal(a.images[:, 0, 0].long(), a.labels)  # images stay with their labels
    assert train_subset(full, 0, 0) is full


@pytest.mark.parametrize(
    "flag,field,value",
    [
        ("--softmax-output", "softmax_output", True),
        ("--no-softmax-output", "softmax_output", False),
        ("--no-normalize", "normalize", False),
        ("--eval-test-every-epoch", "eval_test_every_epoch", True),
    ],
)
def test_each_fix_is_a_flag_both_ways(flag, field, value, synthetic_data_dir, tmp_path):
    out = tmp_path / "run"
    assert cli_train(synthetic_data_dir, out, flag, "--no-plots", epochs=1) == 0
    config = json.loads((out / "config.json").read_text())
    assert config.get(field, config["model"].get(field)) is value


def test_seed_preset_without_its_softmax(synthetic_data_dir, tmp_path):
    out = tmp_path / "run"
    extra = ("--preset", "seed", "--no-softmax-output", "--no-plots")
    assert cli_train(synthetic_data_dir, out, *extra, epochs=1) == 0
    model = json.loads((out / "config.json").read_text())["model"]
    assert model["softmax_output"] is False and model["readout"] == "last"
    assert preset_config("seed").model.softmax_output is True  # the preset itself unchanged


def test_train_size_trains_on_that_many_images(synthetic_data_dir, tmp_path):
    lines: list[str] = []
    config = tiny_config(train_size=200, epochs=1)
    fit(config, tmp_path / "run", data_dir=synthetic_data_dir, download=False, log=lines.append)
    assert "200 training images" in lines[0]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train_size"] == 200


def test_train_size_larger_than_the_split_is_refused(synthetic_data_dir, tmp_path):
    with pytest.raises(ConfigError, match="--train-size 550 is more than the 500"):
        fit_tiny(synthetic_data_dir, tiny_config(train_size=550), tmp_path / "run")


def test_train_size_run_resumes_to_the_uninterrupted_result(synthetic_data_dir, tmp_path):
    config = tiny_config(train_size=300)
    fit_tiny(synthetic_data_dir, config, tmp_path / "reference")
    run_dir = tmp_path / "resumed"
    with pytest.raises(TrainingInterrupted):
        fit_tiny(synthetic_data_dir, config, run_dir, on_batch=signal_at(2, 100, signal.SIGINT))
    fit_tiny(synthetic_data_dir, config, run_dir, resume=True)
    assert_same_run(run_dir, tmp_path / "reference")
