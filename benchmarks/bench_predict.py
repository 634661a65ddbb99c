"""Inference speed: one photo end to end through `Classifier.predict`, and batch throughput of the
model in eager PyTorch and in onnxruntime.

    .venv/bin/python benchmarks/bench_predict.py                   # trains /tmp/bench-default first if missing
    .venv/bin/python benchmarks/bench_predict.py runs/default --calls 500

Measured:
- latency: ``clf.predict(path)`` on a ~300x300 photo-like PNG (a real MNIST test digit, inverted,
  scaled 8x, off-centre, shaded paper, noise, RGB): reading the file, decoding, preprocessing to
  28x28, normalising, the forward pass, softmax. Median and p90 over --calls calls, after loading.
  Targets: median <= 5 ms.
- throughput: the model's forward on --batch already-preprocessed test images, normalised, median
  of --repeats runs, eager PyTorch (inference_mode) and onnxruntime (the file `seqmnist export`
  writes) side by side. Target: >= 15,000 images/s.

Writes benchmarks/results/predict.json and the "predict" section of benchmarks/README.md, and
prints a Markdown table naming the machine. On a shared or busy machine the numbers are low
and noisy: the one-minute load average is recorded next to them.
"""  # noqa: E501 (the usage line is --help text, kept byte-identical)

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, machine, median_seconds, update_readme_section  # noqa: E402
from seqmnist.data import load_mnist, to_model_input  # noqa: E402
from seqmnist.predict import load  # noqa: E402

LATENCY_TARGET_MS = 5.0
THROUGHPUT_TARGET = 15_000


def photo_png(digit: np.ndarray, seed: int = 0) -> bytes:
    """(28, 28) uint8 MNIST digit -> PNG bytes of a ~300x300 RGB 'photo' of it on shaded paper."""
    rng = np.random.default_rng(seed)
    ink = (
        np.asarray(Image.fromarray(digit).resize((224, 224), Image.Resampling.BICUBIC), np.float32)
        / 255
    )
    coverage = np.zeros((300, 300), np.float32)
    coverage[30:254, 60:284] = np.clip(ink, 0, 1)  # off-centre
    yy, xx = np.mgrid[0:300, 0:300].astype(np.float32)
    paper = 225 * (1 - 0.1 * xx / 300 - 0.05 * yy / 300)  # light falling off across the sheet
    grey = paper * (1 - coverage) + 35 * coverage
    rgb = grey[..., None] * np.array([1.0, 0.98, 0.94], np.float32) + rng.normal(
        0, 6, (300, 300, 3)
    )
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(buffer, "PNG")
    return buffer.getvalue()


def time_predict(clf, photo: Path, calls: int) -> tuple[float, float, float]:
    """(median ms, p90 ms, CPU ms per call) of ``clf.predict(photo)``, after a warm-up.

    CPU time counts every thread of this process: well above the wall time means threads
    spin-waiting for each other (a busy machine), which slows everything else down too.
    """
    for _ in range(10):
        clf.predict(photo)
    times = []
    cpu_start = time.process_time()
    for _ in range(calls):
        start = time.perf_counter()
        clf.predict(photo)
        times.append(time.perf_counter() - start)
    cpu_ms = (time.process_time() - cpu_start) / calls * 1e3
    return statistics.median(times) * 1e3, float(np.percentile(times, 90) * 1e3), cpu_ms


def ensure_run(run_dir: Path, data_dir: str | None) -> None:
    if (run_dir / "checkpoint_best.pt").is_file() or run_dir.is_file():
        return
    print(
        f"no model at {run_dir}: training the default recipe there first (about 1.5 min on 2 cores)"
    )
    from seqmnist.config import preset_config
    from seqmnist.train import fit

    fit(preset_config("default"), run_dir, data_dir=data_dir, download=True, quiet=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "run",
        nargs="?",
        default="/tmp/bench-default",
        help=(
            "run directory or checkpoint; trained with the default recipe if missing "
            "(default: /tmp/bench-default)"
        ),
    )
    parser.add_argument(
        "--data-dir", help="folder holding MNIST/raw/ (default: $SEQMNIST_DATA, else ./data)"
    )
    parser.add_argument(
        "--calls", type=int, default=300, help="single-image predict calls (default: 300)"
    )
    parser.add_argument(
        "--batch", type=int, default=1000, help="images per batch for throughput (default: 1000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed batch runs; the median counts (default: 7)"
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads; 0 = PyTorch's default (default: 0)"
    )
    parser.add_argument(
        "--no-readme",
        action="store_true",
        help="do not update benchmarks/README.md (default: update it)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    run = Path(args.run)
    ensure_run(run, args.data_dir)
    test = load_mnist(args.data_dir, train=False, download=True)
    load_start = time.perf_counter()
    clf = load(run)
    load_seconds = time.perf_counter() - load_start

    # --- single-image latency, end to end -----------------------------------------------------
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "digit.png"
        photo.write_bytes(photo_png(test.images[0].numpy()))
        assert clf.predict(photo)[0].label == int(test.labels[0]), (
            "the benchmark photo is misclassified"
        )
        median_ms, p90_ms, cpu_ms = time_predict(clf, photo, args.calls)
        torch.set_num_threads(
            1
        )  # what `seqmnist predict` does: one image gains nothing from threads
        median_1t_ms, p90_1t_ms, cpu_1t_ms = time_predict(clf, photo, args.calls)
        torch.set_num_threads(threads)
        seen = clf.preprocess(photo)
        preprocess_s = median_seconds(lambda: clf.preprocess(photo), args.calls // 2, warmup=5)
    model_only_s = median_seconds(lambda: clf.predict_mnist(seen[None]), args.calls // 2, warmup=5)
    latency = {
        "photo": "300x300 RGB PNG, shaded paper, noise, digit scaled 8x off-centre",
        "calls": args.calls,
        "median_ms": median_ms,
        "p90_ms": p90_ms,
        "cpu_ms_per_call": cpu_ms,
        "one_thread_median_ms": median_1t_ms,
        "one_thread_p90_ms": p90_1t_ms,
        "one_thread_cpu_ms_per_call": cpu_1t_ms,
        "preprocess_median_ms": preprocess_s * 1e3,
        "model_batch1_median_ms": model_only_s * 1e3,
        "target_ms": LATENCY_TARGET_MS,
    }

    # --- batch throughput, eager and onnxruntime ---------------------------------------------
    batch = to_model_input(test.images[: args.batch], clf.config.normalize)  # (B, 28, 28) float32

    def eager() -> None:
        with torch.inference_mode():
            clf.model(batch)

    eager_s = median_seconds(eager, args.repeats, warmup=2)
    if threads > 1:  # one thread too: on a busy machine extra threads wait on each other
        torch.set_num_threads(1)
        eager_one_thread_s = median_seconds(eager, args.repeats, warmup=1)
        torch.set_num_threads(threads)
    else:
        eager_one_thread_s = eager_s
    api_s = median_seconds(
        lambda: clf.predict_mnist(test.images[: args.batch]), args.repeats, warmup=1
    )
    throughput = {
        "batch": args.batch,
        "repeats": args.repeats,
        "eager_images_per_s": args.batch / eager_s,
        "eager_one_thread_images_per_s": args.batch / eager_one_thread_s,
        "predict_mnist_images_per_s": args.batch / api_s,
        "target_images_per_s": THROUGHPUT_TARGET,
    }
    try:
        import onnxruntime as ort

        from seqmnist.export import export_model

        with tempfile.TemporaryDirectory() as tmp:
            report = export_model(run, "onnx", out=Path(tmp) / "model.onnx", data_dir=args.data_dir)
            session = ort.InferenceSession(report["path"], providers=["CPUExecutionProvider"])
            feed = {"images": batch.numpy()}
            onnx_s = median_seconds(lambda: session.run(None, feed), args.repeats, warmup=2)
            one = {"images": batch[:1].numpy()}
            onnx_one_s = median_seconds(lambda: session.run(None, one), args.calls // 2, warmup=5)
        throughput["onnxruntime_images_per_s"] = args.batch / onnx_s
        throughput["onnxruntime_version"] = ort.__version__
        latency["onnxruntime_batch1_median_ms"] = onnx_one_s * 1e3
    except ImportError:
        throughput["onnxruntime_images_per_s"] = None

    result = {
        "machine": {**machine(), "load_average_1min": os.getloadavg()[0]},
        "model": {
            "run": str(run),
            "name": clf.name,
            "parameters": clf.parameters,
            "test_accuracy": clf.test_accuracy,
            "load_seconds": load_seconds,
        },
        "latency": latency,
        "throughput": throughput,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "predict.json").write_text(json.dumps(result, indent=2) + "\n")

    m = result["machine"]
    ort_rate = throughput.get("onnxruntime_images_per_s")
    ort_one = latency.get("onnxruntime_batch1_median_ms")
    table = "\n".join(
        [
            f"Inference on {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
            f"with {m['torch_threads']} threads "
            f"(1-min load average {m['load_average_1min']:.1f}); "
            f"model {clf.name}, {clf.parameters:,} parameters.",
            "",
            "| measure | eager PyTorch | onnxruntime | target |",
            "| --- | --- | --- | --- |",
            "| `predict(photo.png)` end to end, median (p90); CPU time per call | "
            f"{latency['median_ms']:.2f} ms "
            f"({latency['p90_ms']:.2f} ms); {latency['cpu_ms_per_call']:.2f} ms | | "
            f"<= {LATENCY_TARGET_MS:g} ms |",
            "| same with one torch thread (as `seqmnist predict`) | "
            f"{latency['one_thread_median_ms']:.2f} ms "
            f"({latency['one_thread_p90_ms']:.2f} ms); "
            f"{latency['one_thread_cpu_ms_per_call']:.2f} ms | | <= {LATENCY_TARGET_MS:g} ms |",
            f"| of which preprocessing, median | {latency['preprocess_median_ms']:.2f} ms | | |",
            f"| model only, batch 1, median | {latency['model_batch1_median_ms']:.2f} ms | "
            f"{'' if ort_one is None else f'{ort_one:.2f} ms'} | |",
            f"| forward, batch {args.batch}, images/s | {throughput['eager_images_per_s']:,.0f} | "
            f"{'n/a' if ort_rate is None else f'{ort_rate:,.0f}'} | >= {THROUGHPUT_TARGET:,} |",
            f"| forward, batch {args.batch}, one thread, images/s | "
            f"{throughput['eager_one_thread_images_per_s']:,.0f} | | |",
            f"| `predict_mnist` (uint8 in, probabilities out), batch {args.batch}, images/s | "
            f"{throughput['predict_mnist_images_per_s']:,.0f} | | |",
        ]
    )
    print(table)
    if not args.no_readme:
        update_readme_section("predict", "## Inference (`benchmarks/bench_predict.py`)\n\n" + table)


if __name__ == "__main__":
    main()
