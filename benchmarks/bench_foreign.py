"""Accuracy on "foreign" digits: images from sources other than MNIST's training set, made the
way people's own scans, prints and drawings are (see ``tests/foreign.py``), read end to end
through ``seqmnist.preprocess.to_mnist`` and a trained model.

    .venv/bin/python benchmarks/bench_foreign.py runs/default     # the whole test set, ~5 min
    .venv/bin/python benchmarks/bench_foreign.py runs/default --n 1000     # a quick look
    .venv/bin/python benchmarks/bench_foreign.py runs/seed0 runs/seed1 runs/seed2   # compared

For each source: how many images, accuracy, how many were rejected as "no ink" (or any other
``ImageError``; a rejected image counts as wrong), and for sources made from MNIST test digits
the same model's accuracy on those same digits in MNIST form (the 28x28 originals). Each source
is made and preprocessed once; every model reads the very same 28x28 images, side by side.
Targets (issue 19): every ``scan-*`` source within 0.5 points of its MNIST-form accuracy with
none rejected; ``font`` and ``font-noisy`` (every installed face, 10 digits each) >= 97% for
each model. Each gap comes with its standard error (paired: only the digits that the two
forms disagree on count). A gap of 0.5 points is 5 images in 1,000, where that error is about
0.3 points: one model's six scan gaps (seed 2 of the default recipe, 2026-12-01) ranged from
0.0 to -0.8 points on the first 1,000 test digits and from -0.1 to -0.4 on all 10,000. So the
whole test set is read by default.

Writes benchmarks/results/foreign.json and prints a Markdown table naming the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
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

MIN_FACES = 30  # issue 19: fonts are scored over at least 30 installed faces


def _preprocess(image) -> tuple[np.ndarray | None, str | None, float]:
    """One image -> (its 28x28 form or None, the rejection message or None, seconds taken)."""
    start = time.perf_counter()
    try:
        seen, message = to_mnist(image), None
    except ImageError as exc:
        seen, message = None, str(exc)
    return seen, message, time.perf_counter() - start


def prepare_source(name: str, n: int, seed: int, images, labels, workers: int) -> dict:
    """Make one source's images and read each through ``to_mnist`` once, for every model.
    ``workers`` processes share the work (each image is timed on its own)."""
    made, truth, indices = make_source(name, n, seed, images, labels)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            done = list(pool.map(_preprocess, made, chunksize=32))
    else:
        done = [_preprocess(image) for image in made]
    seen = [d[0] for d in done]
    messages = [d[1] for d in done if d[1] is not None]
    ok = np.array([s is not None for s in seen])
    batch = np.stack([s for s in seen if s is not None]) if ok.any() else np.zeros((0, 28, 28))
    return {
        "source": name,
        "truth": truth,
        "indices": indices,
        "ok": ok,
        "batch": torch.from_numpy(batch.astype(np.uint8)),  # (accepted, 28, 28)
        "messages": messages,
        "ms_per_image": round(1000 * float(np.mean([d[2] for d in done])), 2),
    }


def score(clf, prepared: dict, images: np.ndarray) -> dict:
    """One model's accuracy on one prepared source (a rejected image counts as wrong), and on
    the same digits in MNIST form where the source was made from MNIST test digits."""
    truth, indices = prepared["truth"], prepared["indices"]
    predicted = np.full(len(truth), -1)
    if prepared["ok"].any():
        predicted[prepared["ok"]] = clf.predict_mnist(prepared["batch"]).argmax(1).numpy()
    result = {
        "source": prepared["source"],
        "n": len(truth),
        "accuracy": float((predicted == truth).mean()),
        "rejected": len(prepared["messages"]),
        "preprocess_ms_per_image": prepared["ms_per_image"],
    }
    if indices is not None:
        mnist = clf.predict_mnist(torch.from_numpy(images[indices])).argmax(1).numpy()
        result["mnist_form_accuracy"] = float((mnist == truth).mean())
        result.update(_paired_gap(predicted == truth, mnist == truth))
    if prepared["messages"]:
        result["rejections"] = sorted(set(prepared["messages"]))[:3]
    return result


def _paired_gap(right: np.ndarray, right_in_mnist_form: np.ndarray) -> dict:
    """The same digits read in two forms: how many only one form got right, and the standard
    error of the accuracy gap in points (paired: only the digits the two forms disagree on
    count, McNemar's setting)."""
    d = right.astype(float) - right_in_mnist_form.astype(float)  # (n,) in {-1, 0, 1}
    return {
        "wrong_here_right_in_mnist_form": int((d < 0).sum()),
        "right_here_wrong_in_mnist_form": int((d > 0).sum()),
        "gap_standard_error_points": round(100 * float(d.std(ddof=1)) / math.sqrt(len(d)), 3),
    }


def table(results: list[dict]) -> str:
    lines = [
        "| source | n | accuracy | rejected | same digits, MNIST form | gap (points) | ms/image |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        mnist = r.get("mnist_form_accuracy")
        gap = "" if mnist is None else _gap_text(r)
        lines.append(
            f"| {r['source']} | {r['n']} | {r['accuracy']:.2%} | {r['rejected']} | "
            f"{'' if mnist is None else f'{mnist:.2%}'} | {gap} | {r['preprocess_ms_per_image']} |"
        )
    return "\n".join(lines)


def _gap_text(result: dict) -> str:
    """ "-0.30 ± 0.05": the gap to the same digits in MNIST form and its standard error, points."""
    gap = 100 * (result["accuracy"] - result["mnist_form_accuracy"])
    return f"{gap:+.2f} ± {result['gap_standard_error_points']:.2f}"


def _with_gap(result: dict) -> str:
    """ "99.10% (-0.30 ± 0.05)": accuracy, and its gap to the same digits in MNIST form."""
    gap = "" if result.get("mnist_form_accuracy") is None else f" ({_gap_text(result)})"
    return f"{result['accuracy']:.2%}{gap}"


def per_model_table(reports: list[dict]) -> str:
    """One row per source, one column per model: how the models compare on the same images
    (with each model's gap to MNIST form, in points, where the source has one)."""
    names = [Path(r["model"]).name for r in reports]
    lines = [
        "| source | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(names),
        "| MNIST test (whole set) | "
        + " | ".join(f"{r['model_test_accuracy']:.2%}" for r in reports)
        + " |",
    ]
    for i, first in enumerate(reports[0]["results"]):
        cells = [_with_gap(r["results"][i]) for r in reports]
        lines.append(f"| {first['source']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_model(run: Path, prepared: list[dict], images: np.ndarray) -> dict:
    clf = load(run)
    results = [score(clf, source, images) for source in prepared]
    for result in results:
        print(f"{run} {result['source']}: {result}", file=sys.stderr)
    return {"model": str(run), "model_test_accuracy": clf.test_accuracy, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument(
        "runs", type=Path, nargs="+", help="run directories or checkpoint files (several: compared)"
    )
    parser.add_argument(
        "--n",
        type=int,
        default=10_000,
        help="images per source: MNIST test digits 0..n-1 (default: all 10,000); fonts: at most "
        "10 per installed face",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that preprocess the images (default: one per core)",
    )
    parser.add_argument("--data", default=None, help="MNIST root (default: $SEQMNIST_DATA)")
    parser.add_argument("--sources", nargs="*", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "foreign.json")
    args = parser.parse_args()

    torch.set_num_threads(1)
    split = load_mnist(args.data, train=False, download=False)
    images, labels = split.images.numpy(), split.labels.numpy()
    if not 1 <= args.n <= len(images):
        parser.error(f"--n must be 1..{len(images)} (the MNIST test digits the scans are made of)")
    prepared = []
    for name in args.sources:
        n = min(args.n, len(font_files()) * 10) if name in FONT_SOURCES else args.n
        prepared.append(prepare_source(name, n, args.seed, images, labels, args.workers))
        print(f"{name}: {n} images read, {prepared[-1]['ms_per_image']} ms each", file=sys.stderr)
    models = [evaluate_model(run, prepared, images) for run in args.runs]
    faces = len(font_files())
    if faces < MIN_FACES:
        print(
            f"only {faces} font faces installed: the font target is judged over at least "
            f"{MIN_FACES} (apt-get install fonts-dejavu fonts-liberation gives 38)",
            file=sys.stderr,
        )
    report = {
        "models": models,
        "fonts": [Path(f).name for f in font_files()],
        "left_out_training_families": list(printed_bank()[1]),  # never scored (tests/foreign.py)
        "seed": args.seed,
        "images_per_source": args.n,
        "machine": machine(),
        "targets": {
            "scan_variants": list(SCAN_VARIANTS),
            "scan_max_gap_points": 0.5,
            "scan_rejected": 0,
            "font_accuracy": 0.97,
            "font_faces_at_least": MIN_FACES,
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
