"""What each of the article's fixes is worth, measured: src/seqmnist/ablation.py's steps (the
article's recipe, one fix at a time, all four, the default recipe), three seeds each.

    python benchmarks/bench_ablation.py              # about 20 minutes on a busy 2-core machine
    python benchmarks/bench_ablation.py --smoke      # tiny sizes, nothing written
    python benchmarks/bench_ablation.py --table-only # rewrite the README table from the JSON

The same as `seqmnist ablate`. Budget: 2 epochs per run on a seeded 10,000-image subset of the
training split (--train-size; drawn after a step's 5,000-image validation split), one thread.
Results: benchmarks/results/ablation.json and the "ablation" table of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, machine, update_readme_section  # noqa: E402
from seqmnist.ablation import format_ablation, run_ablation  # noqa: E402

EPOCHS, SEEDS = 2, (0, 1, 2)
# What fits a busy 2-core machine: 21 runs on a seeded 10,000-image subset (--train-size), one
# thread each (threads change times, not results).
BUDGET = {"train_size": 10_000, "threads": 1}
# Tiny and fast, on real MNIST: 256 training images, an 8-unit model, one thread.
SMOKE = {"train_size": 256, "hidden": 8, "batch_size": 64, "threads": 1}


def render_table(result: dict) -> str:
    m = result["machine"]
    return (
        f"Measured on {m['cpu']}, {m['cores']} cores, torch {m['torch']} (accuracy only; the "
        f"machine was shared, which changes times, not results). {result['epochs']} epochs per "
        f"run on a seeded subset of {result['budget']['train_size']:,} training images "
        f"(--train-size), seeds {', '.join(map(str, result['seeds']))}; test accuracy of "
        "the checkpoint each recipe selects (the last epoch without a validation split, the "
        "best validation epoch with one), mean ± standard deviation over the seeds.\n\n"
        + format_ablation(result["rows"], markdown=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, nothing written")
    parser.add_argument("--table-only", action="store_true", help="rewrite the README table")
    parser.add_argument("--out", help="folder for the runs (default: a temporary folder)")
    parser.add_argument("--data-dir", help="MNIST root (default: $SEQMNIST_DATA, else ./data)")
    args = parser.parse_args()
    saved = RESULTS_DIR / "ablation.json"
    if args.table_only:
        update_readme_section("ablation", render_table(json.loads(saved.read_text())))
        return
    epochs, seeds = (1, (0, 1)) if args.smoke else (EPOCHS, SEEDS)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_ablation(
            args.out or tmp,
            epochs=epochs,
            seeds=seeds,
            data_dir=args.data_dir,
            extra=SMOKE if args.smoke else BUDGET,
            log=lambda line: print(line, flush=True),
        )
    budget = SMOKE if args.smoke else BUDGET
    result = {"machine": machine(), "epochs": epochs, "seeds": list(seeds), "budget": budget}
    result["rows"] = rows
    print(render_table(result))
    if args.smoke:
        return
    saved.write_text(json.dumps(result, indent=2) + "\n")
    update_readme_section("ablation", render_table(result))


if __name__ == "__main__":
    main()
