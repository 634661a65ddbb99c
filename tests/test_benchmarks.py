"""The benchmark scripts themselves: the GPU one must work the first time a GPU session runs it,
so the suite runs every step of it on the CPU with tiny sizes (--smoke), which writes nothing."""

from __future__ import annotations

import json
import os
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
    for expected in (
        "throughput default:",
        "throughput default_bf16:",
        "throughput hidden128_batch1024:",
        "default seed 0: final",
        "default seed 1: final",
        "hidden128_batch1024 seed 0: final",
        "seed preset:",
        "article's loop:",
        "smoke run: every step ran",
    ):
        assert expected in proc.stdout, expected
    assert _snapshot(ROOT / "benchmarks") == before  # --smoke leaves results and README alone
    result = json.loads(out.read_text())
    assert result["failed"] == {}
    assert [
        len(result["runs"][name]) for name in ("default", "default_bf16", "hidden128_batch1024")
    ] == [2, 1, 1]
    assert result["seed_speedup_vs_article_loop"] > 0
    table = render_gpu_table(result)  # what a real run writes into benchmarks/README.md
    assert "| default |" in table and "x faster" in table


def test_gpu_table_reports_medians_and_failures():
    run = {"final_test_acc": 0.99, "train_seconds_to_99.0": None}
    result = {
        "date": "2026-11-26 12:00",
        "machine": {"gpu": "NVIDIA H100", "torch": "2.14.1"},
        "throughput_default": 123456.0,
        "runs": {"default": [{**run, "train_seconds_to_98.15": t} for t in (0.9, None, 1.1)]},
        "seed_epoch_seconds": 2.0,
        "article_dataloader_epoch_seconds": 9.0,
        "seed_speedup_vs_article_loop": 4.5,
        "failed": {"throughput_default_bf16": "RuntimeError: no bf16 LSTM"},
    }
    table = render_gpu_table(result)
    assert table.startswith("## GPU (NVIDIA H100, torch 2.14.1) - 2026-11-26 12:00")
    assert (
        "| default | 123,456 | 1.10 s (median of 0.90, not reached, 1.10) | not reached | "
        "99.00%, 99.00%, 99.00% |" in table
    )
    assert "4.5x faster" in table
    assert "Failed: throughput_default_bf16: RuntimeError: no bf16 LSTM" in table


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
    assert "(seeds 0, 1, 2:" in proc.stdout  # columns: a median over three seeds
    assert "| `--preset smnist`" in proc.stdout and "| `--preset pmnist`" in proc.stdout
    assert _snapshot(ROOT / "benchmarks") == before
