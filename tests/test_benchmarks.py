"""The benchmark scripts themselves: the GPU one must work the first time a GPU session runs it,
so the suite runs every step of it on the CPU with tiny sizes (--smoke), which writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _snapshot(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_gpu_benchmark_runs_every_step_in_smoke_mode(synthetic_data_dir):
    before = _snapshot(ROOT / "benchmarks")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--smoke", "--device", "cpu",
         "--data-dir", str(synthetic_data_dir)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for expected in ("throughput default:", "throughput default_bf16:", "throughput hidden128_batch1024:",
                     "default: final", "hidden128_batch1024: final", "seed preset:", "article's loop:",
                     "smoke run: every step ran; nothing written"):
        assert expected in proc.stdout, expected
    assert _snapshot(ROOT / "benchmarks") == before  # --smoke leaves results and README alone


def test_gpu_benchmark_refuses_a_full_run_without_cuda():
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA: a full run would start")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "no CUDA device" in proc.stderr
