"""A run stuck at chance says so (issue 20, req. 3): one warning line per epoch after MIN_STEPS,
the summary's record of it, and `compare`'s column."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_config
from seqmnist.cli import main
from seqmnist.errors import TrainingInterrupted
from seqmnist.stuck import MIN_STEPS, chance_record, majority_share, stuck_warning
from seqmnist.train import fit

# Batch 1 over the 500 synthetic training images: one epoch is 500 optimisation steps, so the
# warning's MIN_STEPS passes within the first epoch of a model of 4 units (a few seconds).
STEPS_PER_EPOCH = 500
assert STEPS_PER_EPOCH >= MIN_STEPS


def _row(epoch: int, val_acc: float | None, train_acc: float = 0.5) -> dict:
    return {"epoch": epoch, "val_acc": val_acc, "train_acc": train_acc}


def test_majority_share_is_the_accuracy_of_a_constant_guess():
    assert majority_share(torch.tensor([1, 1, 1, 0, 2, 3, 1, 1, 9, 9])) == 0.5


def test_warning_waits_for_min_steps_and_is_one_sided():
    chance = 0.1135
    assert stuck_warning(_row(1, 0.1135), chance, MIN_STEPS - 1) is None  # too early to tell
    line = stuck_warning(_row(1, 0.1135), chance, MIN_STEPS)
    assert line and "\n" not in line and "--gate-init chrono" in line and "--lr" in line
    assert "--grad-clip" in line and "11.35%" in line
    # stuck on a minority class: below chance counts too
    assert stuck_warning(_row(2, 0.0980), chance, 10_000)
    assert stuck_warning(_row(2, 0.1334), chance, 10_000)  # below 11.35 % + 2 points
    assert stuck_warning(_row(2, 0.1336), chance, 10_000) is None
    # without a validation split, training accuracy stands in
    no_val = stuck_warning(_row(3, None, train_acc=0.11), chance, 10_000)
    assert no_val and no_val.startswith("warning: training accuracy 11.00%")
    assert stuck_warning(_row(3, None, train_acc=0.9), chance, 10_000) is None


@pytest.mark.parametrize(
    ("overrides", "suggested", "not_suggested"),
    [
        ({"grad_clip": 0.0}, ["--gate-init chrono", "--lr", "--grad-clip 1"], []),
        ({"grad_clip": 5.0}, ["--grad-clip 1"], []),  # looser than 1: worth tightening
        ({"grad_clip": 1.0}, ["--gate-init chrono", "--lr"], ["--grad-clip"]),
        ({"gate_init": "chrono", "grad_clip": 0.5}, ["--lr"], ["--gate-init", "--grad-clip"]),
        ({"cell": "rnn"}, ["--lr"], ["--gate-init"]),  # no gates to initialise
    ],
)
def test_warning_suggests_only_what_the_run_has_not_tried(overrides, suggested, not_suggested):
    """Found by the issue-20 review: a run already clipping at 1 was told to try --grad-clip 1."""
    line = stuck_warning(_row(1, 0.1135), 0.1135, MIN_STEPS, tiny_config(**overrides))
    assert line and "\n" not in line
    for flag in suggested:
        assert flag in line
    for flag in not_suggested:
        assert flag not in line


def test_chance_record_counts_epochs_at_chance_and_the_epoch_that_left():
    rows = [_row(1, 0.11), _row(2, 0.12), _row(3, 0.40), _row(4, 0.10), _row(5, 0.9)]
    assert chance_record(rows, 0.1135) == {
        "chance_level": 0.1135,
        "epochs_at_chance": 3,
        "left_chance_epoch": 3,
    }
    assert chance_record(rows[:2], 0.1135)["left_chance_epoch"] is None


def _config(lr: float, **overrides):
    return tiny_config(**{"lr": lr, "batch_size": 1, "hidden": 4, "ema_decay": 0.0} | overrides)


def _fit(data_dir, config, run_dir, **kwargs) -> tuple[dict, list[str]]:
    """``fit`` on the synthetic data; the summary and every line it said."""
    lines: list[str] = []
    summary = fit(config, run_dir, data_dir=data_dir, download=False, log=lines.append, **kwargs)
    return summary, lines


def test_a_run_that_cannot_learn_warns_and_records_it(synthetic_data_dir, tmp_path, capsys):
    run = tmp_path / "stuck"
    summary, lines = _fit(synthetic_data_dir, _config(1e-8), run)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 2, lines  # one after each epoch's validation
    assert f"after {STEPS_PER_EPOCH:,} steps" in warnings[0] and "--gate-init chrono" in warnings[0]
    assert summary["epochs_at_chance"] == 2 and summary["left_chance_epoch"] is None
    assert summary == json.loads((run / "summary.json").read_text())
    assert main(["compare", str(run)]) == 0
    assert "2 (never left)" in capsys.readouterr().out


def test_a_quiet_run_still_says_it_is_stuck_on_stderr(synthetic_data_dir, tmp_path, capsys):
    """--quiet silences progress, not the warning (found by the review: a scripted --quiet run
    at chance printed nothing for its whole length)."""
    _, lines = _fit(synthetic_data_dir, _config(1e-8, epochs=1), tmp_path / "quiet", quiet=True)
    err = capsys.readouterr().err
    assert lines == [] and err.count("seqmnist: warning: validation accuracy") == 1, err
    assert "is still at chance" in err and "--gate-init chrono" in err


def test_a_run_that_learns_never_warns(synthetic_data_dir, tmp_path):
    summary, lines = _fit(synthetic_data_dir, _config(3e-3, epochs=1), tmp_path / "ok")
    assert not [line for line in lines if "warning" in line], lines
    assert summary["epochs_at_chance"] == 0 and summary["left_chance_epoch"] == 1


def test_resume_keeps_the_record(synthetic_data_dir, tmp_path):
    """Nothing new in the checkpoint: the record is rebuilt from metrics.csv."""
    run, config = tmp_path / "resumed", _config(1e-8)

    def stop_in_epoch_2(epoch: int, images: int) -> None:
        if epoch == 2 and images == 10:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        _fit(synthetic_data_dir, config, run, on_batch=stop_in_epoch_2)
    summary, lines = _fit(synthetic_data_dir, config, run, resume=True)
    assert summary["epochs_at_chance"] == 2 and summary["left_chance_epoch"] is None
    assert any(f"after {2 * STEPS_PER_EPOCH:,} steps" in line for line in lines), lines
