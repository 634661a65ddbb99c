"""Long sequences on the 2-core CPU: does `--preset smnist` leave chance in its first epoch?

    python benchmarks/bench_long.py                  # 3 one-epoch runs of 784 steps, ~2-3 min
                                                     # each on an idle 2-core machine
    python benchmarks/bench_long.py --parallel 3     # the same, side by side (1 thread each)
    python benchmarks/bench_long.py --smoke          # tiny sizes, nothing kept
    python benchmarks/bench_long.py --orders pixels-16 permuted-16 [--budget-minutes M]
        # bench_orders.py's 49 x 16 runs (20 epochs, ~7 min each idle) with --gate-init chrono

Each run is the command a user types, `seqmnist train --preset smnist --hidden 64 --epochs 1`,
with the preset's gate initialisation (chrono) and with `--gate-init pytorch` and
`--gate-init forget-bias` (the published recipes' forget bias of 1). Issue 20's target: the
preset's initialisation reaches >= 25 % validation accuracy after that epoch. Every figure is
seeded (seed 0); the seconds are only meaningful on an idle machine.

--orders re-measures bench_orders.py's 49-step runs (same recipe, seed 0, test scored every epoch
for the curve) with chrono initialisation, beside the curves in results/orders.json (PyTorch's
init). With --budget-minutes a run stops at the first step of the epoch after the budget: the
epochs it finished are compared epoch by epoch.
Results: benchmarks/results/long.json (the first epochs), long_orders.json (--orders).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
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


def run_order(name: str, args: argparse.Namespace) -> dict:
    """One of bench_orders.py's runs with chrono init; its test curve beside the saved one."""
    from bench_orders import RUNS as ORDER_RUNS
    from bench_orders import SMOKE as ORDER_SMOKE
    from seqmnist.config import apply_overrides, preset_config
    from seqmnist.errors import TrainingInterrupted
    from seqmnist.run import read_metrics
    from seqmnist.train import fit

    overrides = {**ORDER_RUNS[name], "seed": 0, "eval_test_every_epoch": True}
    overrides |= {"gate_init": "chrono", "threads": args.threads}
    config = apply_overrides(
        preset_config("default"), overrides | (ORDER_SMOKE if args.smoke else {})
    )
    deadline = time.monotonic() + 60 * args.budget_minutes

    def stop_after_budget(epoch: int, images: int) -> None:
        if images <= config.batch_size and time.monotonic() > deadline:
            raise KeyboardInterrupt  # the first step of an epoch begun after the budget

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / name
        with contextlib.suppress(TrainingInterrupted):  # metrics.csv holds the epochs done
            fit(config, run_dir, data_dir=args.data_dir, download=False, quiet=True,
                on_batch=stop_after_budget)  # fmt: skip
        rows = read_metrics(run_dir / "metrics.csv")
    saved = json.loads((RESULTS_DIR / "orders.json").read_text())["runs"][name]
    return {
        "gate_init": "chrono",
        "epochs_planned": config.epochs,
        "epochs_done": len(rows),
        "test_acc_per_epoch": [r["test_acc"] for r in rows],
        "pytorch_init_test_acc_per_epoch": saved["test_acc_per_epoch"][: len(rows)],
        "pytorch_init_final_test_acc": saved["final_test_acc"],
        "seconds_per_epoch": [r["epoch_seconds"] for r in rows],
    }


def _save_order(name: str, run: dict) -> None:
    """Add one run to long_orders.json; locked, as runs may be started side by side."""
    import fcntl

    with (RESULTS_DIR / "long_orders.json").open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read()
        result = json.loads(text) if text else {"orders": {}}
        result["machine"] = machine()  # of the latest run: its thread count, torch
        result["orders"][name] = run
        f.seek(0)
        f.truncate()
        f.write(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", help="MNIST root (default: $SEQMNIST_DATA)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, nothing written")
    parser.add_argument("--parallel", type=int, default=1, help="runs side by side (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="threads per run (0: all cores)")
    parser.add_argument("--orders", nargs="+", choices=["pixels-16", "permuted-16"])
    parser.add_argument("--budget-minutes", type=float, default=1e9, help="per --orders run")
    args = parser.parse_args()
    if args.orders:
        for name in args.orders:
            r = run_order(name, args)
            print(name, [f"{a:.2%}" for a in r["test_acc_per_epoch"]], flush=True)
            if not args.smoke:
                _save_order(name, r)
        return
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
