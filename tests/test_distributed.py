"""Two CPU processes under torchrun (gloo): one run directory, identical ranks, the same result as
one process at the same global batch, an exact resume, and checkpoints a single process can read.

One launch in all (torchrun start-up dominates): tests/ddp_worker.py runs `seqmnist train`
through the CLI's main(), then calls ``fit`` directly and saves each rank's weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seqmnist.checkpoint import load_checkpoint
from seqmnist.cli import main
from seqmnist.config import apply_overrides, preset_config
from seqmnist.run import BEST_NAME, LAST_NAME, read_metrics
from seqmnist.runtime import DistInfo, all_reduce_sum, barrier, broadcast_flag, init_distributed
from seqmnist.train import fit

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def launched(test):
    """Marks a test that needs the torchrun launch (multi-process, slow)."""
    return pytest.mark.slow(pytest.mark.distributed(test))


TIMEOUT_S = 240
TIMING = ("epoch_seconds", "train_seconds", "samples_per_s")


def torchrun(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        *args,
    ]
    # A session of its own, so that a hang is ended with its worker processes, not just torchrun.
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} ran past {TIMEOUT_S} s\n{out[-3000:]}\n{err[-3000:]}")
    assert proc.returncode == 0 or not check, f"{' '.join(cmd)}\n{out[-3000:]}\n{err[-3000:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def rows_without_timing(run_dir: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k not in TIMING}
        for r in read_metrics(run_dir / "metrics.csv")
    ]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


CLI_FLAGS = dict(
    epochs=2,
    hidden=16,
    batch_size=25,
    val_size=100,
    threads=1,
    augment_shift=0,
    augment_rotate=0.0,
    augment_scale=0.0,
    printed_digits=0,
)  # = ddp_worker.CLI_ARGS


@pytest.fixture(scope="module")
def launch(synthetic_data_dir, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ddp")
    result = torchrun(
        [str(Path(__file__).with_name("ddp_worker.py")), str(synthetic_data_dir), str(out)], cwd=out
    )
    return out, result


@pytest.fixture(scope="module")
def cli_launch(launch) -> tuple[Path, subprocess.CompletedProcess]:
    """The `seqmnist train` run: its working folder (holding run/) and the launch's output."""
    return launch[0] / "cli", launch[1]


@pytest.fixture(scope="module")
def worker_launch(launch) -> Path:
    return launch[0]


# --- `seqmnist train` under torchrun ------------------------------------------------------------


@launched
def test_one_run_directory_written_by_rank_0_only(cli_launch):
    work, result = cli_launch
    assert sorted(p.name for p in work.iterdir()) == [
        "run"
    ]  # nothing stray (e.g. runs/ in the cwd)
    run = work / "run"
    names = {p.name for p in run.iterdir()}
    events = {n for n in names if n.startswith("events.out.tfevents.")}
    assert len(events) == 1  # --log tensorboard: rank 0 only
    assert names - events == {
        "config.json",
        "config_origin.json",
        "metrics.csv",
        LAST_NAME,
        BEST_NAME,
        "summary.json",
    }
    assert [r["epoch"] for r in read_metrics(run / "metrics.csv")] == [1.0, 2.0]
    # only the primary rank prints: each epoch line and the final line once
    out = result.stdout
    assert (
        out.count("epoch 1/2") == 1
        and out.count("epoch 2/2") == 1
        and out.count("test accuracy") == 1
    )
    assert "x2" in out and "batch 50" in out


@launched
def test_summary_records_world_size_and_global_batch(cli_launch):
    summary = json.loads((cli_launch[0] / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["global_batch"] == 50
    assert (
        json.loads((cli_launch[0] / "run" / "config.json").read_text())["batch_size"] == 25
    )  # per process
    # metrics are all-reduced: each epoch counts all 500 training images, not one rank's 250
    assert summary["samples_per_s"] == pytest.approx(2 * 500 / summary["train_seconds"], rel=1e-3)


@launched
def test_two_processes_match_one_process_at_the_same_global_batch(
    cli_launch, synthetic_data_dir, tmp_path
):
    config = apply_overrides(preset_config("default"), {**CLI_FLAGS, "batch_size": 50})
    fit(config, tmp_path / "single", data_dir=synthetic_data_dir, download=False, quiet=True)
    ddp, single = cli_launch[0] / "run", tmp_path / "single"
    ddp_rows, single_rows = read_metrics(ddp / "metrics.csv"), read_metrics(single / "metrics.csv")
    assert abs(ddp_rows[-1]["val_acc"] - single_rows[-1]["val_acc"]) <= 0.01
    # Rank r takes every 2nd sample of the same permutation, so the two per-rank batches of 25 are
    # exactly one batch of 50 and DDP's averaged gradient is its mean gradient: same training,
    # up to float rounding.
    for a, b in zip(ddp_rows, single_rows):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert abs(a["val_acc"] - b["val_acc"]) <= 0.01  # rounding may flip one borderline image
    a, b = (
        load_checkpoint(ddp / LAST_NAME)["model_state"],
        load_checkpoint(single / LAST_NAME)["model_state"],
    )
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


@launched
def test_distributed_checkpoint_evaluates_in_one_process(cli_launch, synthetic_data_dir, capsys):
    run = cli_launch[0] / "run"
    assert load_checkpoint(run / LAST_NAME)["world_size"] == 2
    code = main(
        [
            "evaluate",
            str(run),
            "--json",
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == pytest.approx(
        json.loads((run / "summary.json").read_text())["test_acc"], abs=1e-9
    )


# --- fit() under torchrun ------------------------------------------------------------------


@launched
def test_training_went_through_ddp_on_both_ranks(worker_launch):
    for rank in (0, 1):
        ddp_epochs, epochs, interrupted = (
            (worker_launch / f"ddp_rank{rank}.txt").read_text().split()
        )
        assert (ddp_epochs, epochs) == ("6", "6")  # 3 + 1 before the interruption + 2 resumed
        assert interrupted == "1"


@launched
def test_no_ddp_wrapper_is_alive_when_the_process_group_is_destroyed(worker_launch):
    # A live wrapper there made 5 of 28 runs abort at their very end ("terminate called without
    # an active exception"); fit releases it before the last barrier and the destruction.
    for rank in (0, 1):
        assert (worker_launch / f"teardown_rank{rank}.txt").read_text().strip() == "0"


@launched
def test_interrupted_distributed_run_names_the_torchrun_resume_command(worker_launch):
    message = (worker_launch / "interrupt_rank0.txt").read_text()
    assert (
        "Resume with: torchrun --standalone --nproc_per_node=2 -m seqmnist train --resume "
        in message
    )


@launched
def test_ranks_hold_identical_parameters(worker_launch):
    for name in ("full", "resumed"):
        rank0 = torch.load(worker_launch / f"{name}_rank0.pt", weights_only=True)
        rank1 = torch.load(worker_launch / f"{name}_rank1.pt", weights_only=True)
        assert_same_state(rank0, rank1)
        # ... and rank 0 saved exactly those trained weights in checkpoint_last (with EMA on, the
        # raw weights are "train_state" and "model_state" holds their moving average)
        last = load_checkpoint(worker_launch / name / LAST_NAME)
        assert last["train_state"] is not None
        assert_same_state(rank0, last["train_state"])


@launched
def test_distributed_resume_equals_uninterrupted_run(worker_launch):
    full, resumed = worker_launch / "full", worker_launch / "resumed"
    assert len(read_metrics(full / "metrics.csv")) == 3
    assert rows_without_timing(resumed) == rows_without_timing(full)
    assert_same_state(
        torch.load(worker_launch / "resumed_rank0.pt", weights_only=True),
        torch.load(worker_launch / "full_rank0.pt", weights_only=True),
    )
    a = json.loads((full / "summary.json").read_text())
    b = json.loads((resumed / "summary.json").read_text())
    assert (a["test_acc"], a["best_epoch"], a["world_size"]) == (b["test_acc"], b["best_epoch"], 2)


@launched
def test_single_process_refuses_to_resume_a_distributed_run(
    worker_launch, synthetic_data_dir, tmp_path, capsys
):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(worker_launch / "full", run)
    code = main(
        [
            "train",
            "--resume",
            str(run),
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
            "--quiet",
            "--no-plots",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("seqmnist: error: ") and "--nproc_per_node=2" in err


@launched
def test_a_killed_rank_is_one_line_from_the_survivor(synthetic_data_dir, tmp_path):
    """Rank 1 is killed (SIGKILL) in epoch 2: rank 0 says so in one line, with the resume command,
    and no traceback of seqmnist's code; the run resumes (the resume itself is tested above)."""
    worker = str(Path(__file__).with_name("ddp_worker.py"))
    result = torchrun([worker, "kill", str(synthetic_data_dir), str(tmp_path)], tmp_path, False)
    assert result.returncode != 0
    ours = [x for x in result.stderr.splitlines() if x.startswith(("seqmnist:", "seqmnist ["))]
    assert len(ours) == 1, result.stderr[-3000:]
    assert ours[0].startswith("seqmnist: error: rank 1 (pid ")
    assert "of this 2-process run stopped (killed or crashed) during epoch 2" in ours[0]
    assert ours[0].endswith(
        f"holds epoch 1. Resume with: torchrun --standalone --nproc_per_node=2 -m seqmnist train "
        f"--resume {tmp_path / 'run'}"
    )
    assert "seqmnist/" not in result.stderr  # torchrun's own report names only its files
    assert load_checkpoint(tmp_path / "run" / LAST_NAME)["epoch"] == 1


# --- single-process behaviour of the glue (no launch) -------------------------------------------


def test_without_torchrun_it_is_rank_0_of_1(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo(rank=0, local_rank=0, world_size=1)
    assert info.is_primary and not info.enabled
    cpu = torch.device("cpu")
    assert all_reduce_sum([1.5, 2.0], info, cpu) == [1.5, 2.0]
    assert broadcast_flag(True, info, cpu) is True
    barrier(info)  # no-op, no process group needed
    assert not torch.distributed.is_initialized()
