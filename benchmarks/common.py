"""Helpers shared by the benchmark scripts: machine description, medians, README tables."""

from __future__ import annotations

import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def sync(device: str) -> None:
    """Wait for the GPU's queued work (a timing must include it); nothing on the CPU."""
    if device != "cpu":
        torch.cuda.synchronize()


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_time_to(values: list[float | None]) -> float | None:
    """Median of times to reach a threshold, None for a run that never reached it. Such a run
    counts as infinitely slow, not as absent; the result is None if the median run never got
    there."""
    middle = statistics.median(math.inf if v is None else v for v in values) if values else math.inf
    return None if math.isinf(middle) else middle


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Measured fp32 matmul throughput of this machine (the 'peak' we compare against)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = median_seconds(lambda: a @ b, repeats, warmup=2)
    return 2 * size**3 / seconds / 1e9


def update_readme_section(name: str, markdown: str) -> None:
    """Replace the block between <!-- name:start --> and <!-- name:end -->.

    The block is in benchmarks/README.md.
    """
    readme = BENCH_DIR / "README.md"
    text = readme.read_text() if readme.exists() else "# Benchmarks\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    if start in text and end in text:
        text = re.sub(
            re.escape(start) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    readme.write_text(text)
