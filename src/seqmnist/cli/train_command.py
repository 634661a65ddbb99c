"""``seqmnist train``: its flags are built from the config dataclasses (config.py)."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from ..cells import CELL_SPECS
from ..config import PRESETS, TrainConfig, apply_overrides, flag_fields, preset_config
from ..errors import ConfigError, SeqMnistError
from .common import _add_config_flag, _common_data_flags, _defaults_text


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model into a run directory",
        description="Train a recurrent classifier on MNIST rows. Starts from --preset; every other "
        "flag overrides that one field of the preset.",
    )
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=None,
        help="default: our recipe (all four fixes); seed: the article's recipe, faithfully; "
        "smnist / pmnist: sequential / permuted MNIST, 784 steps of one pixel (GPU work); "
        "best: the most accurate rows recipe, a 2-layer bidirectional LSTM of 256 units with "
        "rotations and zoom (GPU work) (default: default, or the --config file's preset)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="start from a config file: a config.json that seqmnist wrote (the whole recipe), or "
        "hand-written JSON / TOML whose fields replace those of --preset; flags override both "
        "(default: none)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config as JSON (a file --config reads back) and exit without "
        "training (default: off)",
    )
    p.add_argument(
        "--log",
        action="append",
        choices=["tensorboard"],
        help="also write TensorBoard event files into the run directory (the 'tensorboard' "
        "extra); metrics.csv stays the record they are rebuilt from at every start, so --log "
        "may change on --resume (default: off)",
    )

    p.add_argument("--out", help="run directory to create (default: runs/<preset>)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR from its checkpoint_last.pt (default: off)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace a run already in --out (default: refuse)"
    )
    _common_data_flags(p)
    for spec in flag_fields():  # one flag per config field, declared in config.py
        _add_config_flag(p, spec, f"{spec.help} ({_defaults_text(spec)})")
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar or epoch lines (default: off)"
    )
    p.add_argument(
        "--no-plots",
        action="store_true",
        help="do not draw plots into the run directory (default: draw them)",
    )


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        spec.name: getattr(args, spec.name)
        for spec in flag_fields()
        if getattr(args, spec.name) is not None
    }


def _run_train(args: argparse.Namespace) -> int:
    from ..train import fit

    config, run_dir, origin = _resolve_config(args)
    if args.print_config:
        from ..config_file import config_json

        print(config_json(config))
        return 0
    fit(
        config,
        run_dir,
        data_dir=args.data_dir,
        download=not args.no_download,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        quiet=args.quiet,
        after_run=None
        if args.no_plots
        else functools.partial(
            _draw_run_plots, data_dir=args.data_dir, download=not args.no_download
        ),
        origin=origin,
        log_to=tuple(args.log or ()),
    )
    return 0


def _resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, Path, dict[str, Any] | None]:
    """The run's config, its directory, and where the config came from (None on resume).
    Precedence: preset < --config file < flags."""
    overrides = _train_overrides(args)
    if args.resume:
        return _resumed_config(args, overrides), Path(args.resume), None
    if args.config:
        from ..config_file import load_config_file

        config, origin = load_config_file(args.config, args.preset, overrides)
    else:
        config = apply_overrides(preset_config(args.preset or "default"), overrides)
        _refuse_unused_forget_bias(config, overrides)
        origin = {"config_file": None, "preset": config.preset, "flags": overrides}
    run_dir = Path(args.out) if args.out else Path("runs") / config.preset
    return config, run_dir, origin


def _refuse_unused_forget_bias(config: TrainConfig, overrides: dict[str, Any]) -> None:
    """--forget-bias given without --gate-init forget-bias sets nothing. The config's check can
    only see values other than the default 1; a flag given as 1 is caught here. (With --config,
    --forget-bias 1 is how a file's value is reset, so it is left to the config's check.)"""
    model = config.model
    if "forget_bias" not in overrides or model.gate_init == "forget-bias":
        return
    if CELL_SPECS[model.cell].memory_gate is None:
        raise ConfigError(
            f"--cell {model.cell} has no gates, so it takes no --forget-bias: drop it"
        )
    raise ConfigError(
        f"--forget-bias {model.forget_bias:g} takes effect only with --gate-init forget-bias "
        f"(this run has --gate-init {model.gate_init}): add --gate-init forget-bias, or drop "
        "--forget-bias"
    )


def _resumed_config(args: argparse.Namespace, overrides: dict[str, Any]) -> TrainConfig:
    """The saved config of the run being resumed, with the flags a resume may change."""
    from ..run import RunDir

    run_dir = Path(args.resume)
    if args.config:
        raise ConfigError(
            "--resume continues the saved config; drop --config (to start a new run from that "
            f"run's config, use --config {run_dir / 'config.json'} without --resume)"
        )
    if args.out and Path(args.out) != run_dir:
        raise ConfigError(
            "--resume continues the run where it is; drop --out (or pass the same folder)"
        )
    config = RunDir(run_dir).read_config()
    resumable = [spec for spec in flag_fields() if spec.resumable]
    fixed = sorted(set(overrides) - {spec.name for spec in resumable})
    if fixed or args.preset not in (None, config.preset):
        flags = ", ".join("--" + f.replace("_", "-") for f in fixed) or "--preset"
        may = " and ".join(spec.flag for spec in resumable)
        raise ConfigError(
            f"--resume continues the saved config; drop {flags} (only {may} may change)"
        )
    return apply_overrides(config, overrides)


def _draw_run_plots(run_dir: Path, data_dir: str | None = None, download: bool = True) -> None:
    """Plots at the end of training; a missing plotting extra or a plot failure only warns
    (the run is already saved)."""
    try:
        from ..plots import write_run_plots
    except ImportError:
        return
    try:
        write_run_plots(run_dir, data_dir=data_dir, download=download)
    except (ImportError, SeqMnistError) as exc:
        print(f"seqmnist: warning: no plots drawn ({exc})", file=sys.stderr)
