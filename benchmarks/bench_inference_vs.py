"""Inference speed of this checkout beside an older commit's, in one run: did a change to the
input path (the input contract, preprocessing, warnings) slow predicting down?

    .venv/bin/python benchmarks/bench_inference_vs.py RUN_DIR --against 22a1227

The older commit is checked out into a temporary git worktree; each side runs in its own Python
process (its own ``seqmnist`` on ``sys.path``), and the two alternate round after round so that
a machine whose speed drifts (this one's does, by 25 % within minutes) drifts under both. Each
round measures, on the same model and the same inputs:

- ``photo``: ``clf.predict(path)`` of the ~300x300 photo-like PNG of ``bench_predict.py``
  (decode, preprocess, forward), median ms over --calls calls;
- ``batch``: ``clf.predict(uint8 (1000, 28, 28) test digits)``, images/s: the contract's
  per-image checks plus preprocessing of MNIST-form digits plus the forward;
- ``forward``: ``clf.predict_mnist`` on the same batch (the model alone), images/s.

Prints a Markdown table (medians and best rounds, and the new/old ratio) naming the machine,
and writes benchmarks/results/inference_vs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import RESULTS_DIR, machine  # noqa: E402

# Runs inside each side's process: argv = run dir, data dir, photo path, calls. Prints JSON.
MEASURE = r"""
import json, statistics, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from seqmnist.predict import load
from seqmnist.data import load_mnist
run, data, photo, calls = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
clf = load(run)
digits = load_mnist(data, train=False, download=False).images[:1000].numpy()
for _ in range(10):
    clf.predict(photo)
times = []
for _ in range(calls):
    start = time.perf_counter(); clf.predict(photo); times.append(time.perf_counter() - start)
def rate(fn, repeats=3):
    fn()
    best = []
    for _ in range(repeats):
        start = time.perf_counter(); fn(); best.append(time.perf_counter() - start)
    return len(digits) / statistics.median(best)
print(json.dumps({
    "photo_ms": 1e3 * statistics.median(times),
    "batch_per_s": rate(lambda: clf.predict(digits)),
    "forward_per_s": rate(lambda: clf.predict_mnist(torch.from_numpy(digits))),
    "package": __import__("seqmnist").__file__,
}))
"""


def worktree(ref: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), ref],
        check=True,
        capture_output=True,
    )
    return where


def measure(src: Path, args: argparse.Namespace, photo: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(args.run), args.data_dir, str(photo), str(args.calls)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert Path(result.pop("package")).resolve().is_relative_to(src.resolve()), "wrong side"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory or checkpoint both sides load")
    parser.add_argument("--against", required=True, help="the older commit (any git ref)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default: 5)")
    parser.add_argument("--calls", type=int, default=200, help="photo calls per round")
    parser.add_argument(
        "--data-dir", default=os.environ.get("SEQMNIST_DATA", "data"), help="MNIST root"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "inference_vs.json")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_predict import photo_png  # the same photo as bench_predict.py
    from seqmnist.data import load_mnist

    digit = load_mnist(args.data_dir, train=False, download=False).images[0].numpy()
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.png"
        photo.write_bytes(photo_png(digit))
        old_src = worktree(args.against, Path(tmp) / "old") / "src"
        try:
            sides: dict[str, list[dict]] = {"old": [], "new": []}
            for n in range(args.rounds):
                for side, src in (("old", old_src), ("new", ROOT / "src")):
                    sides[side].append(measure(src, args, photo))
                print(f"round {n + 1}: {sides['old'][-1]} | {sides['new'][-1]}", file=sys.stderr)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(tmp) / "old")],
                check=False,
            )
    medians = {
        side: {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        for side, rounds in sides.items()
    }
    # This machine switches between a fast and a slow state for minutes at a time; each side's
    # best round is its speed in the fast state, the steadier comparison when medians straddle.
    best = {
        side: {
            key: (min if key.endswith("_ms") else max)(r[key] for r in rounds) for key in rounds[0]
        }
        for side, rounds in sides.items()
    }
    report = {
        "against": args.against,
        "machine": machine(),
        "rounds": sides,
        "medians": medians,
        "best": best,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, 1 torch thread; medians of {args.rounds} rounds\n")
    print(f"| measure | {args.against} | this checkout | new / old |\n| --- | ---: | ---: | ---: |")
    for stat, values in (("median", medians), ("best", best)):
        for key, unit in (("photo_ms", "ms"), ("batch_per_s", "img/s"), ("forward_per_s", "img/s")):
            old, new = values["old"][key], values["new"][key]
            print(f"| {key}, {stat} | {old:,.1f} {unit} | {new:,.1f} {unit} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
