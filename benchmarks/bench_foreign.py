"""Accuracy on "foreign" digits: images from sources other than MNIST's training set, made the
way people's own scans, prints and drawings are (see ``tests/foreign.py``), read end to end
through ``seqmnist.preprocess.to_mnist`` and a trained model.

    .venv/bin/python benchmarks/bench_foreign.py runs/default            # 1,000 per source
    .venv/bin/python benchmarks/bench_foreign.py runs/default --n 200
    .venv/bin/python benchmarks/bench_foreign.py runs/seed0 runs/seed1 runs/seed2   # compared

For each source: how many images, accuracy, how many were rejected as "no ink" (or any other
``ImageError``; a rejected image counts as wrong), and for sources made from MNIST test digits
the same model's accuracy on those same digits in MNIST form (the 28x28 originals). Several
models (seeds of one recipe) are read on the very same images and compared side by side. Targets
(issue 19): every ``scan-*`` source within 0.5 points of its MNIST-form accuracy with none
rejected; ``font`` and ``font-noisy`` (every installed face, 10 digits each) >= 97% for each
model.

Writes benchmarks/results/foreign.json and prints a Markdown table naming the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from common import RESULTS_DIR, machine  # noqa: E402
from foreign import (  # noqa: E402
    FONT_SOURCES,
    FROM_MNIST_TEST,
    SCAN_VARIANTS,
    SOURCES,
    font_files,
    make_source,
)
from seqmnist.data import load_mnist  # noqa: E402
from seqmnist.images import ImageError  # noqa: E402
from seqmnist.predict import load  # noqa: E402
from seqmnist.preprocess import to_mnist  # noqa: E402
from seqmnist.printed import printed_bank  # noqa: E402


def run_source(clf, name: str, n: int, seed: int, images: np.ndarray, labels: np.ndarray) -> dict:
    made, truth, indices = make_source(name, n, seed, images, labels)
    seen, rejected, messages = [], 0, []
    start = time.perf_counter()
    for image in made:
        try:
            seen.append(to_mnist(image))
        except ImageError as exc:
            rejected += 1
            messages.append(str(exc))
            seen.append(None)
    ms_per_image = 1000 * (time.perf_counter() - start) / len(made)
    ok = [s is not None for s in seen]
    batch = (
        np.stack([s for s in seen if s is not None]) if any(ok) else np.zeros((0, 28, 28), np.uint8)
    )
    predicted = np.full(len(made), -1)
    predicted[np.array(ok)] = clf.predict_mnist(torch.from_numpy(batch)).argmax(1).numpy()
    result = {
        "source": name,
        "n": len(made),
        "accuracy": float((predicted == truth).mean()),
        "rejected": rejected,
        "preprocess_ms_per_image": round(ms_per_image, 2),
    }
    if indices is not None:
        mnist = clf.predict_mnist(torch.from_numpy(images[indices])).argmax(1).numpy()
        result["mnist_form_accuracy"] = float((mnist == truth).mean())
    if messages:
        result["rejections"] = sorted(set(messages))[:3]
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| source | n | accuracy | rejected | same digits, MNIST form | gap (points) | ms/image |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        mnist = r.get("mnist_form_accuracy")
        gap = "" if mnist is None else f"{100 * (r['accuracy'] - mnist):+.1f}"
        lines.append(
            f"| {r['source']} | {r['n']} | {r['accuracy']:.2%} | {r['rejected']} | "
            f"{'' if mnist is None else f'{mnist:.2%}'} | {gap} | {r['preprocess_ms_per_image']} |"
        )
    return "\n".join(lines)


def per_model_table(reports: list[dict]) -> str:
    """One row per source, one column per model: how the models compare on the same images."""
    names = [Path(r["model"]).name for r in reports]
    lines = [
        "| source | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
        "| MNIST test (whole set) | "
        + " | ".join(f"{r['model_test_accuracy']:.2%}" for r in reports)
        + " |",
    ]
    for i, first in enumerate(reports[0]["results"]):
        cells = [f"{r['results'][i]['accuracy']:.2%}" for r in reports]
        lines.append(f"| {first['source']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_model(run: Path, args: argparse.Namespace, images, labels) -> dict:
    clf = load(run)
    results = []
    for name in args.sources:
        n = min(args.n, len(font_files()) * 10) if name in FONT_SOURCES else args.n
        results.append(run_source(clf, name, n, args.seed, images, labels))
        print(f"{run} {name}: {results[-1]}", file=sys.stderr)
    return {"model": str(run), "model_test_accuracy": clf.test_accuracy, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run directories or checkpoint files (several: compared)"
    )
    parser.add_argument("--n", type=int, default=1000, help="images per source (default: 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, help="MNIST root (default: $SEQMNIST_DATA)")
    parser.add_argument("--sources", nargs="*", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "foreign.json")
    args = parser.parse_args()

    torch.set_num_threads(1)
    split = load_mnist(args.data, train=False, download=False)
    images, labels = split.images.numpy(), split.labels.numpy()
    models = [evaluate_model(run, args, images, labels) for run in args.runs]
    report = {
        "models": models,
        "fonts": [Path(f).name for f in font_files()],
        "left_out_training_families": list(printed_bank()[1]),  # never scored (tests/foreign.py)
        "seed": args.seed,
        "machine": machine(),
        "targets": {
            "scan_variants": list(SCAN_VARIANTS),
            "scan_max_gap_points": 0.5,
            "scan_rejected": 0,
            "font_accuracy": 0.97,
        },
        "from_mnist_test": list(FROM_MNIST_TEST),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores; {len(report['fonts'])} font faces\n")
    for model in models:
        print(f"model {model['model']} (test accuracy {model['model_test_accuracy']})\n")
        print(table(model["results"]) + "\n")
    if len(models) > 1:
        print(per_model_table(models))


if __name__ == "__main__":
    main()
