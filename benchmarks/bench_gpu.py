"""GPU benchmark in one go, for a machine with CUDA and its own preinstalled PyTorch (no internet).

Run from the repository root; it puts src/ on the path instead of installing anything:

    python benchmarks/bench_gpu.py --data-dir DIR --out "$OUT/gpu.json" --budget 540

Device time is scarce (about 15 minutes a session), so the steps run in order of importance, each
is skipped when its estimated cost no longer fits --budget seconds, a step that fails is recorded
and the others still run, and the results file is rewritten after every step. The steps:

  1. ceiling: samples/s of the cuDNN LSTM alone (forward + backward, no loop) in each preset's
     shape, and of the full training loop of each preset (forward, backward, clipping,
     optimiser, schedule, weight average, augmentation as `fit` builds them): the loop's share
     of the ceiling. The `seed` preset with and without CUDA graphs.
  2. graph parity: the `seed` preset's first steps eager and as CUDA graphs, same weights?
  3. seed epoch: the article's DataLoader + ToTensor loop against seqmnist's on the same GPU.
  4. default: the `default` preset end to end, --runs seeds (test evaluated after each epoch for
     the measurement only): training seconds to 98.15 % and 99.0 %, final test accuracy; then
     one run with --amp bf16 and one GPU-sized variant (hidden 128, batch 1024).
  5. inference: images/s at batch 10,000, eager (fp32 and bf16) and ONNX Runtime.
  6. best: the `best` preset, --best-seeds seeds.
  7. smnist / pmnist: each preset once, its epochs cut to fit --long-seconds of training.

    python benchmarks/bench_gpu.py --smoke --device cpu --data-dir DIR   # what the suite runs
    python benchmarks/bench_gpu.py --render-only     # README table from results/gpu.json

--smoke runs every step with tiny sizes and writes nothing unless --out: it checks that the script
works, not what the figures are. Exit code 1 when a step failed.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from bench_cpu import article_dataloader_epoch_seconds, full_run, loop_throughput  # noqa: E402
from common import RESULTS_DIR, machine, median_seconds, sync, update_readme_section  # noqa: E402
from seqmnist.config import TrainConfig, apply_overrides, preset_config  # noqa: E402
from seqmnist.cudagraph import GraphedStep  # noqa: E402
from seqmnist.data import (  # noqa: E402
    epoch_permutation,
    load_mnist,
    to_model_input,
)
from seqmnist.engine import train_one_epoch  # noqa: E402
from seqmnist.runtime import DistInfo, Runtime  # noqa: E402
from seqmnist.state import TrainState  # noqa: E402

# Tiny sizes for --smoke: every code path, no figures (also fits the suite's 600 synthetic images).
SMOKE = {"epochs": 1, "val_size": 100, "hidden": 8, "layers": 1, "batch_size": 50}
SMOKE_LONG = {"pixels_per_step": 28}  # smnist / pmnist in smoke: 28 steps, not 784
GPU_SIZED = {"hidden": 128, "batch_size": 1024, "lr": 1e-2}  # DESIGN.md's anchor
BEST_SHIFT_ONLY = {"augment_rotate": 0.0, "augment_scale": 0.0}
INFERENCE_BATCH = 10_000


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def gpu_machine(device: str) -> dict:
    info = machine()
    info["cuda"] = torch.version.cuda
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info["platform"] = platform.platform()
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["multiprocessors"] = props.multi_processor_count
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        info["onnxruntime"] = None
    return info


# --- 1. ceilings and loop throughput -------------------------------------------------------------


def lstm_ceiling(config: TrainConfig, device: str, amp: str, repeats: int, calls: int) -> float:
    """Samples/s of forward + backward of the preset's nn.LSTM alone, on random input of the
    preset's shape (B, T, F): no reader, head, loss, optimiser or loop."""
    m = config.model
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(
        m.features_per_step,
        m.hidden,
        num_layers=m.layers,
        bidirectional=m.bidirectional,
        batch_first=True,
        dropout=m.dropout if m.layers > 1 else 0.0,
    ).to(device)
    x = torch.randn(config.batch_size, m.steps, m.features_per_step, device=device)
    dtype = torch.bfloat16 if amp == "bf16" else torch.float32

    def window() -> None:
        for _ in range(calls):
            with torch.autocast(device_type=device, dtype=dtype, enabled=amp == "bf16"):
                out, _ = lstm(x)  # (B, T, D*H)
            out.float().sum().backward()
        sync(device)

    return calls * config.batch_size / median_seconds(window, repeats, warmup=1)


# --- 2. CUDA-graph parity ------------------------------------------------------------------------


def graph_parity(train, device: str, batches: int) -> dict:
    """The seed preset's first ``batches`` steps from the same initial weights: eager with the
    default optimiser, eager with the capturable one, and as CUDA graphs. Max |difference| of
    the weights and of the summed losses."""
    config = preset_config("seed")
    n = batches * config.batch_size
    split = train.to(device)
    order = epoch_permutation(len(split), seed=0, epoch=1)[:n]
    runtime = Runtime(torch.device(device), DistInfo(), torch.get_num_threads())
    results = {}
    for name, capturable, graphs in (
        ("eager", False, False),
        ("eager_capturable", True, False),
        ("graphed", True, device == "cuda"),
    ):
        state = TrainState(config, runtime, steps_per_epoch=batches, capturable=capturable)
        stats = train_one_epoch(
            state.model,
            split,
            order,
            state.step,
            batch_size=config.batch_size,
            normalize=config.normalize,
            graphed=GraphedStep(state) if graphs else None,
        )
        weights = torch.cat([p.detach().flatten().double() for p in state.model.parameters()])
        results[name] = (weights, stats["loss_sum"])
    base_w, base_loss = results["eager"]
    report = {"steps": batches, "graphs_used": device == "cuda"}
    for name in ("eager_capturable", "graphed"):
        w, loss = results[name]
        report[f"{name}_max_abs_weight_diff"] = float((w - base_w).abs().max())
        report[f"{name}_loss_sum_diff"] = abs(loss - base_loss)
    w, _ = results["graphed"]
    cap_w, _ = results["eager_capturable"]
    report["graphed_vs_eager_capturable_max_abs_weight_diff"] = float((w - cap_w).abs().max())
    return report


# --- 4. and 6. whole runs ------------------------------------------------------------------------


def run_summary(run: dict) -> dict:
    """The fields of bench_cpu.full_run's result that the tables use."""
    keys = (
        "seed",
        "epochs",
        "final_test_acc",
        "train_seconds",
        "total_wall_seconds",
        "train_seconds_to_98.15",
        "train_seconds_to_99.0",
        "test_acc_per_epoch",
        "train_seconds_per_epoch",
        "samples_per_s",
    )
    return {k: run.get(k) for k in keys}


# --- 5. inference --------------------------------------------------------------------------------


def inference(run_dir: Path, data_dir: str, device: str, batch: int, repeats: int) -> dict:
    """Images/s of the trained model at ``batch`` test images: eager fp32 and bf16 on the device,
    and ONNX Runtime with the best provider it has (CUDA if installed, else the CPU)."""
    from seqmnist.export import export_model
    from seqmnist.trained import load_trained

    trained = load_trained(run_dir, device)
    test = load_mnist(data_dir, train=False, download=False)
    images = test.images[:batch]
    x = to_model_input(images, trained.config.normalize).to(device)  # (B, 28, 28)
    report: dict = {"batch": len(x)}
    for amp in ("off", "bf16") if device == "cuda" else ("off",):

        def eager(amp: str = amp) -> None:
            with (
                torch.inference_mode(),
                torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp == "bf16"),
            ):
                trained.model(x)
            sync(device)

        key = "eager_fp32" if amp == "off" else "eager_bf16"
        report[f"{key}_images_per_s"] = len(x) / median_seconds(eager, repeats, warmup=2)
    onnx_path = run_dir / "model.onnx"
    export = export_model(run_dir, "onnx", out=onnx_path, data_dir=data_dir, download=False)
    report["onnx_export_seconds"] = export["seconds"]
    report.update(onnx_throughput(onnx_path, x.cpu().numpy(), repeats))
    return report


def onnx_throughput(path: Path, inputs, repeats: int) -> dict:
    import onnxruntime as ort

    available = ort.get_available_providers()
    provider = next(
        (p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available),
        available[0],
    )
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=[provider])
    seconds = median_seconds(lambda: session.run(None, {"images": inputs}), repeats, warmup=1)
    return {
        "onnxruntime_provider": provider,
        "onnxruntime_used": session.get_providers()[0],
        "onnxruntime_images_per_s": len(inputs) / seconds,
    }


# --- the driver ----------------------------------------------------------------------------------


class Bench:
    """Runs named steps in order, within a time budget, saving the results after each."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = args.device
        self.smoke = args.smoke
        self.out = (
            Path(args.out) if args.out else (None if args.smoke else RESULTS_DIR / "gpu.json")
        )
        self.deadline = time.perf_counter() + args.budget
        self.work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
        self.result: dict = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "machine": gpu_machine(self.device),
            "budget_seconds": args.budget,
            "failed": {},
            "skipped": {},
        }
        print(f"machine: {self.result['machine']}", flush=True)
        self.full = load_mnist(args.data_dir, train=True, download=False)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def save(self) -> None:
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps(self.result, indent=2) + "\n")

    def step(self, name: str, needs_seconds: float, fn: Callable[[], object]) -> object:
        """Run ``fn`` unless ``needs_seconds`` no longer fit the budget; record its value under
        ``name``, or its failure (one line, traceback printed), and save."""
        if not self.smoke and self.left() < needs_seconds:
            why = f"needs about {needs_seconds:.0f} s, {self.left():.0f} s of the budget left"
            self.result["skipped"][name] = why
            print(f"SKIPPED {name}: {why}", flush=True)
            return None
        start = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # recorded, reported, and the exit code says so
            traceback.print_exc()
            self.result["failed"][name] = one_line(exc)
            print(f"FAILED {name}: {one_line(exc)}", flush=True)
            value = None
        else:
            self.result[name] = value
            print(f"{name} ({time.perf_counter() - start:.1f} s): {brief(value)}", flush=True)
        self.save()
        return value

    def overrides(self, preset: str, **overrides) -> dict:
        """``overrides`` on top of the tiny sizes of --smoke (none in a real run)."""
        extra = dict(SMOKE) if self.smoke else {}
        if self.smoke and preset in ("smnist", "pmnist"):
            extra.update(SMOKE_LONG)
        return {**extra, **overrides}

    def config(self, preset: str, **overrides) -> TrainConfig:
        return apply_overrides(preset_config(preset), self.overrides(preset, **overrides))

    def timed_run(self, preset: str, seed: int, **overrides) -> dict:
        """One whole `fit` of ``preset``, test evaluated after every epoch for the curve; the
        run directory is kept (for the inference step)."""
        run_dir = self.work / f"{preset}-seed{seed}-{len(list(self.work.iterdir()))}"
        run = full_run(
            seed,
            self.args.data_dir,
            preset=preset,
            run_dir=run_dir,
            device=self.device,
            **self.overrides(preset, **overrides),
        )
        return {**run_summary(run), "run_dir": str(run_dir)}


def brief(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 400 else text[:400] + "..."


def measure_ceilings(bench: Bench) -> None:
    """Step 1: the cuDNN LSTM alone and the whole loop, preset by preset."""
    batches, repeats = (3, 1) if bench.smoke else (40, 5)
    seed_batches = 3 if bench.smoke else 300
    shapes = {
        "default": {},
        "default_bf16": {"amp": "bf16"},
        "seed": {},
        "seed_no_graphs": {"cuda_graphs": False},
        "smnist": {},
        "pmnist": {},
        "best": {},
        "best_bf16": {"amp": "bf16"},
    }
    for name, overrides in shapes.items():
        preset = name.split("_")[0]
        if bench.device != "cuda" and overrides.get("amp") == "bf16":
            overrides = {**overrides, "amp": "off"}  # autocast is CUDA-only in seqmnist
        config = bench.config(preset, **overrides)
        n = seed_batches if preset == "seed" else batches
        if preset in ("smnist", "pmnist") and not bench.smoke:
            n = 10  # ~30 ms a step: a few hundred ms a window
        bench.step(
            f"ceiling_{name}",
            5,
            lambda config=config, n=n: {
                "lstm_samples_per_s": lstm_ceiling(
                    config, bench.device, config.amp, repeats, min(n, 20)
                ),
                "loop_samples_per_s": loop_throughput(config, bench.full, bench.device, n, repeats),
                "batch_size": config.batch_size,
            },
        )


def main() -> None:
    args = parse_args()
    if args.render_only:
        result = json.loads((RESULTS_DIR / "gpu.json").read_text())
        update_readme_section("gpu", render_table(result))
        print(render_table(result))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: no CUDA device; run benchmarks/bench_cpu.py instead")
    if args.device != "cuda" and not args.smoke:
        raise SystemExit("bench_gpu.py: --device other than cuda is only for --smoke")
    bench = Bench(args)
    smoke = args.smoke
    measure_ceilings(bench)
    bench.step(
        "graph_parity", 10, lambda: graph_parity(bench.full, args.device, 3 if smoke else 20)
    )
    seed_batches = 3 if smoke else 400
    bench.step(
        "article_dataloader_epoch_seconds",
        15,
        lambda: article_dataloader_epoch_seconds(args.data_dir, seed_batches, args.device),
    )
    runs = {}
    bench.result["runs"] = runs
    for s in range(args.runs):
        run = bench.step(f"default_seed{s}", 25, lambda s=s: bench.timed_run("default", s))
        if run:
            runs.setdefault("default", []).append(run)
    bf16 = "bf16" if args.device == "cuda" else "off"
    for name, overrides in (("default_bf16", {"amp": bf16}), ("default_gpu_sized", GPU_SIZED)):
        run = bench.step(name, 25, lambda o=overrides: bench.timed_run("default", 0, **o))
        if run:
            runs.setdefault(name, []).append(run)
    first = runs.get("default", [{}])[0].get("run_dir")
    if first:
        batch = 200 if smoke else INFERENCE_BATCH
        bench.step(
            "inference",
            30,
            lambda: inference(Path(first), args.data_dir, args.device, batch, 3 if smoke else 10),
        )
    for s in range(args.best_seeds):
        run = bench.step(f"best_seed{s}", 60, lambda s=s: bench.timed_run("best", s))
        if run:
            runs.setdefault("best", []).append(run)
    for preset in ("smnist", "pmnist"):
        run = bench.step(preset, 40, lambda p=preset: long_run(bench, p))
        if run:
            runs.setdefault(preset, []).append(run)
    # Last, if time is left: the seed preset end to end with CUDA graphs (its accuracy should
    # match the article's), and the best preset without rotations and zoom (what they add).
    extras = (("seed", "seed", {}), ("best_shift_only", "best", BEST_SHIFT_ONLY))
    for name, preset, overrides in extras:
        run = bench.step(name, 50, lambda p=preset, o=overrides: bench.timed_run(p, 0, **o))
        if run:
            runs.setdefault(name, []).append(run)
    bench.save()
    finish(bench)


def long_run(bench: Bench, preset: str) -> dict:
    """The preset once, with as many epochs as fit --long-seconds of training (at most its
    own): 784-step presets take minutes an epoch-set, and device time is scarce."""
    config = bench.config(preset)
    loop = (bench.result.get(f"ceiling_{preset}") or {}).get("loop_samples_per_s")
    train_images = len(bench.full) - config.val_size
    box = min(bench.args.long_seconds, bench.left() - 30)
    # An epoch: training at the measured loop speed, plus validating and testing (~15 %).
    epoch_seconds = 1.15 * train_images / loop if loop else math.inf
    epochs = max(1, min(config.epochs, int(box // epoch_seconds)))
    run = bench.timed_run(preset, 0, epochs=epochs)
    run["epochs_of_preset"] = preset_config(preset).epochs
    run["time_box_seconds"] = box
    return run


def finish(bench: Bench) -> None:
    result = bench.result
    if bench.smoke:
        print("smoke run: every step ran" if not result["failed"] else "smoke run: steps failed")
    else:
        table = render_table(result)
        update_readme_section("gpu", table)
        print(table)
    if result["failed"]:
        raise SystemExit(
            f"bench_gpu.py: {len(result['failed'])} step(s) failed: {', '.join(result['failed'])}"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=str(ROOT.parent / "shared" / "data"),
        help="MNIST root (default: ../shared/data)",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="seeded runs of the default preset (default: 3)"
    )
    parser.add_argument(
        "--best-seeds", type=int, default=1, help="seeded runs of the best preset (default: 1)"
    )
    parser.add_argument(
        "--long-seconds",
        type=float,
        default=100.0,
        help="training seconds for each of smnist and pmnist (default: 100)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=540.0,
        help="wall seconds for the whole script; steps that no longer fit are skipped "
        "(default: 540)",
    )
    parser.add_argument(
        "--device", default="cuda", help="device to measure (default: cuda; cpu only with --smoke)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes; writes nothing unless --out: check the script runs (default: off)",
    )
    parser.add_argument(
        "--out",
        help="JSON file for the results, rewritten after every step (default: "
        "benchmarks/results/gpu.json; none with --smoke)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the README section from results/gpu.json, measure nothing (default: off)",
    )
    return parser.parse_args()


# --- the README table ----------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _secs(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not values:
        return "-"
    middle = statistics.median(math.inf if v is None else v for v in values)
    text = "not reached" if math.isinf(middle) else f"{middle:.2f} s"
    if len(values) > 1:
        text += " (" + ", ".join(f"{v:.2f}" if v is not None else "not reached" for v in values)
        text += ")"
    return text if known or len(values) == 1 else "not reached"


def render_table(result: dict) -> str:
    """The GPU section of benchmarks/README.md from the results dict."""
    info = result["machine"]
    lines = [
        f"## GPU ({info.get('gpu')}, torch {info.get('torch')}, CUDA {info.get('cuda')}, "
        f"cuDNN {info.get('cudnn')}) - {result['date']}",
        "",
        f"Command: `{result.get('command', 'bench_gpu.py')}`",
        "",
        "| run | seeds | final test (median) | training s to 98.15 % | to 99.0 % | epochs | "
        "training s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, runs in result.get("runs", {}).items():
        finals = [r["final_test_acc"] for r in runs]
        lines.append(
            f"| {name} | {len(runs)} | {_pct(statistics.median(finals))} "
            f"({', '.join(_pct(f) for f in finals)}) | "
            f"{_secs([r['train_seconds_to_98.15'] for r in runs])} | "
            f"{_secs([r['train_seconds_to_99.0'] for r in runs])} | {runs[0]['epochs']} | "
            f"{statistics.median(r['train_seconds'] for r in runs):.1f} |"
        )
    for name, runs in result.get("runs", {}).items():
        lines += [f"\n{name}, seed {r['seed']}: {r['note']}" for r in runs if r.get("note")]
    lines += _ceiling_lines(result) + _seed_lines(result) + _inference_lines(result)
    for kind in ("failed", "skipped"):
        for name, why in result.get(kind, {}).items():
            lines.append(f"\n{kind.capitalize()}: {name}: {why}")
    return "\n".join(lines)


def _ceiling_lines(result: dict) -> list[str]:
    rows = [k for k in result if k.startswith("ceiling_")]
    if not rows:
        return []
    lines = [
        "",
        "| preset | batch | cuDNN LSTM alone, samples/s | training loop, samples/s | loop / LSTM |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in rows:
        c = result[key]
        lines.append(
            f"| {key.removeprefix('ceiling_')} | {c['batch_size']} | "
            f"{c['lstm_samples_per_s']:,.0f} | {c['loop_samples_per_s']:,.0f} | "
            f"{c['loop_samples_per_s'] / c['lstm_samples_per_s']:.0%} |"
        )
    if any(result[k]["loop_samples_per_s"] > result[k]["lstm_samples_per_s"] for k in rows):
        lines.append(
            "\nThe LSTM alone is timed eagerly; at small batches it is launch-bound itself, "
            "which a loop replayed as a CUDA graph is not: hence loops above 100 %."
        )
    return lines


def _seed_lines(result: dict) -> list[str]:
    article = result.get("article_dataloader_epoch_seconds")
    graphed = (result.get("ceiling_seed") or {}).get("loop_samples_per_s")
    eager = (result.get("ceiling_seed_no_graphs") or {}).get("loop_samples_per_s")
    if not (article and graphed and eager):
        return []
    lines = [
        "",
        f"`seed` preset, one epoch of 60,000 images: {60_000 / graphed:.2f} s with CUDA graphs, "
        f"{60_000 / eager:.2f} s eager, {article:.2f} s in the article's DataLoader loop: "
        f"{article / (60_000 / graphed):.1f}x faster with graphs "
        f"({article / (60_000 / eager):.1f}x eager).",
    ]
    parity = result.get("graph_parity")
    if parity:
        same = parity["graphed_vs_eager_capturable_max_abs_weight_diff"]
        lines.append(
            f"After {parity['steps']} steps the graphed weights differ from eager ones with the "
            f"same optimiser by at most {same:.1e} (from PyTorch's default Adam: "
            f"{parity['graphed_max_abs_weight_diff']:.1e})."
        )
    return lines


def _inference_lines(result: dict) -> list[str]:
    inf = result.get("inference")
    if not inf:
        return []
    bf16 = inf.get("eager_bf16_images_per_s")
    return [
        "",
        f"Inference at batch {inf['batch']:,}: eager fp32 {inf['eager_fp32_images_per_s']:,.0f} "
        f"images/s"
        + (f", eager bf16 {bf16:,.0f}" if bf16 else "")
        + f", ONNX Runtime ({inf['onnxruntime_used']}) {inf['onnxruntime_images_per_s']:,.0f}.",
    ]


if __name__ == "__main__":
    main()
