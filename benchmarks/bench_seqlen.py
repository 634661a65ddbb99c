"""Why long sequences are hard: test accuracy of a tanh RNN, a GRU and an LSTM reading the same
images as 28, 49, 196 and 784 steps, on one small fixed budget.

    python benchmarks/bench_seqlen.py              # about 30 minutes on a busy 2-core machine
    python benchmarks/bench_seqlen.py --smoke      # tiny sizes, nothing written
    python benchmarks/bench_seqlen.py --table-only # rewrite the README table and the plot

Every run: --order pixels with 28, 16, 4 or 1 pixels a step (784 / K steps, the raster order,
so only the length changes), a unidirectional 64-unit cell, final-state readout, --train-size
3000 (a seeded subset of the 59,000 training images left after a 1,000-image validation split),
2 epochs, batch 64, AdamW at a one-cycle peak of 2e-3, gradients clipped to norm 1, no
augmentation, the best validation epoch tested once (all 10,000 images), seed 0.
Results: benchmarks/results/seqlen.json, the "seqlen" table of benchmarks/README.md and
docs/seqlen.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, RESULTS_DIR, machine, update_readme_section  # noqa: E402
from seqmnist.config import apply_overrides, preset_config  # noqa: E402
from seqmnist.train import fit  # noqa: E402

CELLS = ("rnn", "gru", "lstm")
PIXELS_PER_STEP = {28: 28, 49: 16, 196: 4, 784: 1}  # steps -> pixels a step
BUDGET = {
    "order": "pixels",
    "bidirectional": False,
    "hidden": 64,
    "readout": "final",
    "train_size": 3000,
    "val_size": 1000,
    "epochs": 2,
    "batch_size": 64,
    "lr": 2e-3,
    "warmup_fraction": 0.05,
    "grad_clip": 1.0,
    "ema_decay": 0.0,
    "augment_shift": 0,
    "augment_rotate": 0.0,
    "augment_scale": 0.0,
    "seed": 0,
    "threads": 1,  # a busy shared machine: one thread each (times only, not results)
}
SMOKE = {"train_size": 128, "val_size": 200, "hidden": 8, "epochs": 1, "threads": 1}


def run_one(cell: str, steps: int, out: Path, smoke: bool, data_dir: str | None) -> dict:
    overrides = {**BUDGET, "cell": cell, "pixels_per_step": PIXELS_PER_STEP[steps]}
    config = apply_overrides(preset_config("default"), {**overrides, **(SMOKE if smoke else {})})
    summary_file = out / f"{cell}-{steps}" / "summary.json"
    if summary_file.is_file():  # an interrupted benchmark continues where it stopped
        summary = json.loads(summary_file.read_text())
    else:
        summary = fit(
            config, out / f"{cell}-{steps}", data_dir=data_dir, overwrite=True, quiet=True
        )
    print(f"{cell:<5} {steps:>4} steps: test accuracy {summary['test_acc']:.2%}", flush=True)
    return {"cell": cell, "steps": steps, "test_acc": summary["test_acc"]}


def render_table(result: dict) -> str:
    m = result["machine"]
    accs = {(r["cell"], r["steps"]): r["test_acc"] for r in result["runs"]}
    steps = sorted({r["steps"] for r in result["runs"]})
    lines = [
        f"Measured on {m['cpu']}, {m['cores']} cores, torch {m['torch']} (accuracy only, one "
        "seed; a shared machine). The same images read as T steps of 784 / T pixels; 3,000 "
        "training images, 2 epochs, a unidirectional 64-unit cell. Chance is 10 %.",
        "",
        "| cell | " + " | ".join(f"{t} steps" for t in steps) + " |",
        "| --- |" + " --- |" * len(steps),
    ]
    for cell in CELLS:
        cells = [f"{accs[(cell, t)]:.1%}" if (cell, t) in accs else "—" for t in steps]
        lines.append(f"| {cell} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw(result: dict, out_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for cell in CELLS:
        runs = sorted((r["steps"], r["test_acc"]) for r in result["runs"] if r["cell"] == cell)
        ax.plot([s for s, _ in runs], [a * 100 for _, a in runs], marker="o", label=cell)
    ax.axhline(10, color="grey", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xticks([28, 49, 196, 784], labels=["28", "49", "196", "784"])
    ax.minorticks_off()  # the log axis's minor labels would overprint the four lengths
    ax.set_xlabel("time steps per image (784 / pixels per step)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Same images, longer sequences (3,000 images, 2 epochs)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, nothing written")
    parser.add_argument("--table-only", action="store_true", help="rewrite table and plot")
    parser.add_argument("--out", help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--data-dir", help="MNIST root (default: $SEQMNIST_DATA, else ./data)")
    args = parser.parse_args()
    saved = RESULTS_DIR / "seqlen.json"
    if args.table_only:
        result = json.loads(saved.read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.out or tmp)
            runs = [
                run_one(cell, steps, out, args.smoke, args.data_dir)
                for steps in PIXELS_PER_STEP
                for cell in CELLS
            ]
        result = {"machine": machine(), "budget": BUDGET, "runs": runs}
        print(render_table(result))
        if args.smoke:
            return
        saved.write_text(json.dumps(result, indent=2) + "\n")
    update_readme_section("seqlen", render_table(result))
    draw(result, BENCH_DIR.parent / "docs" / "seqlen.png")


if __name__ == "__main__":
    main()
