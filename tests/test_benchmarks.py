"""The benchmark scripts themselves: the GPU one must work the first time a GPU session runs it,
so the suite runs every step of it on the CPU with tiny sizes (--smoke), which writes nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def render_gpu_table(result: dict) -> str:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_gpu import render_table

    return render_table(result)


def _snapshot(folder: Path) -> dict[Path, int]:
    return {
        p: p.stat().st_mtime_ns
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def run_smoke(script: str, *args: str) -> subprocess.CompletedProcess:
    """A benchmark script with --smoke, one thread; it must exit 0."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


GPU_RUNS = {
    "default": 2,
    "default_bf16": 1,
    "default_gpu_sized": 1,
    "best": 1,
    "smnist": 1,
    "pmnist": 1,
    "seed": 1,
    "best_shift_only": 1,
}


@pytest.mark.slow
def test_gpu_benchmark_runs_every_step_in_smoke_mode(synthetic_data_dir, tmp_path):
    before = _snapshot(ROOT / "benchmarks")
    out = tmp_path / "gpu.json"
    proc = run_smoke(
        "bench_gpu.py",
        "--device",
        "cpu",
        "--data-dir",
        str(synthetic_data_dir),
        "--runs",
        "2",
        "--out",
        str(out),
    )
    steps = [f"ceiling_{name} (" for name in ("default", "seed", "seed_no_graphs", "best")]
    steps += ["graph_parity (", "article_dataloader_epoch_seconds (", "inference ("]
    steps += ["default_seed0 (", "default_seed1 (", "smnist (", "pmnist (", "best_seed0 ("]
    for expected in [*steps, "smoke run: every step ran"]:
        assert expected in proc.stdout, expected
    assert _snapshot(ROOT / "benchmarks") == before  # --smoke leaves results and README alone
    result = json.loads(out.read_text())
    assert result["failed"] == {} and result["skipped"] == {}
    assert {name: len(runs) for name, runs in result["runs"].items()} == GPU_RUNS
    assert result["graph_parity"]["graphed_vs_eager_capturable_max_abs_weight_diff"] == 0.0
    table = render_gpu_table(result)  # what a real run writes into benchmarks/README.md
    assert "| default | 2 |" in table and "x faster with graphs" in table
    assert "| seed_no_graphs | 50 |" in table and "Inference at batch 200" in table


def test_gpu_table_reports_medians_and_failures():
    run = {"final_test_acc": 0.99, "train_seconds_to_99.0": None, "epochs": 15}
    result = {
        "date": "2026-11-26 12:00",
        "command": "bench_gpu.py --budget 540",
        "machine": {"gpu": "NVIDIA H100", "torch": "2.14.1", "cuda": "13.0", "cudnn": 91900},
        "runs": {
            "default": [
                {**run, "train_seconds_to_98.15": t, "train_seconds": 20.0}
                for t in (0.9, None, 1.1)
            ]
        },
        "ceiling_seed": {
            "lstm_samples_per_s": 20000.0,
            "loop_samples_per_s": 60000.0,
            "batch_size": 32,
        },
        "ceiling_seed_no_graphs": {
            "lstm_samples_per_s": 20000.0,
            "loop_samples_per_s": 10000.0,
            "batch_size": 32,
        },
        "article_dataloader_epoch_seconds": 9.0,
        "failed": {"ceiling_default_bf16": "RuntimeError: no bf16 LSTM"},
        "skipped": {"pmnist": "needs about 40 s, 10 s of the budget left"},
    }
    table = render_gpu_table(result)
    assert table.startswith(
        "## GPU (NVIDIA H100, torch 2.14.1, CUDA 13.0, cuDNN 91900) - 2026-11-26 12:00"
    )
    assert "Command: `bench_gpu.py --budget 540`" in table
    assert (
        "| default | 3 | 99.00% (99.00%, 99.00%, 99.00%) | 1.10 s (0.90, not reached, 1.10) | "
        "not reached | 15 | 20.0 |" in table
    )
    assert "| seed | 32 | 20,000 | 60,000 | 300% |" in table
    assert "1.00 s with CUDA graphs, 6.00 s eager, 9.00 s in the article's" in table
    assert "9.0x faster with graphs (1.5x eager)" in table
    assert "Failed: ceiling_default_bf16: RuntimeError: no bf16 LSTM" in table
    assert "Skipped: pmnist: needs about 40 s" in table


def test_gpu_benchmark_refuses_a_full_run_without_cuda():
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA: a full run would start")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "no CUDA device" in proc.stderr


@pytest.mark.slow
def test_orders_benchmark_runs_every_step_in_smoke_mode(synthetic_data_dir):
    """bench_orders.py trains each order (tiny), times the long presets and renders its table,
    leaving results and README alone."""
    before = _snapshot(ROOT / "benchmarks")
    proc = run_smoke("bench_orders.py", "--data-dir", str(synthetic_data_dir))
    for run in ("columns", "pixels-16", "permuted-16"):
        assert f"{run}: " in proc.stdout and f"| {run} |" in proc.stdout, run
    assert "(seeds 0, 1, 2, 3, 4:" in proc.stdout  # columns: a median over five seeds
    assert "| `--preset smnist`" in proc.stdout and "| `--preset pmnist`" in proc.stdout
    assert _snapshot(ROOT / "benchmarks") == before


@pytest.mark.slow
def test_ablation_benchmark_runs_every_step_in_smoke_mode(real_data_dir):
    """bench_ablation.py trains every step (tiny, on 256 real images: the validation step holds
    5,000 out) and renders its table, leaving results and README alone."""
    before = _snapshot(ROOT / "benchmarks")
    proc = run_smoke("bench_ablation.py", "--data-dir", str(real_data_dir))
    for step in ("article, as published", "+ logits into the loss", "all four fixes"):
        assert f"| {step} |" in proc.stdout, step
    assert proc.stdout.count(" seed 1: test accuracy") == 7
    assert _snapshot(ROOT / "benchmarks") == before


@pytest.mark.slow
def test_seqlen_benchmark_runs_every_step_in_smoke_mode(synthetic_data_dir):
    """bench_seqlen.py trains every cell at every length (tiny) and renders its table, leaving
    results, README and docs/seqlen.png alone."""
    before = _snapshot(ROOT / "benchmarks"), _snapshot(ROOT / "docs")
    proc = run_smoke("bench_seqlen.py", "--data-dir", str(synthetic_data_dir))
    for cell in ("rnn", "gru", "lstm"):
        runs = re.findall(rf"^{cell} +\d+ steps: test accuracy", proc.stdout, flags=re.M)
        assert len(runs) == 4 and f"| {cell} |" in proc.stdout, cell
    assert "| cell | 28 steps | 49 steps | 196 steps | 784 steps |" in proc.stdout
    assert (_snapshot(ROOT / "benchmarks"), _snapshot(ROOT / "docs")) == before
