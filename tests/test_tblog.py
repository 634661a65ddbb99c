"""``--log tensorboard``: event files read back with TensorBoard's own reader."""

from __future__ import annotations

import builtins
import shutil
from pathlib import Path

import pytest

from conftest import tiny_config
from resume_helpers import fit_tiny
from seqmnist.cli import main
from seqmnist.errors import TrainingInterrupted
from seqmnist.run import read_metrics
from seqmnist.tblog import MISSING_EXTRA, SCALAR_TAGS, write_tensorboard

pytestmark = pytest.mark.usefixtures("torch_one_thread")
pytest.importorskip("tensorboard")


def read_events(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def event_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob("events.out.tfevents.*"))


def assert_curves_are_the_csv(run_dir: Path) -> None:
    """Each epoch of metrics.csv exactly once per tag, with the CSV's values."""
    events = read_events(run_dir)
    rows = read_metrics(run_dir / "metrics.csv")
    for column, tag in SCALAR_TAGS.items():
        expected = [(int(r["epoch"]), r[column]) for r in rows if r[column] is not None]
        if not expected:
            assert tag not in events.Tags()["scalars"]
            continue
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in expected], tag  # no duplicate, no gap
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6), tag
    assert len(event_files(run_dir)) == 1  # in the run's own folder, no time-named subfolder


def test_a_run_logs_curves_test_result_hparams_and_confusion(synthetic_data_dir, tmp_path):
    run = tmp_path / "run"
    summary = fit_tiny(synthetic_data_dir, tiny_config(epochs=2), run, log_to=["tensorboard"])
    assert_curves_are_the_csv(run)
    events = read_events(run)
    assert {"loss/train", "loss/val", "accuracy/val", "lr", "samples_per_s/train"} <= set(
        events.Tags()["scalars"]
    )
    (test_acc,) = events.Scalars("hparam/test_acc")
    assert test_acc.step == 2 and test_acc.value == pytest.approx(summary["test_acc"])
    (image,) = events.Images("confusion_matrix/test")
    assert image.step == 2 and image.width > 100 and image.height > 100
    hparams = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams  # hyperparameters, in this same run
    assert b"model.hidden" in hparams["_hparams_/session_start_info"]


def test_resume_after_a_kill_has_every_epoch_once(synthetic_data_dir, tmp_path):
    """A run stopped in epoch 3, whose event file is then damaged as a kill mid-write leaves it
    and joined by a stray file with the same steps, resumes to curves with each epoch once."""
    run = tmp_path / "run"
    config = tiny_config(epochs=4)

    def stop_in_epoch_3(epoch: int, _images: int) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit_tiny(synthetic_data_dir, config, run, log_to=["tensorboard"], on_batch=stop_in_epoch_3)
    (events,) = event_files(run)
    shutil.copy(events, run / (events.name + ".2"))  # the same steps again
    events.write_bytes(events.read_bytes()[:-7])  # cut inside the last record
    fit_tiny(synthetic_data_dir, config, run, resume=True, log_to=["tensorboard"])
    assert_curves_are_the_csv(run)
    assert [e.step for e in read_events(run).Scalars("loss/train")] == [1, 2, 3, 4]


def test_log_may_change_on_resume_and_overwrite_removes_old_events(synthetic_data_dir, tmp_path):
    run = tmp_path / "run"
    config = tiny_config(epochs=3)

    def stop_in_epoch_2(epoch: int, _images: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        fit_tiny(synthetic_data_dir, config, run, on_batch=stop_in_epoch_2)
    assert event_files(run) == []
    fit_tiny(synthetic_data_dir, config, run, resume=True, log_to=["tensorboard"])
    assert_curves_are_the_csv(run)  # epoch 1 (logged by nobody) rebuilt from metrics.csv
    fit_tiny(synthetic_data_dir, tiny_config(epochs=1), run, overwrite=True)
    assert event_files(run) == []


def test_runs_side_by_side_one_entry_each(tiny_run, tmp_path):
    """`tensorboard --logdir runs/` on two runs: two entries, named after their folders. Also
    the Python API on a run trained without --log."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    for name in ("a", "b"):
        shutil.copytree(tiny_run, tmp_path / name)
        assert write_tensorboard(tmp_path / name) == tmp_path / name
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    assert sorted(multiplexer.Runs()) == ["a", "b"]
    assert_curves_are_the_csv(tmp_path / "a")
    assert "hparam/test_acc" in read_events(tmp_path / "b").Tags()["scalars"]


def test_missing_tensorboard_is_one_line_and_starts_nothing(
    synthetic_data_dir, tmp_path, capsys, monkeypatch
):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.split(".")[0] == "tensorboard" or name == "torch.utils.tensorboard":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    argv = ["train", "--log", "tensorboard", "--out", str(tmp_path / "run")]
    assert main([*argv, "--data-dir", str(synthetic_data_dir), "--no-download"]) == 1
    assert capsys.readouterr().err == f"seqmnist: error: {MISSING_EXTRA}\n"
    assert not (tmp_path / "run").exists()
