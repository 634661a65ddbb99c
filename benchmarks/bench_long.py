"""Long sequences on the 2-core CPU: does `--preset smnist` leave chance in its first epoch?

    python benchmarks/bench_long.py                  # 3 one-epoch runs of 784 steps, ~2-3 min
                                                     # each on an idle 2-core machine
    python benchmarks/bench_long.py --parallel 3     # the same, side by side (1 thread each)
    python benchmarks/bench_long.py --smoke          # tiny sizes on synthetic data, nothing kept

Each run is the command a user types, `seqmnist train --preset smnist --hidden 64 --epochs 1`,
with the preset's gate initialisation (chrono) and with `--gate-init pytorch` and
`--gate-init forget-bias` (the published recipes' forget bias of 1). Issue 20's target: the
preset's initialisation reaches >= 25 % validation accuracy after that epoch. Every figure is
seeded (seed 0); the seconds are only meaningful on an idle machine.
Results: benchmarks/results/long.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, machine  # noqa: E402

COMMAND = ["train", "--preset", "smnist", "--hidden", "64", "--epochs", "1"]
RUNS = {
    "preset (chrono)": [],
    "pytorch": ["--gate-init", "pytorch"],
    "forget-bias 1": ["--gate-init", "forget-bias"],
}
TARGET_VAL_ACC = 0.25
SMOKE = ["--val-size", "100", "--batch-size", "50", "--hidden", "4", "--order", "pixels",
         "--pixels-per-step", "16"]  # fmt: skip


def run_one(name: str, extra: list[str], folder: Path, args: argparse.Namespace) -> dict:
    """One `seqmnist train` process; its metrics row, test accuracy and printed warnings."""
    run_dir = folder / name.split()[0]
    argv = [*COMMAND, *extra, "--out", str(run_dir), "--no-plots", "--no-download"]
    argv += ["--threads", str(args.threads)] + (SMOKE if args.smoke else [])
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    proc = subprocess.run(
        [sys.executable, "-m", "seqmnist", *argv], capture_output=True, text=True, env=os.environ
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    row = _last_metrics_row(run_dir / "metrics.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "command": "seqmnist " + " ".join([*COMMAND, *extra]),
        "val_acc": float(row["val_acc"]),
        "val_loss": float(row["val_loss"]),
        "train_acc": float(row["train_acc"]),
        "train_loss": float(row["train_loss"]),
        "test_acc": summary["test_acc"],
        "epoch_seconds": float(row["epoch_seconds"]),
        "warnings": [line for line in proc.stdout.splitlines() if "warning" in line],
    }


def _last_metrics_row(path: Path) -> dict[str, str]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="MNIST root (default: $SEQMNIST_DATA)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, nothing written")
    parser.add_argument("--parallel", type=int, default=1, help="runs side by side (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="threads per run (0: all cores)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.parallel) as pool:
        futures = {
            name: pool.submit(run_one, name, extra, Path(tmp), args) for name, extra in RUNS.items()
        }
        runs = {name: future.result() for name, future in futures.items()}
    for name, r in runs.items():
        print(
            f"{name:<16} val {r['val_acc']:.2%} (loss {r['val_loss']:.3f})  "
            f"test {r['test_acc']:.2%}  {r['epoch_seconds']:.0f} s"
            + (f"  [{len(r['warnings'])} warning line(s)]" if r["warnings"] else ""),
            flush=True,
        )
    result = {
        "machine": machine(),
        "parallel_runs": args.parallel,
        "target_val_acc": TARGET_VAL_ACC,
        "preset_meets_target": runs["preset (chrono)"]["val_acc"] >= TARGET_VAL_ACC,
        "runs": runs,
    }
    if not args.smoke:
        (RESULTS_DIR / "long.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
