"""``seqmnist ablate``: the article's recipe, one fix at a time (ablation.py)."""

from __future__ import annotations

import argparse

from ..options import require_int
from .common import _common_data_flags


def _add_ablate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablate",
        help="what each of the article's fixes is worth: its recipe, one fix at a time, all four, "
        "the default recipe, several seeds each",
        description="Train the article's recipe (--preset seed), then the same with one fix at a "
        "time (--no-softmax-output, --readout final, --normalize, --val-size 5000 "
        "--no-eval-test-every-epoch), all four, and the default recipe, each for --epochs and "
        "every --seeds; print each step's test accuracy, mean ± standard deviation. Runs "
        "already finished in --out are read back, so an interrupted ablation continues.",
    )
    p.add_argument(
        "--out", default="runs/ablation", help="folder for the runs (default: %(default)s)"
    )
    p.add_argument(
        "--epochs", type=int, default=2, help="epochs per run, 1 to 100 (default: %(default)s)"
    )
    p.add_argument(
        "--seeds", type=int, default=3, help="seeds per step, 1 to 20 (default: %(default)s)"
    )
    p.add_argument(
        "--train-size",
        type=int,
        default=10_000,
        help="train every run on a seeded subset of this many images, 0 for all (default: "
        "%(default)s, the budget of the README's table)",
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (default: off)")
    _common_data_flags(p)


def _run_ablate(args: argparse.Namespace) -> int:
    from ..ablation import format_ablation, run_ablation

    require_int("--epochs", args.epochs, 1, 100)
    require_int("--seeds", args.seeds, 1, 20)
    require_int("--train-size", args.train_size, 0, 55_000)
    rows = run_ablation(
        args.out,
        epochs=args.epochs,
        seeds=tuple(range(args.seeds)),
        data_dir=args.data_dir,
        download=not args.no_download,
        extra={"train_size": args.train_size},
        log=lambda line: print(line, flush=True),
    )
    print()
    print(format_ablation(rows, markdown=args.markdown))
    return 0
