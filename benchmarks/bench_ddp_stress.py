"""Stress test of distributed teardown: many identical two-process CPU runs under torchrun.

    python benchmarks/bench_ddp_stress.py --runs 30

Each run is ``torchrun --standalone --nproc_per_node=2 -m seqmnist train --epochs 1 --hidden 16``
on MNIST (the case that aborted 5 times in 28), or on its first ``--train-images`` images (a
subset keeps a run short; teardown is what is tested, not learning). A run counts as a failure
unless it exits 0, writes summary.json and prints nothing about an abort ("terminate called",
SIGABRT) or a traceback. Correctness, not timing: any machine, busy or idle, will do. The counts
go to benchmarks/results/ddp_stress.json.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, machine  # noqa: E402

ABORT_SIGNS = ("terminate called", "SIGABRT", "Signal 6", "Traceback")
RAW_FILES = {
    "train-images-idx3-ubyte": 16,
    "train-labels-idx1-ubyte": 8,
    "t10k-images-idx3-ubyte": 16,
    "t10k-labels-idx1-ubyte": 8,
}


def write_subset(source: Path, target: Path, train: int, test: int) -> Path:
    """The first ``train`` / ``test`` images of MNIST as IDX files of their own (header count
    rewritten), so that each run loads and tests in a moment."""
    raw = target / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, header in RAW_FILES.items():
        count = train if name.startswith("train") else test
        item = 784 if "images" in name else 1
        data = (source / "MNIST" / "raw" / name).read_bytes()
        head = bytearray(data[:header])
        head[4:8] = struct.pack(">i", count)
        (raw / name).write_bytes(bytes(head) + data[header : header + count * item])
    return target


def one_run(data_dir: Path, out: Path, args: argparse.Namespace) -> dict[str, object]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "seqmnist", "train", "--data-dir", str(data_dir), "--no-download"]
    cmd += ["--out", str(out), "--epochs", str(args.epochs), "--hidden", str(args.hidden)]
    cmd += ["--threads", "1", "--quiet", "--no-plots"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=args.timeout,
            env={**env, "OMP_NUM_THREADS": "1"},
        )
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, output = None, f"ran past {args.timeout} s: {exc}"
    signs = [s for s in ABORT_SIGNS if s in output]
    ok = code == 0 and (out / "summary.json").is_file() and not signs
    return {
        "ok": ok,
        "exit_code": code,
        "summary": (out / "summary.json").is_file(),
        "abort_signs": signs,
        "seconds": round(time.perf_counter() - started, 1),
        "output_tail": "" if ok else output[-1500:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--train-images", type=int, default=0, help="0: all 60,000")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    parser.add_argument("--data-dir", default=os.environ.get("SEQMNIST_DATA", "data"))
    parser.add_argument("--smoke", action="store_true", help="2 runs, nothing written")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "ddp_stress.json")
    args = parser.parse_args()
    runs = 2 if args.smoke else args.runs
    results = []
    with tempfile.TemporaryDirectory(prefix="ddp-stress-") as tmp:
        data = Path(args.data_dir)
        if args.train_images:
            data = write_subset(data, Path(tmp) / "data", args.train_images, 500)
        for i in range(runs):
            results.append(one_run(data, Path(tmp) / f"run{i}", args))
            print(f"run {i + 1}/{runs}: {'ok' if results[-1]['ok'] else 'FAILED'}", flush=True)
    failures = [dict(run=i, **r) for i, r in enumerate(results) if not r["ok"]]
    report = {
        "what": "torchrun --standalone --nproc_per_node=2 -m seqmnist train "
        f"--epochs {args.epochs} --hidden {args.hidden} --threads 1 on "
        f"{args.train_images or 60_000} MNIST training images (CPU, gloo)",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "runs": runs,
        "failures": len(failures),
        "failed_runs": failures,
        "machine": machine(),
    }
    print(f"{len(failures)} of {runs} runs failed")
    if not args.smoke:
        RESULTS_DIR.mkdir(exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
