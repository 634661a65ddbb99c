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

--smoke runs every step with tiny sizes and writes nothing: it checks that the script works
(the suite runs it on the CPU with synthetic data), not what the figures are.
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
from common import RESULTS_DIR, machine, update_readme_section  # noqa: E402

from seqmnist.config import apply_overrides, preset_config  # noqa: E402
from seqmnist.data import load_mnist, split_train_val  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"), help="MNIST root (default: ../shared/data)")
    parser.add_argument("--seed-batches", type=int, default=400, help="batches timed for the seed preset (default: 400)")
    parser.add_argument("--device", default="cuda", help="device to measure (default: cuda; cpu only with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, write nothing: check the script runs (default: off)")
    args = parser.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu.py: no CUDA device; run benchmarks/bench_cpu.py instead")
    if device != "cuda" and not args.smoke:
        raise SystemExit("bench_gpu.py: --device other than cuda is only for --smoke")
    torch.backends.cudnn.benchmark = True
    info = machine()
    print(f"machine: {info}", flush=True)

    # --smoke: a few batches, one epoch, a small validation split; every code path, no figures.
    batches, repeats, seed_batches = (3, 1, 3) if args.smoke else (50, 5, args.seed_batches)
    small = {"epochs": 1, "val_size": 100} if args.smoke else {}
    amp_bf16 = "bf16" if device == "cuda" else "off"  # autocast is CUDA-only in seqmnist

    full = load_mnist(args.data_dir, train=True, download=False)
    default = apply_overrides(preset_config("default"), small)
    seed = preset_config("seed")
    train_split, _ = split_train_val(full, default.val_size, default.seed)
    result: dict = {"machine": info}

    variants = {
        "default": {},
        "default_bf16": {"amp": amp_bf16},
        "hidden128_batch1024": {"hidden": 128, "batch_size": 1024, "lr": 1e-2},
    }
    for name, overrides in variants.items():
        cfg = apply_overrides(default, overrides)
        sps = throughput(cfg, train_split, batches=batches, repeats=repeats, device=device)
        result[f"throughput_{name}"] = sps
        print(f"throughput {name}: {sps:,.0f} samples/s", flush=True)

    runs = {}
    for name, overrides in variants.items():
        run = full_run(0, args.data_dir, device=device, **small, **overrides)
        runs[name] = run
        print(
            f"{name}: final {run['final_test_acc']:.2%}; 98.15% after {run['train_seconds_to_98.15']} s, "
            f"99.0% after {run['train_seconds_to_99.0']} s of training; total {run['total_wall_seconds']:.1f} s",
            flush=True,
        )
    result["runs"] = runs

    seed_sps = throughput(seed, full, batches=seed_batches, repeats=min(repeats, 3), device=device)
    seed_epoch = len(full) / seed_sps
    article_epoch = article_dataloader_epoch_seconds(args.data_dir, seed_batches, device=device)
    result["seed_epoch_seconds"] = seed_epoch
    result["article_dataloader_epoch_seconds"] = article_epoch
    result["seed_speedup_vs_article_loop"] = article_epoch / seed_epoch
    print(f"seed preset: {seed_epoch:.2f} s/epoch; article's loop: {article_epoch:.2f} s/epoch "
          f"({article_epoch / seed_epoch:.1f}x)", flush=True)

    if args.smoke:
        print("smoke run: every step ran; nothing written")
        return
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "gpu.json").write_text(json.dumps(result, indent=2) + "\n")

    def fmt(x: float | None) -> str:
        return f"{x:.2f} s" if x is not None else "not reached"

    rows = ["| configuration | samples/s | training s to 98.15 % | training s to 99.0 % | final test |",
            "| --- | --- | --- | --- | --- |"]
    for name, run in runs.items():
        sps = result.get(f"throughput_{name}")
        rows.append(f"| {name} | {sps:,.0f} |" if sps else f"| {name} | - |")
        rows[-1] += f" {fmt(run['train_seconds_to_98.15'])} | {fmt(run['train_seconds_to_99.0'])} | {run['final_test_acc']:.2%} |"
    rows.append("")
    rows.append(f"`seed` preset: {seed_epoch:.2f} s/epoch (tensor-resident) vs {article_epoch:.2f} s/epoch "
                f"(the article's DataLoader loop): {article_epoch / seed_epoch:.1f}x faster.")
    update_readme_section("gpu", f"## GPU ({info['gpu']}, torch {info['torch']}) - {time.strftime('%Y-%m-%d')}\n\n" + "\n".join(rows))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
