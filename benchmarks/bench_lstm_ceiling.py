"""How close PyTorch's own LSTM kernel (oneDNN on the CPU) gets to the fp32 matmul peak, with no
training loop around it: the ceiling for the default model's training FLOP/s on this machine.

Each round measures the matmul peak and then, right after it, forward + backward of the default
bidirectional LSTM (hidden 64, 28 rows of 28 pixels) at several batch sizes, so that every ratio
compares two figures taken within seconds of each other (this machine's speed drifts by 25 % and
more over minutes). FLOPs are counted as in bench_cpu.py: 6 x the recurrent multiply-adds.

    .venv/bin/python benchmarks/bench_lstm_ceiling.py  # ~2 min; writes results/lstm_ceiling.json
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, machine, matmul_peak_gflops, median_seconds  # noqa: E402
from seqmnist.config import preset_config  # noqa: E402
from seqmnist.model import recurrent_macs_per_sample  # noqa: E402
from seqmnist.runtime import keep_freed_memory_for_reuse  # noqa: E402

BATCHES = (128, 192, 256, 384)


def lstm_gflops(lstm: torch.nn.LSTM, batch: int, flops_per_sample: float) -> float:
    x = torch.randn(batch, 28, 28)

    def step() -> None:
        _, (h_n, _) = lstm(x)
        h_n.sum().backward()

    seconds = median_seconds(lambda: [step() for _ in range(10)], repeats=5, warmup=1) / 10
    return flops_per_sample * batch / seconds / 1e9


def main() -> None:
    keep_freed_memory_for_reuse()
    config = preset_config("default").model
    flops_per_sample = 6 * recurrent_macs_per_sample(config)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(
        config.features_per_step, config.hidden, batch_first=True, bidirectional=True
    )
    rounds = []
    for r in range(3):
        peak = matmul_peak_gflops()
        row = {"peak_gflops": peak}
        for batch in BATCHES:
            row[str(batch)] = lstm_gflops(lstm, batch, flops_per_sample) / peak
        rounds.append(row)
        print(
            f"round {r + 1}: peak {peak:.0f} GFLOP/s; LSTM fwd+bwd / peak: "
            + ", ".join(f"batch {b} {row[str(b)]:.0%}" for b in BATCHES),
            flush=True,
        )
    medians = {b: statistics.median(row[str(b)] for row in rounds) for b in BATCHES}
    print("median fraction of peak: " + ", ".join(f"batch {b} {m:.0%}" for b, m in medians.items()))
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "lstm_ceiling.json").write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": machine(),
                "rounds": rounds,
                "median_fraction_of_peak": {str(b): m for b, m in medians.items()},
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
