"""GPU benchmark in one go, for a machine with CUDA and its own preinstalled PyTorch (no internet).

Run from the repository root; it puts src/ on the path instead of installing anything:

    python benchmarks/bench_gpu.py --data-dir ../shared/data

Measures on the first CUDA device:
  * training throughput of the default model (fp32, and bf16 autocast);
  * the `default` preset end to end (test evaluated after each epoch for the measurement only):
    training seconds to 98.15 % and to 99.0 % test accuracy, final accuracy; the same with a
    GPU-sized variant (hidden 128, batch 1024) for comparison;
  * seconds per epoch of the `seed` preset through seqmnist's tensor-resident loop against the
    article's DataLoader + ToTensor loop on the same GPU (the target is >= 4x faster).
Writes benchmarks/results/gpu.json and the GPU section of benchmarks/README.md.

    python benchmarks/bench_gpu.py --smoke --device cpu --data-dir DIR   # what the test suite runs

--smoke runs every step with tiny sizes and writes nothing (unless --out): it checks that the
script works (the suite runs it on the CPU with synthetic data), not what the figures are.

On the device machine only $OUT comes back, so pass --out "$OUT/gpu.json" and copy
benchmarks/README.md there too. A step that fails is recorded and the others still run; the
exit code is then 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from bench_cpu import article_dataloader_epoch_seconds, full_run, throughput  # noqa: E402
from common import RESULTS_DIR, machine, median_time_to, update_readme_section  # noqa: E402
from seqmnist.config import apply_overrides, preset_config  # noqa: E402
from seqmnist.data import load_mnist, split_train_val  # noqa: E402


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=str(ROOT.parent / "shared" / "data"),
        help="MNIST root (default: ../shared/data)",
    )
    parser.add_argument(
        "--seed-batches",
        type=int,
        default=400,
        help="batches timed for the seed preset (default: 400)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="seeded end-to-end runs of the default preset (default: 3)",
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
        help="JSON file for the results, rewritten after every step so that a run cut short "
        "keeps what it measured (default: benchmarks/results/gpu.json; none with --smoke)",
    )
    args = parser.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: no CUDA device; run benchmarks/bench_cpu.py instead")
    if device != "cuda" and not args.smoke:
        raise SystemExit("bench_gpu.py: --device other than cuda is only for --smoke")
    out = Path(args.out) if args.out else (None if args.smoke else RESULTS_DIR / "gpu.json")
    torch.backends.cudnn.benchmark = True
    info = machine()
    print(f"machine: {info}", flush=True)

    # --smoke: a few batches, one epoch, a small validation split; every code path, no figures.
    batches, repeats, seed_batches = (3, 1, 3) if args.smoke else (50, 5, args.seed_batches)
    small = {"epochs": 1, "val_size": 100} if args.smoke else {}
    amp_bf16 = "bf16" if device == "cuda" else "off"  # autocast is CUDA-only in seqmnist
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": info, "failed": {}}

    def save() -> None:
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=2) + "\n")

    def measure(name: str, fn):
        """Run one measurement; a failure is recorded and printed, and the next one still runs
        (device time is scarce: one broken variant must not cost the others)."""
        try:
            value = fn()
        except Exception as exc:  # recorded, reported, and the exit code says so
            result["failed"][name] = one_line(exc)
            print(f"FAILED {name}: {one_line(exc)}", flush=True)
            value = None
        save()
        return value

    full = load_mnist(args.data_dir, train=True, download=False)
    default = apply_overrides(preset_config("default"), small)
    seed = preset_config("seed")
    train_split, _ = split_train_val(full, default.val_size, default.seed)

    variants = {
        "default": {},
        "default_bf16": {"amp": amp_bf16},
        "hidden128_batch1024": {"hidden": 128, "batch_size": 1024, "lr": 1e-2},
    }
    for name, overrides in variants.items():
        cfg = apply_overrides(default, overrides)
        sps = measure(
            f"throughput_{name}",
            lambda cfg=cfg: throughput(
                cfg, train_split, batches=batches, repeats=repeats, device=device
            ),
        )
        result[f"throughput_{name}"] = sps
        if sps:
            print(f"throughput {name}: {sps:,.0f} samples/s", flush=True)

    runs: dict[str, list[dict]] = {}
    result["runs"] = runs
    for name, overrides in variants.items():
        seeds = range(args.runs) if name == "default" else range(1)  # the target's figure: a median
        for s in seeds:
            run = measure(
                f"run_{name}_seed{s}",
                lambda s=s, overrides=overrides: full_run(
                    s, args.data_dir, device=device, **small, **overrides
                ),
            )
            if run is None:
                continue
            runs.setdefault(name, []).append(run)
            print(
                f"{name} seed {s}: final {run['final_test_acc']:.2%}; "
                f"98.15% after {run['train_seconds_to_98.15']} s, "
                f"99.0% after {run['train_seconds_to_99.0']} s of training; "
                f"total {run['total_wall_seconds']:.1f} s",
                flush=True,
            )

    seed_sps = measure(
        "seed_throughput",
        lambda: throughput(
            seed, full, batches=seed_batches, repeats=min(repeats, 3), device=device
        ),
    )
    article_epoch = measure(
        "article_dataloader_epoch_seconds",
        lambda: article_dataloader_epoch_seconds(args.data_dir, seed_batches, device=device),
    )
    seed_epoch = len(full) / seed_sps if seed_sps else None
    result["seed_epoch_seconds"] = seed_epoch
    result["article_dataloader_epoch_seconds"] = article_epoch
    if seed_epoch and article_epoch:
        result["seed_speedup_vs_article_loop"] = article_epoch / seed_epoch
        print(
            f"seed preset: {seed_epoch:.2f} s/epoch; article's loop: {article_epoch:.2f} s/epoch "
            f"({article_epoch / seed_epoch:.1f}x)",
            flush=True,
        )
    save()

    if args.smoke:
        print(
            "smoke run: every step ran" if not result["failed"] else "smoke run: some steps failed"
        )
    else:
        table = render_table(result)
        update_readme_section("gpu", table)
        print(table)
    if result["failed"]:
        raise SystemExit(
            f"bench_gpu.py: {len(result['failed'])} step(s) failed: {', '.join(result['failed'])}"
        )


def render_table(result: dict) -> str:
    """The GPU section of benchmarks/README.md from the results dict."""

    def secs(values: list[float | None]) -> str:
        middle = median_time_to(values)
        text = "not reached" if middle is None else f"{middle:.2f} s"
        if len(values) > 1 and any(v is not None for v in values):
            text += (
                " (median of "
                + ", ".join(f"{v:.2f}" if v is not None else "not reached" for v in values)
                + ")"
            )
        return text

    rows = [
        "| configuration | samples/s | training s to 98.15 % | training s to 99.0 % | final test |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, runs in result["runs"].items():
        sps = result.get(f"throughput_{name}")
        finals = ", ".join(f"{r['final_test_acc']:.2%}" for r in runs)
        rows.append(
            f"| {name} | {f'{sps:,.0f}' if sps else '-'} | "
            f"{secs([r['train_seconds_to_98.15'] for r in runs])} | "
            f"{secs([r['train_seconds_to_99.0'] for r in runs])} | {finals} |"
        )
    if result.get("seed_speedup_vs_article_loop"):
        rows += [
            "",
            f"`seed` preset: {result['seed_epoch_seconds']:.2f} s/epoch (tensor-resident) vs "
            f"{result['article_dataloader_epoch_seconds']:.2f} s/epoch "
            "(the article's DataLoader loop): "
            f"{result['seed_speedup_vs_article_loop']:.1f}x faster.",
        ]
    for name, error in result["failed"].items():
        rows.append(f"\nFailed: {name}: {error}")
    info = result["machine"]
    return f"## GPU ({info['gpu']}, torch {info['torch']}) - {result['date']}\n\n" + "\n".join(rows)


if __name__ == "__main__":
    main()
