"""CPU benchmark: the default preset against the article's recipe (`seed` preset), in one run.

Measures, on this machine, with nothing else running (close other work first):
  1. the fp32 matmul peak (2048x2048, median of 10);
  2. training throughput of the default model (samples/s, median of several timed windows) and the
     FLOP/s it achieves, counting the recurrent layers' multiply-adds (x2 FLOPs, x3 for fwd + bwd);
  3. per-epoch time of the `seed` preset, timed over a bounded number of batches, both through
     seqmnist's tensor-resident loop and through the article's own DataLoader + ToTensor loop;
  4. full `default` preset runs (several seeds): training seconds until the test accuracy first
     reaches 98.15 % (test evaluated after each epoch for this measurement only; its time is not
     counted as training), final test accuracy, total wall time.
Writes benchmarks/results/cpu.json and the CPU section of benchmarks/README.md.

    make bench                                    # or: .venv/bin/python benchmarks/bench_cpu.py
    .venv/bin/python benchmarks/bench_cpu.py --runs 1 --skip-article   # quicker
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    RESULTS_DIR,
    machine,
    matmul_peak_gflops,
    median_seconds,
    median_time_to,
    sync,
    update_readme_section,
)  # noqa: E402
from seqmnist.config import apply_overrides, preset_config  # noqa: E402
from seqmnist.cudagraph import GraphedStep, graph_blocker  # noqa: E402
from seqmnist.data import Augmentation, epoch_permutation, load_mnist, split_train_val  # noqa: E402
from seqmnist.engine import train_one_epoch  # noqa: E402
from seqmnist.model import build_model, recurrent_macs_per_sample  # noqa: E402
from seqmnist.runtime import DistInfo, Runtime, keep_freed_memory_for_reuse  # noqa: E402
from seqmnist.state import TrainState  # noqa: E402
from seqmnist.train import fit  # noqa: E402

ARTICLE_ACC = 0.9815


def recurrent_gflops(model_config, samples_per_s: float) -> float:
    """Training GFLOP/s of the recurrent layers.

    2 FLOPs per multiply-add, x3 for forward + backward.
    """
    return 6 * recurrent_macs_per_sample(model_config) * samples_per_s / 1e9


# What `throughput` leaves out of the loop: schedule, weight average and augmentation.
PLAIN_LOOP = {
    "schedule": "constant",
    "ema_decay": 0.0,
    "augment_shift": 0,
    "augment_rotate": 0.0,
    "augment_scale": 0.0,
}


def throughput(config, train_split, batches: int, repeats: int, device: str = "cpu") -> float:
    """Samples/s of the bare training step (forward, backward, clipping, optimiser as `fit`
    builds them; no schedule, weight average or augmentation) on real batches."""
    return loop_throughput(
        apply_overrides(config, PLAIN_LOOP), train_split, device, batches, repeats
    )


def loop_throughput(config, train_split, device: str, batches: int, repeats: int) -> float:
    """Samples/s of `fit`'s training loop for ``config`` on real batches: its schedule, weight
    average, clipping and augmentation, and a CUDA graph where `fit` would use one."""
    config = apply_overrides(config, {"seed": 0})
    n = batches * config.batch_size
    graphs = graph_blocker(config, torch.device(device), 1, n) is None
    runtime = Runtime(torch.device(device), DistInfo(), torch.get_num_threads())
    state = TrainState(config, runtime, steps_per_epoch=batches, capturable=graphs)
    graphed = GraphedStep(state) if graphs else None
    split = train_split.to(device)
    order = epoch_permutation(len(split), seed=0, epoch=1)[:n]
    augment = Augmentation(config.augment_shift, config.augment_rotate, config.augment_scale)
    generator = torch.Generator().manual_seed(0)

    def window() -> None:
        train_one_epoch(
            state.model,
            split,
            order,
            state.step,
            batch_size=config.batch_size,
            normalize=config.normalize,
            amp=config.amp,
            augment=augment,
            augment_generator=generator,
            graphed=graphed,
        )
        sync(device)

    return n / median_seconds(window, repeats, warmup=1)


def article_dataloader_epoch_seconds(
    data_dir: str | None, batches: int, device: str = "cpu"
) -> float:
    """The article's input pipeline and loop, verbatim in spirit: torchvision MNIST with
    ToTensor, DataLoader(batch_size=32, shuffle=True), softmax model, Adam 1e-3."""
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from seqmnist.data import resolve_data_dir

    dataset = datasets.MNIST(
        root=str(resolve_data_dir(data_dir)),
        train=True,
        download=False,
        transform=transforms.ToTensor(),
    )
    loader = DataLoader(dataset, batch_size=32, shuffle=True)
    torch.manual_seed(0)
    model = build_model(preset_config("seed").model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    it = iter(loader)

    def run(n: int) -> None:
        for _ in range(n):
            images, labels = next(it)
            images, labels = images.to(device), labels.to(device)
            out = model(images.view(-1, 28, 28))
            loss = loss_fn(out, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    run(5)
    sync(device)
    start = time.perf_counter()
    run(batches)
    sync(device)
    per_batch = (time.perf_counter() - start) / batches
    return per_batch * len(loader)


def full_run(
    seed: int,
    data_dir: str | None,
    preset: str = "default",
    run_dir: Path | None = None,
    **overrides,
) -> dict:
    """One whole `fit` of ``preset`` with the test set evaluated after every epoch (for the
    time-to-accuracy figures only), in ``run_dir`` (kept) or a temporary folder."""
    config = apply_overrides(
        preset_config(preset), {"seed": seed, "eval_test_every_epoch": True, **overrides}
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = run_dir or Path(tmp) / "run"
        start = time.perf_counter()
        summary = fit(config, run, data_dir=data_dir, download=False, quiet=True)
        wall = time.perf_counter() - start
        from seqmnist.run import read_metrics

        rows = read_metrics(run / "metrics.csv")
    reached = next(
        (r for r in rows if r["test_acc"] is not None and r["test_acc"] >= ARTICLE_ACC), None
    )
    return {
        "seed": seed,
        "epochs": config.epochs,
        "final_test_acc": summary["test_acc"],
        "best_epoch": summary["best_epoch"],
        "train_seconds": summary["train_seconds"],
        "samples_per_s": summary["samples_per_s"],  # the whole loop: augmentation, EMA, clipping
        "total_wall_seconds": wall,
        "epoch_reaching_98.15": int(reached["epoch"]) if reached else None,
        "train_seconds_to_99.0": next(
            (r["train_seconds"] for r in rows if (r["test_acc"] or 0) >= 0.99), None
        ),
        "train_seconds_to_98.15": reached["train_seconds"] if reached else None,
        "test_acc_per_epoch": [r["test_acc"] for r in rows],
        "train_seconds_per_epoch": [r["train_seconds"] for r in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", help="MNIST root (default: $SEQMNIST_DATA, else ./data)")
    parser.add_argument(
        "--runs", type=int, default=3, help="full default-preset runs, seeds 0.. (default: 3)"
    )
    parser.add_argument(
        "--seed-batches",
        type=int,
        default=300,
        help="batches timed for the seed preset (default: 300)",
    )
    parser.add_argument(
        "--skip-article",
        action="store_true",
        help="skip the article's DataLoader loop (default: run it)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help=(
            "rewrite the README section from benchmarks/results/cpu.json, measure nothing "
            "(default: off)"
        ),
    )
    args = parser.parse_args()
    if args.render_only:
        update_readme_section(
            "cpu", render_table(json.loads((RESULTS_DIR / "cpu.json").read_text()))
        )
        return

    keep_freed_memory_for_reuse()  # the allocator setting `seqmnist train` uses on the CPU
    info = machine()
    print(f"machine: {info}", flush=True)
    peak = matmul_peak_gflops()
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s", flush=True)

    train_full = load_mnist(args.data_dir, train=True, download=False)
    default = preset_config("default")
    seed = preset_config("seed")
    train_split, _ = split_train_val(train_full, default.val_size, default.seed)

    default_sps = throughput(default, train_split, batches=60, repeats=5)
    flops = recurrent_gflops(default.model, default_sps)
    print(
        f"default model: {default_sps:,.0f} samples/s, {flops:.1f} GFLOP/s "
        f"({flops / peak:.0%} of peak)",
        flush=True,
    )
    # An epoch of the default holds the training split and the printed digits (57,700 images).
    default_epoch = (len(train_split) + default.printed_digits) / default_sps

    seed_sps = throughput(seed, train_full, batches=args.seed_batches, repeats=3)
    seed_epoch = len(train_full) / seed_sps
    print(
        f"seed preset (tensor-resident loop): {seed_sps:,.0f} samples/s, {seed_epoch:.1f} s/epoch",
        flush=True,
    )
    article_epoch = (
        None
        if args.skip_article
        else article_dataloader_epoch_seconds(args.data_dir, args.seed_batches)
    )
    if article_epoch:
        print(f"article's DataLoader loop: {article_epoch:.1f} s/epoch", flush=True)

    runs = []
    for s in range(args.runs):
        r = full_run(s, args.data_dir)
        runs.append(r)
        print(
            f"default preset, seed {s}: test {r['final_test_acc']:.2%} after {r['epochs']} epochs, "
            f"98.15% at epoch {r['epoch_reaching_98.15']} "
            f"({r['train_seconds_to_98.15']:.1f} s training), "
            f"training {r['train_seconds']:.1f} s, total {r['total_wall_seconds']:.1f} s",
            flush=True,
        )

    def med(key: str) -> float | None:
        return median_time_to([r[key] for r in runs])  # None (not reached) counts as slowest

    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": info,
        "matmul_peak_gflops": peak,
        "default": {
            "config": default.to_dict(),
            "samples_per_s": default_sps,
            "recurrent_gflops_per_s": flops,
            "fraction_of_peak": flops / peak,
            "epoch_seconds": default_epoch,
            "runs": runs,
            "median_train_seconds_to_98.15": med("train_seconds_to_98.15"),
            "median_final_test_acc": med("final_test_acc"),
            "median_total_wall_seconds": med("total_wall_seconds"),
            "median_run_samples_per_s": med("samples_per_s"),
            "median_run_recurrent_gflops_per_s": recurrent_gflops(
                default.model, med("samples_per_s")
            ),
        },
        "seed": {
            "samples_per_s": seed_sps,
            "epoch_seconds": seed_epoch,
            "article_dataloader_epoch_seconds": article_epoch,
            "batches_timed": args.seed_batches,
        },
        "seed_over_default_epoch_ratio": seed_epoch / default_epoch,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    update_readme_section("cpu", render_table(result))

    print(render_table(result))


def seconds_text(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f} s"


def render_table(result: dict) -> str:
    """The CPU section of benchmarks/README.md, from the results dict.

    Also used by --render-only.
    """
    info, d, s = result["machine"], result["default"], result["seed"]
    runs, peak = d["runs"], result["matmul_peak_gflops"]
    # The article's own time: its DataLoader loop where measured, else seqmnist's seed-preset loop.
    article_epoch = s["article_dataloader_epoch_seconds"] or s["epoch_seconds"]
    loop = (
        "the article's DataLoader loop" if s["article_dataloader_epoch_seconds"] else "seed preset"
    )
    time_to = [r["train_seconds_to_98.15"] for r in runs]
    rows = [
        "| what | article's recipe (`--preset seed`) | seqmnist `default` |",
        "| --- | --- | --- |",
        f"| seconds per epoch | {s['epoch_seconds']:.1f} (seqmnist's tensor-resident loop); "
        f"{article_epoch:.1f} ({loop}) | {d['epoch_seconds']:.1f} |",
        "| training throughput (forward, backward, optimiser step) | "
        f"{s['samples_per_s']:,.0f} samples/s "
        f"(tensor-resident loop) | {d['samples_per_s']:,.0f} samples/s |",
        f"| recurrent FLOP/s vs fp32 matmul peak ({peak:.0f} GFLOP/s) | - | "
        f"{d['recurrent_gflops_per_s']:.0f} GFLOP/s ({d['fraction_of_peak']:.0%}) |",
        f"| the same over whole training runs (augmentation, EMA, clipping included; median) | - | "
        f"{d['median_run_samples_per_s']:,.0f} samples/s, "
        f"{d['median_run_recurrent_gflops_per_s']:.0f} GFLOP/s "
        f"({d['median_run_recurrent_gflops_per_s'] / peak:.0%}) |",
        f"| training time to 98.15 % test | ~17 epochs (DESIGN.md) x {article_epoch:.1f} s ≈ "
        f"{17 * article_epoch / 60:.1f} min | "
        f"{seconds_text(d['median_train_seconds_to_98.15'])} (median of {len(runs)}: "
        + ", ".join(f"{t:.1f}" if t is not None else "not reached" for t in time_to)
        + ") |",
        "| final test accuracy | 98.15 % reported after 30 epochs | "
        f"{d['median_final_test_acc']:.2%} (median of "
        + ", ".join(f"{r['final_test_acc']:.2%}" for r in runs)
        + f") after {d['config']['epochs']} epochs |",
        f"| wall time of a whole run | 30 epochs x {article_epoch:.1f} s ≈ "
        f"{30 * article_epoch / 60:.0f} min | "
        f"{d['median_total_wall_seconds']:.0f} s (median, including a test evaluation "
        "after every epoch "
        "done only for this benchmark) |",
        "| epoch-time ratio seed preset / default | "
        f"{result['seed_over_default_epoch_ratio']:.1f}x; "
        f"article's loop / default: {article_epoch / d['epoch_seconds']:.1f}x | |",
    ]
    header = (
        f"## CPU ({info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
        f"{info['torch_threads']} threads) - `make bench`, {result.get('date', '')}\n\n"
    )
    return header + "\n".join(rows)


if __name__ == "__main__":
    main()
