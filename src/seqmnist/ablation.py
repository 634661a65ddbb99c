"""What each of the article's fixes is worth: its recipe, one fix at a time, all four, ours.

Every step starts from ``--preset seed`` (the article's recipe, faithfully) and changes only the
flags it names, so a row's gap to the first row is that fix alone::

    article, as published    --preset seed
    + logits                 --no-softmax-output            (flaw 1: softmax into the loss)
    + final-state readout    --readout final                (flaw 2: output[:, -1, :])
    + normalised pixels      --normalize                    (ToTensor scaling only)
    + validation selection   --val-size 5000 --no-eval-test-every-epoch   (flaw 3)
    all four                 the four above together
    default recipe           --preset default               (plus AdamW, one-cycle, EMA, ...)

The data pipeline (flaw 4: one PIL image at a time) changes speed, not results, and is not a
flag: every row here uses the tensor-resident pipeline. Each step trains with ``fit`` for the
same number of epochs and several seeds; runs already finished in ``out_dir`` are read back, so
an interrupted ablation continues where it stopped. ``benchmarks/bench_ablation.py`` and
``seqmnist ablate`` both call ``run_ablation``.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import TrainConfig, apply_overrides, preset_config
from .errors import SeqMnistError
from .run import RunDir
from .train import fit

VALIDATION = {"val_size": 5000, "eval_test_every_epoch": False}
FIXES = {
    "logits": {"softmax_output": False},
    "readout": {"readout": "final"},
    "normalize": {"normalize": True},
    "validation": VALIDATION,
}
# (name shown, preset, overrides, the flags in words)
STEPS: list[tuple[str, str, dict[str, Any], str]] = [
    ("article, as published", "seed", {}, "--preset seed"),
    ("+ logits into the loss", "seed", FIXES["logits"], "--no-softmax-output"),
    ("+ final-state readout", "seed", FIXES["readout"], "--readout final"),
    ("+ normalised pixels", "seed", FIXES["normalize"], "--normalize"),
    (
        "+ validation selection",
        "seed",
        VALIDATION,
        "--val-size 5000 --no-eval-test-every-epoch",
    ),
    ("all four fixes", "seed", {k: v for f in FIXES.values() for k, v in f.items()}, "all four"),
    ("default recipe", "default", {}, "--preset default"),
]


def step_config(preset: str, overrides: dict[str, Any], epochs: int, seed: int) -> TrainConfig:
    """One step's config: its preset, its fixes, the ablation's budget and seed."""
    return apply_overrides(preset_config(preset), {**overrides, "epochs": epochs, "seed": seed})


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def _one_run(
    config: TrainConfig, run_dir: Path, data_dir: Any, download: bool, extra: dict[str, Any]
) -> dict[str, Any]:
    """A finished run's summary: read back if it is there (and ran this very recipe), else
    trained now."""
    config = apply_overrides(config, extra)
    summary_file = run_dir / "summary.json"
    if summary_file.is_file():
        if RunDir(run_dir).read_config().recipe() != config.recipe():
            raise SeqMnistError(
                f"{run_dir} holds a finished run of another recipe (other --epochs, seeds or "
                "--train-size?): pass another --out, or delete that folder"
            )
        return json.loads(summary_file.read_text())
    return fit(
        config,
        run_dir,
        data_dir=data_dir,
        download=download,
        overwrite=True,
        quiet=True,
    )


def run_ablation(
    out_dir: str | os.PathLike,
    *,
    epochs: int = 2,
    seeds: tuple[int, ...] = (0, 1, 2),
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    extra: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train every step for every seed into ``out_dir/<step>-seed<k>``; one row per step with
    each seed's test accuracy, their mean and standard deviation. ``extra`` overrides every run
    (tests shrink the model with it)."""
    rows = []
    for name, preset, overrides, flags in STEPS:
        accs = []
        for seed in seeds:
            config = step_config(preset, overrides, epochs, seed)
            run_dir = Path(out_dir) / f"{_slug(name)}-seed{seed}"
            summary = _one_run(config, run_dir, data_dir, download, extra or {})
            accs.append(summary["test_acc"])
            log(f"{name:<26} seed {seed}: test accuracy {summary['test_acc']:.2%}")
        rows.append(
            {
                "step": name,
                "flags": flags,
                "test_acc": accs,
                "mean": statistics.fmean(accs),
                "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            }
        )
    return rows


def format_ablation(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """The table: each step's mean test accuracy ± its standard deviation over the seeds, the
    change from the article's row, and every seed's figure."""
    base = rows[0]["mean"]
    header = ("step", "flags", "test accuracy", "vs article", "seeds")
    body = [
        (
            r["step"],
            r["flags"],
            f"{r['mean']:.2%} ± {r['std']:.2%}",
            "—" if i == 0 else f"{(r['mean'] - base) * 100:+.2f} pt",
            " / ".join(f"{a:.2%}" for a in r["test_acc"]),
        )
        for i, r in enumerate(rows)
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()
        for row in [header, *body]
    )
