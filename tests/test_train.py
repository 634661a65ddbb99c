"""fit(): determinism, the run directory, model selection, resume, interruption and divergence."""

from __future__ import annotations

import csv
import json
import math
import signal

import pytest
import torch

from conftest import cli_train, tiny_config
from resume_helpers import (
    RESUME_OVERRIDES,
    assert_same_state,
    final_state,
    fit_tiny,
    metric_rows,
    signal_at,
)
from seqmnist.checkpoint import load_checkpoint
from seqmnist.cli import main
from seqmnist.config import TrainConfig, apply_overrides, preset_config
from seqmnist.errors import ConfigError, TrainingDiverged, TrainingInterrupted
from seqmnist.model import SeqClassifier
from seqmnist.run import BEST_NAME, LAST_NAME, METRIC_COLUMNS, RunDir, read_metrics
from seqmnist.runtime import DistInfo, Runtime
from seqmnist.state import TrainState

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_run_directory_contents(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {"config.json", "metrics.csv", LAST_NAME, BEST_NAME, "summary.json"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    config = TrainConfig.from_dict(json.loads((tiny_run / "config.json").read_text()))
    assert config == tiny_config(epochs=3)
    rows = read_metrics(tiny_run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1.0, 2.0, 3.0]
    with (tiny_run / "metrics.csv").open() as f:
        assert next(csv.reader(f)) == list(METRIC_COLUMNS)
    for r in rows:
        assert 0 <= r["train_acc"] <= 1 and 0 <= r["val_acc"] <= 1 and r["train_loss"] > 0
        assert r["test_acc"] is None  # the test set is not touched during training
        assert r["epoch_seconds"] > 0 and r["samples_per_s"] > 0
    summary = json.loads((tiny_run / "summary.json").read_text())
    for key in (
        "test_acc",
        "test_loss",
        "test_samples",
        "best_epoch",
        "best_val_acc",
        "epochs",
        "train_seconds",
        "total_seconds",
        "samples_per_s",
        "parameters",
        "per_class",
        "confusion_matrix",
        "device",
        "world_size",
        "global_batch",
        "versions",
    ):
        assert key in summary, key
    assert summary["test_samples"] == 200 and summary["epochs"] == 3
    assert summary["world_size"] == 1 and summary["global_batch"] == 50
    assert summary["versions"]["torch"] == torch.__version__
    matrix = torch.tensor(summary["confusion_matrix"])
    assert matrix.shape == (10, 10) and int(matrix.sum()) == 200
    assert summary["test_acc"] == pytest.approx(float(matrix.diag().sum()) / 200)
    assert summary["train_seconds"] == pytest.approx(
        sum(r["epoch_seconds"] for r in rows), rel=1e-3, abs=1e-3
    )
    assert load_checkpoint(tiny_run / LAST_NAME)["epoch"] == 3
    # it learned the synthetic digits
    assert summary["test_acc"] >= 0.9


def test_best_checkpoint_is_the_best_validation_epoch(tiny_run):
    rows = read_metrics(tiny_run / "metrics.csv")
    best_acc = max(r["val_acc"] for r in rows)
    first_best = next(int(r["epoch"]) for r in rows if r["val_acc"] == best_acc)
    best = load_checkpoint(tiny_run / BEST_NAME)
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert best["epoch"] == first_best == summary["best_epoch"]
    assert best["best_val_acc"] == pytest.approx(best_acc, abs=1e-6)
    assert summary["best_val_acc"] == pytest.approx(best_acc, abs=1e-6)


def test_best_epoch_selection_with_scripted_accuracies():
    """Validation accuracy 0.5, 0.9, 0.7: epochs 1 and 2 improve, epoch 2 stays the best."""
    runtime = Runtime(torch.device("cpu"), DistInfo(), threads=1)
    state = TrainState(tiny_config(epochs=3), runtime, steps_per_epoch=10)
    improved = [
        state.finish_epoch(epoch, 1.0, acc) for epoch, acc in enumerate([0.5, 0.9, 0.7], start=1)
    ]
    assert improved == [True, True, False]
    assert (state.best_epoch, state.best_val_acc, state.epoch, state.train_seconds) == (
        2,
        0.9,
        3,
        3.0,
    )
    # without a validation split every epoch is the newest best
    assert state.finish_epoch(4, 1.0, None) and state.best_epoch == 4


def test_train_state_round_trips_through_its_state_dict():
    runtime = Runtime(torch.device("cpu"), DistInfo(), threads=1)
    a = TrainState(tiny_config(), runtime, steps_per_epoch=10)
    a.finish_epoch(1, 2.5, 0.8)
    b = TrainState(tiny_config(seed=1), runtime, steps_per_epoch=10)
    with pytest.raises(ConfigError, match="different config"):
        b.load_state_dict(a.state_dict())
    c = TrainState(tiny_config(), runtime, steps_per_epoch=10)
    torch.manual_seed(123)  # load_state_dict must restore the RNG too
    c.load_state_dict(a.state_dict())
    assert (c.epoch, c.best_epoch, c.best_val_acc, c.train_seconds) == (1, 1, 0.8, 2.5)
    assert_same_state(c.model.state_dict(), a.model.state_dict())
    assert torch.equal(torch.get_rng_state(), a.state_dict()["rng_state"]["cpu"])


def test_same_config_gives_identical_runs(reference_run, synthetic_data_dir, tmp_path):
    again = tmp_path / "again"
    fit_tiny(synthetic_data_dir, tiny_config(**RESUME_OVERRIDES), again)
    assert metric_rows(again) == metric_rows(reference_run)
    assert_same_state(final_state(again), final_state(reference_run))
    a = json.loads((again / "summary.json").read_text())
    b = json.loads((reference_run / "summary.json").read_text())
    assert (a["test_acc"], a["test_loss"], a["best_epoch"]) == (
        b["test_acc"],
        b["test_loss"],
        b["best_epoch"],
    )


@pytest.mark.parametrize(
    "interrupted_epoch,images,signum", [(1, 50, signal.SIGINT), (2, 250, signal.SIGTERM)]
)
def test_resume_after_interruption_equals_uninterrupted_run(
    interrupted_epoch, images, signum, reference_run, synthetic_data_dir, tmp_path
):
    run_dir = tmp_path / "resumed"
    config = tiny_config(**RESUME_OVERRIDES)
    with pytest.raises(TrainingInterrupted) as info:
        fit_tiny(
            synthetic_data_dir,
            config,
            run_dir,
            on_batch=signal_at(interrupted_epoch, images, signum),
        )
    done = (
        interrupted_epoch - 1
    )  # epoch 1 interrupted: the epoch-0 checkpoint is there to resume from
    assert info.value.epoch == done and info.value.run_dir == str(run_dir)
    assert f"seqmnist train --resume {run_dir}" in str(info.value)
    assert load_checkpoint(run_dir / LAST_NAME)["epoch"] == done
    assert len(read_metrics(run_dir / "metrics.csv")) == done
    assert not (run_dir / "summary.json").exists()
    # A kill between writing the next epoch's metrics row and its checkpoint:
    # the resume drops that row.
    RunDir(run_dir).append_metrics({"epoch": interrupted_epoch, "train_loss": 9.0, "val_acc": 0.1})

    summary = fit_tiny(synthetic_data_dir, config, run_dir, resume=True)
    assert metric_rows(run_dir) == metric_rows(reference_run)
    assert_same_state(final_state(run_dir), final_state(reference_run))
    assert_same_state(
        load_checkpoint(run_dir / BEST_NAME)["model_state"],
        load_checkpoint(reference_run / BEST_NAME)["model_state"],
    )
    reference = json.loads((reference_run / "summary.json").read_text())
    assert (
        summary["test_acc"] == reference["test_acc"]
        and summary["best_epoch"] == reference["best_epoch"]
    )
    # wall time adds up over both sessions, so it can never be less than the training time
    assert summary["total_seconds"] >= summary["train_seconds"] > 0


def test_resume_refuses_a_changed_config_and_a_finished_run_resumes_to_its_result(
    reference_run, synthetic_data_dir, tmp_path
):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    with pytest.raises(ConfigError, match="different config"):
        fit_tiny(
            synthetic_data_dir,
            tiny_config(**{**RESUME_OVERRIDES, "epochs": 4}),
            run_dir,
            resume=True,
        )
    # device and threads are not part of the recipe
    summary = fit_tiny(
        synthetic_data_dir,
        tiny_config(**RESUME_OVERRIDES, device="cpu", threads=1),
        run_dir,
        resume=True,
    )
    assert metric_rows(run_dir) == metric_rows(reference_run)
    assert (
        summary["test_acc"] == json.loads((reference_run / "summary.json").read_text())["test_acc"]
    )
    # a finished run is left as it was: its summary is not rewritten
    assert (run_dir / "summary.json").read_bytes() == (reference_run / "summary.json").read_bytes()


def test_seed_preset_evaluates_test_every_epoch_without_validation(
    synthetic_data_dir, tmp_path, capsys
):
    config = apply_overrides(
        preset_config("seed"), {"epochs": 2, "hidden": 8, "threads": 1, "batch_size": 100}
    )
    run_dir = tmp_path / "seed"
    summary = fit_tiny(synthetic_data_dir, config, run_dir)
    rows = read_metrics(run_dir / "metrics.csv")
    assert len(rows) == 2
    assert all(r["val_acc"] is None and r["test_acc"] is not None for r in rows)
    # no validation split: the last epoch is "best", and the final test score is that epoch's
    assert summary["best_epoch"] == 2 and summary["best_val_acc"] is None
    assert summary["test_acc"] == pytest.approx(rows[-1]["test_acc"], abs=1e-6)
    assert summary["global_batch"] == 100
    assert (
        main(
            [
                "evaluate",
                str(run_dir),
                "--split",
                "val",
                "--data-dir",
                str(synthetic_data_dir),
                "--no-download",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert (
        err.startswith("seqmnist: error: ")
        and "no validation split" in err
        and "--split test" in err
    )


def poison_the_model(monkeypatch, value: float) -> None:
    """Every SeqClassifier's logits become ``value`` (what a diverged model computes)."""
    forward = SeqClassifier.forward
    monkeypatch.setattr(SeqClassifier, "forward", lambda self, x: forward(self, x) * value)


def test_nan_loss_stops_with_training_diverged(synthetic_data_dir, tmp_path, monkeypatch):
    poison_the_model(monkeypatch, math.nan)
    with pytest.raises(TrainingDiverged, match="nan.*--lr"):
        fit_tiny(synthetic_data_dir, tiny_config(), tmp_path / "run")
    assert not (tmp_path / "run" / BEST_NAME).exists()


def test_cli_nan_loss_exits_1_with_a_clear_message(
    synthetic_data_dir, tmp_path, capsys, monkeypatch
):
    poison_the_model(monkeypatch, math.inf)
    assert cli_train(synthetic_data_dir, tmp_path / "run", "--no-plots") == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "seqmnist: error: the training loss became nan"
    ), err
    assert "--lr" in lines[0] and "Traceback" not in err


def test_cli_interrupt_exits_130_and_resume_finishes(
    synthetic_data_dir, tmp_path, capsys, monkeypatch
):
    import seqmnist.train

    real_fit = seqmnist.train.fit
    monkeypatch.setattr(
        seqmnist.train, "fit", lambda *a, **kw: real_fit(*a, **kw, on_batch=signal_at(2, 100))
    )
    run_dir = tmp_path / "run"
    assert cli_train(synthetic_data_dir, run_dir, "--no-plots") == 130
    err = capsys.readouterr().err
    assert f"seqmnist train --resume {run_dir}" in err and "Traceback" not in err
    monkeypatch.setattr(seqmnist.train, "fit", real_fit)

    # changed flags are refused, naming them
    code = main(["train", "--resume", str(run_dir), "--epochs", "5", "--lr", "0.1"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqmnist: error: --resume") and "--epochs" in err and "--lr" in err
    assert main(["train", "--resume", str(run_dir), "--preset", "seed"]) == 1
    assert "--preset" in capsys.readouterr().err

    # device and threads may change; the run then finishes
    code = main(
        [
            "train",
            "--resume",
            str(run_dir),
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
            "--threads",
            "1",
            "--quiet",
            "--no-plots",
        ]
    )
    assert code == 0
    assert [r["epoch"] for r in read_metrics(run_dir / "metrics.csv")] == [1.0, 2.0]
    assert (run_dir / "summary.json").is_file()


def test_resume_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seqmnist: error: ") and "config.json" in err


def test_resume_before_the_first_checkpoint_says_to_start_again(tmp_path, capsys):
    """A run killed before its first checkpoint has only config.json: the error comes before any
    data is read (the data folder here does not even exist)."""
    (tmp_path / "config.json").write_text(json.dumps(tiny_config().to_dict()))
    argv = ["train", "--resume", str(tmp_path), "--data-dir", str(tmp_path / "nothing")]
    assert main([*argv, "--no-download"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no checkpoint_last.pt to resume from" in err
    assert "start the run again" in err


def test_val_size_larger_than_the_data(synthetic_data_dir, tmp_path):
    with pytest.raises(ConfigError, match="--val-size 600"):
        fit_tiny(synthetic_data_dir, tiny_config(val_size=600), tmp_path / "run")


def test_unwritable_run_directory_is_a_one_line_error(synthetic_data_dir, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert cli_train(synthetic_data_dir, tmp_path / "a-file" / "run", "--no-plots") == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "seqmnist: error: cannot create the run directory"
    ), err
    assert str(tmp_path / "a-file" / "run") in lines[0] and "--out" in lines[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", ["off", "fp16"])
def test_resume_on_cuda_equals_uninterrupted_run(amp, synthetic_data_dir, tmp_path, monkeypatch):
    """On CUDA the checkpoint's RNG states are loaded onto the GPU; restoring them must still work,
    and with fp16 the loss scale must be restored too."""
    config = tiny_config(**RESUME_OVERRIDES, device="cuda", amp=amp)
    fit_tiny(synthetic_data_dir, config, tmp_path / "full")
    with pytest.raises(TrainingInterrupted):
        fit_tiny(synthetic_data_dir, config, tmp_path / "resumed", on_batch=signal_at(2, 100))
    fit_tiny(synthetic_data_dir, config, tmp_path / "resumed", resume=True)
    # cuDNN's RNN kernels need not be bitwise deterministic: close, not equal
    resumed, full = (
        read_metrics(tmp_path / "resumed" / "metrics.csv"),
        read_metrics(tmp_path / "full" / "metrics.csv"),
    )
    assert len(resumed) == len(full) == 3
    for r, f in zip(resumed, full):
        assert r["train_loss"] == pytest.approx(f["train_loss"], rel=1e-2)
        assert abs(r["val_acc"] - f["val_acc"]) <= 0.02
    a, b = final_state(tmp_path / "resumed"), final_state(tmp_path / "full")
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-2), name


def test_largest_seed_trains(synthetic_data_dir, tmp_path):
    summary = fit_tiny(
        synthetic_data_dir, tiny_config(epochs=1, seed=2**63 - 1, augment_shift=1), tmp_path / "run"
    )
    assert summary["epochs"] == 1


def test_augmentation_changes_training_but_not_evaluation(
    reference_run, synthetic_data_dir, tmp_path
):
    plain = tmp_path / "plain"
    fit_tiny(synthetic_data_dir, tiny_config(**{**RESUME_OVERRIDES, "augment_shift": 0}), plain)
    a, b = metric_rows(plain), metric_rows(reference_run)
    assert [r["train_loss"] for r in a] != [r["train_loss"] for r in b]


def test_resume_with_another_number_of_processes_is_refused(
    reference_run, synthetic_data_dir, tmp_path
):
    import shutil

    from seqmnist.checkpoint import save_checkpoint

    run_dir = tmp_path / "run"
    shutil.copytree(reference_run, run_dir)
    data = load_checkpoint(run_dir / LAST_NAME)
    data["world_size"] = 2  # as if written under torchrun --nproc_per_node=2
    save_checkpoint(run_dir / LAST_NAME, {k: v for k, v in data.items() if k != "path"})
    with pytest.raises(ConfigError, match="trained by 2 process.*--nproc_per_node=2"):
        fit_tiny(synthetic_data_dir, tiny_config(**RESUME_OVERRIDES), run_dir, resume=True)


def test_checkpoints_hold_the_weight_average_and_the_trained_weights(synthetic_data_dir, tmp_path):
    """With EMA on, model_state (what evaluate/predict load) is the moving average and
    train_state the raw weights; with EMA off there is only model_state."""
    fit_tiny(synthetic_data_dir, tiny_config(ema_decay=0.9), tmp_path / "ema")
    ckpt = load_checkpoint(tmp_path / "ema" / LAST_NAME)
    assert ckpt["ema_updates"] == 2 * 10  # 2 epochs x (600 - 100 validation) / 50 steps
    differs = [
        k
        for k in ckpt["model_state"]
        if not torch.equal(ckpt["model_state"][k], ckpt["train_state"][k])
    ]
    assert differs  # the average lags the trained weights

    fit_tiny(synthetic_data_dir, tiny_config(ema_decay=0.0), tmp_path / "plain")
    plain = load_checkpoint(tmp_path / "plain" / LAST_NAME)
    assert plain["train_state"] is None and plain["ema_updates"] is None
