"""What every subcommand shares: exit codes, range checks, the data flags, strict JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from ..config import DEVICES, PRESETS, FlagSpec, TrainConfig
from ..errors import SeqMnistError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
# stdout (or stderr) is a pipe whose reader has gone (`| head -1`): the work stops, quietly, with
# the status a shell shows for coreutils killed by SIGPIPE (128 + 13). Not 0: the command did not
# finish its work (under `set -o pipefail`, `seqmnist ... | head` then fails as `cat ... | head`
# does). Not a real death by SIGPIPE: main() is also called in process (tests, notebooks).
EXIT_OUTPUT_CLOSED = 141


def _defaults_text(spec: FlagSpec) -> str:
    """'default: X' for the default preset, plus other presets' values where they differ."""

    def value(preset: TrainConfig) -> Any:
        return getattr(preset.model if spec.owner is not TrainConfig else preset, spec.name)

    default = value(PRESETS["default"])
    text = f"default: {default}"
    for name, preset in PRESETS.items():
        if name != "default" and value(preset) != default:
            text += f"; {name} preset: {value(preset)}"
    return text


def _add_config_flag(parser: argparse.ArgumentParser, spec: FlagSpec, help_text: str) -> None:
    """The flag of one config field (``batch_size`` -> ``--batch-size``); None when not given,
    so that only the flags a user typed override a preset."""
    if spec.type is bool:
        parser.add_argument(
            spec.flag,
            dest=spec.name,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=help_text,
        )
    else:
        parser.add_argument(
            spec.flag,
            dest=spec.name,
            type=spec.type,
            choices=spec.choices,
            default=None,
            help=help_text,
        )


def _common_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="folder holding MNIST/raw/ (default: $SEQMNIST_DATA, else ./data)",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="never download MNIST; fail if it is missing (default: download when missing)",
    )


def _device_flag(
    parser: argparse.ArgumentParser, default: str = "cpu", purpose: str = "run the model on"
) -> None:
    """--device for a command that runs a trained model: one of config.DEVICES. The commands that
    serve one image at a time default to the CPU; evaluate, a whole test set, to "auto"."""
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default=default,
        help=f"device to {purpose} (default: {default})",
    )


def _print_image_warnings(source: object, warnings: Iterable[str]) -> None:
    """What reading an image noticed, one stderr line each, as every command that reads one
    says it: ``seqmnist: warning: SOURCE: WARNING``."""
    for warning in warnings:
        print(f"seqmnist: warning: {source}: {warning}", file=sys.stderr)


def _json(data: Any) -> str:
    """Strict JSON: a NaN or infinity (never valid JSON) is an error, not a bare NaN token."""
    try:
        return json.dumps(data, indent=2, allow_nan=False)
    except ValueError:
        raise SeqMnistError(
            "the result holds NaN or infinite numbers; the model or its run is damaged"
        ) from None


def _model_argument(parser: argparse.ArgumentParser) -> None:
    """The trained model a command works on: a run directory or a checkpoint file."""
    parser.add_argument(
        "model",
        metavar="RUN_DIR_OR_CHECKPOINT",
        help="a run directory (its best checkpoint) or a checkpoint file",
    )
