"""The command line, in process: version, help, flag validation, evaluate and info."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from seqmnist import __version__
from seqmnist.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("seqmnist: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"seqmnist {__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train", "evaluate", "info"])
def test_every_option_states_its_default(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: seqmnist " + command)
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    for action in sub._actions:
        if action.dest == "help" or not action.option_strings:
            continue
        assert "default" in (action.help or ""), (
            f"{command} {action.option_strings}: {action.help!r}"
        )


def test_train_help_shows_both_presets_values(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert re.search(r"--readout .*default: final; seed preset: last", out)
    assert re.search(r"--batch-size .*default: \d+; seed preset: 32", out)


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--epochs", "0"),
        ("--dropout", "2"),
        ("--batch-size", "-1"),
        ("--hidden", "0"),
        ("--lr", "-1"),
        ("--val-size", "-5"),
        ("--layers", "100"),
        ("--threads", "-2"),
    ],
)
def test_out_of_range_flags(flag, value, tmp_path, capsys):
    code = main(
        [
            "train",
            flag,
            value,
            "--out",
            str(tmp_path / "run"),
            "--data-dir",
            str(tmp_path),
            "--no-download",
        ]
    )
    assert code == 1
    line = one_error_line(capsys)
    assert line.startswith(f"seqmnist: error: {flag} must be")
    assert not (tmp_path / "run").exists()


def under_torchrun(monkeypatch, rank: int) -> None:
    """The variables torchrun's agent sets for a worker (its marker among them)."""
    for key, value in dict(
        TORCHELASTIC_RUN_ID="test", RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2"
    ).items():
        monkeypatch.setenv(key, value)


def test_under_torchrun_only_rank_0_reports_a_flag_error(tmp_path, capsys, monkeypatch):
    argv = [
        "train",
        "--epochs",
        "0",
        "--out",
        str(tmp_path / "run"),
        "--data-dir",
        str(tmp_path),
        "--no-download",
    ]
    under_torchrun(monkeypatch, rank=1)
    assert main(argv) == 1
    assert capsys.readouterr().err == ""  # every rank fails alike; rank 0 says it once
    under_torchrun(monkeypatch, rank=0)
    assert main(argv) == 1
    assert one_error_line(capsys).startswith("seqmnist: error: --epochs must be")


def test_a_rank_left_in_the_shell_does_not_silence_errors(tmp_path, capsys, monkeypatch):
    # RANK=1 without torchrun (no TORCHELASTIC_RUN_ID): a plain command, which reports its error
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["train", "--epochs", "0", "--out", str(tmp_path / "run"), "--no-download"]
    assert main(argv) == 1
    assert one_error_line(capsys).startswith("seqmnist: error: --epochs must be")


def test_under_torchrun_other_errors_are_tagged_with_the_rank(tmp_path, capsys, monkeypatch):
    under_torchrun(monkeypatch, rank=1)
    assert (
        main(["evaluate", str(tmp_path / "missing"), "--data-dir", str(tmp_path), "--no-download"])
        == 1
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "seqmnist [rank 1]: error: no such run directory"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--epochs", "two"],
        ["train", "--cell", "transformer"],
        ["train", "--lr", "fast"],
        ["evaluate", "x", "--split", "train"],
        ["train", "--no-such-flag"],
        ["frobnicate"],
    ],
)
def test_wrong_types_and_choices_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_evaluate_text(tiny_run, synthetic_data_dir, capsys):
    code = main(
        [
            "evaluate",
            str(tiny_run),
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert "checkpoint_best.pt on the test split (200 images)" in out
    assert f"accuracy {summary['test_acc']:.2%}" in out
    assert "precision" in out and "confusion matrix" in out


def test_evaluate_json_agrees_with_summary(tiny_run, synthetic_data_dir, capsys):
    code = main(
        [
            "evaluate",
            str(tiny_run),
            "--json",
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
            "--batch-size",
            "7",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert result["split"] == "test" and result["samples"] == 200
    assert result["accuracy"] == pytest.approx(summary["test_acc"], abs=1e-9)
    assert result["loss"] == pytest.approx(summary["test_loss"], rel=1e-5)
    assert result["confusion_matrix"] == summary["confusion_matrix"]
    assert len(result["per_class"]) == 10


def test_evaluate_val_split_reproduces_the_runs_validation_accuracy(
    tiny_run, synthetic_data_dir, capsys
):
    code = main(
        [
            "evaluate",
            str(tiny_run),
            "--split",
            "val",
            "--json",
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert result["samples"] == 100
    assert result["accuracy"] == pytest.approx(summary["best_val_acc"], abs=1e-9)


def test_evaluate_a_checkpoint_file(tiny_run, synthetic_data_dir, capsys):
    code = main(
        [
            "evaluate",
            str(tiny_run / "checkpoint_last.pt"),
            "--json",
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(tiny_run / "checkpoint_last.pt")


def test_evaluate_bad_batch_size(tiny_run, capsys):
    assert main(["evaluate", str(tiny_run), "--batch-size", "0"]) == 1
    assert "--batch-size" in one_error_line(capsys)


@pytest.mark.parametrize("kind", ["text", "torch", "missing", "empty-folder"])
def test_evaluate_and_info_refuse_non_checkpoints(kind, tmp_path, capsys):
    path = tmp_path / "model.pt"
    if kind == "text":
        path.write_text("hello")
    elif kind == "torch":
        torch.save({"a": 1}, path)
    elif kind == "empty-folder":
        path = tmp_path
    for command in ("evaluate", "info"):
        assert (
            main(
                [command, str(path), "--data-dir", str(tmp_path), "--no-download"][
                    : 2 if command == "info" else 5
                ]
            )
            == 1
        )
        line = one_error_line(capsys)
        assert str(path) in line


@pytest.mark.filterwarnings("ignore:`torch.jit.s[a-z]*` is deprecated:FutureWarning")
@pytest.mark.parametrize("kind", ["pt2", "torchscript"])
def test_info_on_an_exported_program_says_what_it_is(kind, tmp_path, capsys):
    """A file `seqmnist export` writes is not a checkpoint: the error says what it is and what
    to pass instead (it used to say "not a seqmnist checkpoint (unreadable or damaged)")."""
    model = torch.nn.Linear(3, 2)
    path = tmp_path / f"model.{kind}"
    if kind == "pt2":
        torch.export.save(torch.export.export(model, (torch.zeros(2, 3),)), path)
    else:
        torch.jit.save(torch.jit.script(model), path)
    assert main(["info", str(path)]) == 1
    line = one_error_line(capsys)
    expected = "an exported program (torch.export" if kind == "pt2" else "a TorchScript program"
    assert f"{path} is {expected}" in line
    assert "pass the run directory it was exported from, or its checkpoint_*.pt" in line


def test_debug_shows_the_traceback(tmp_path):
    from seqmnist.errors import CheckpointError

    with pytest.raises(CheckpointError):
        main(["--debug", "info", str(tmp_path / "nope.pt")])


def test_info_on_run_dir_and_checkpoint(tiny_run, capsys):
    assert main(["info", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert "checkpoint_best.pt" in out and "LSTM hidden=16" in out and "bidirectional" in out
    assert f"parameters   {summary['parameters']:,}" in out
    assert f"test accuracy {summary['test_acc']:.2%}" in out

    assert main(["info", str(tiny_run / "checkpoint_last.pt"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["epoch"] == 3 and info["format_version"] == 1 and info["arch"] == "SeqClassifier"
    assert info["model_config"]["hidden"] == 16
    assert info["train_config"]["epochs"] == 3
    assert info["parameters"] == summary["parameters"]
    assert info["summary"]["test_acc"] == summary["test_acc"]


def test_info_on_an_unfinished_run_promises_no_reproduction(tiny_run, tmp_path, capsys):
    """A run without summary.json (killed, or its first epoch never finished) has no result:
    info shows its config but no "reproduce ... bit for bit" line (it used to print one)."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "summary.json").unlink()
    assert main(["info", str(run)]) == 0
    out = capsys.readouterr().out
    assert "training     preset=" in out
    assert "result" not in out and "reproduce" not in out and "bit for bit" not in out


def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "seqmnist", "--version"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout.strip() == f"seqmnist {__version__}"


def test_train_flags_map_one_to_one_to_config_fields(tmp_path, monkeypatch):
    """Every flag overrides exactly its field of the preset; the rest of the preset is kept."""
    import seqmnist.train as train_mod
    from seqmnist.config import TrainConfig, preset_config

    captured = {}

    def fake_fit(config, run_dir, **kwargs):
        captured.update(config=config, run_dir=run_dir, **kwargs)
        return {}

    monkeypatch.setattr(train_mod, "fit", fake_fit)
    argv = [
        "train",
        "--preset",
        "seed",
        "--out",
        str(tmp_path / "r"),
        "--data-dir",
        str(tmp_path),
        "--no-download",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--lr",
        "0.002",
        "--weight-decay",
        "0.01",
        "--optimizer",
        "adamw",
        "--schedule",
        "onecycle",
        "--grad-clip",
        "2",
        "--val-size",
        "1000",
        "--hidden",
        "32",
        "--layers",
        "2",
        "--cell",
        "gru",
        "--readout",
        "mean",
        "--dropout",
        "0.1",
        "--seed",
        "5",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--amp",
        "bf16",
        "--no-bidirectional",
        "--normalize",
        "--no-eval-test-every-epoch",
        "--quiet",
        "--no-plots",
    ]
    assert main(argv) == 0
    c: TrainConfig = captured["config"]
    assert (
        c.preset,
        c.epochs,
        c.batch_size,
        c.lr,
        c.weight_decay,
        c.optimizer,
        c.schedule,
        c.grad_clip,
    ) == ("seed", 3, 64, 0.002, 0.01, "adamw", "onecycle", 2.0)
    assert (
        c.val_size,
        c.seed,
        c.device,
        c.threads,
        c.amp,
        c.normalize,
        c.eval_test_every_epoch,
    ) == (1000, 5, "cpu", 1, "bf16", True, False)
    m = c.model
    assert (m.hidden, m.layers, m.cell, m.readout, m.dropout, m.bidirectional) == (
        32,
        2,
        "gru",
        "mean",
        0.1,
        False,
    )
    assert m.softmax_output is True  # not a flag: kept from the seed preset
    assert captured["run_dir"] == tmp_path / "r"
    assert (
        captured["download"] is False and captured["quiet"] is True and captured["resume"] is False
    )

    captured.clear()
    assert main(["train", "--preset", "seed"]) == 0
    assert captured["config"] == preset_config("seed")
    assert str(captured["run_dir"]) == "runs/seed"


def test_more_threads_than_cores_is_a_one_line_warning(tmp_path, capsys):
    from seqmnist.launch import usable_cpus

    cpus = usable_cpus()
    threads = str(cpus + 1)
    argv = [
        "train",
        "--threads",
        threads,
        "--out",
        str(tmp_path / "run"),
        "--data-dir",
        str(tmp_path),
    ]
    assert main([*argv, "--no-download"]) == 1  # no data here: it stops right after the warning
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == (
        f"seqmnist: warning: --threads {threads} exceeds the {cpus} CPUs this process may use; "
        "training will be slower"
    )
    assert lines[1].startswith("seqmnist: error: MNIST not found") and len(lines) == 2
