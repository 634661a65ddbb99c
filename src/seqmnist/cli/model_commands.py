"""Commands on a trained model: evaluate, info, inspect, export, compare."""

from __future__ import annotations

import argparse
import sys

from ..config import DEVICES, TrainConfig
from ..options import require_int
from .common import EXIT_ERROR, _common_data_flags, _json, _model_argument

# --- evaluate -------------------------------------------------------------------------------


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="accuracy, loss, per-class report and confusion matrix of a model"
    )
    _model_argument(p)
    p.add_argument(
        "--split",
        choices=["test", "val"],
        default="test",
        help="which split to evaluate (default: test)",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables (default: off)"
    )
    p.add_argument(
        "--device", choices=DEVICES, default="auto", help="device to evaluate on (default: auto)"
    )
    p.add_argument(
        "--batch-size", type=int, default=1000, help="evaluation batch size (default: 1000)"
    )
    _common_data_flags(p)


def _run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_checkpoint, format_evaluation

    require_int("--batch-size", args.batch_size, 1, 65_536)
    result = evaluate_checkpoint(
        args.model,
        split=args.split,
        data_dir=args.data_dir,
        download=not args.no_download,
        device=args.device,
        batch_size=args.batch_size,
    )
    print(_json(result) if args.json else format_evaluation(result))
    return 0


# --- info -----------------------------------------------------------------------------------


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info", help="config, parameter count and training summary of a run or checkpoint"
    )
    p.add_argument(
        "model", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory or a checkpoint file"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object (default: off)")


def _run_info(args: argparse.Namespace) -> int:
    from ..evaluation import describe, format_description

    info = describe(args.model)
    print(_json(info) if args.json else format_description(info))
    return 0


# --- inspect --------------------------------------------------------------------------------


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="shapes of output, h_n, c_n and which slices of output equal h_n"
    )
    p.add_argument(
        "model",
        metavar="RUN_DIR_OR_CHECKPOINT",
        nargs="?",
        help="a trained model (default: the default config with seeded random weights)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=8,
        help="test images in the batch, 1 to 10000 (default: 8)",
    )
    _common_data_flags(p)


def _run_inspect(args: argparse.Namespace) -> int:
    from ..data import load_mnist, to_model_input
    from ..inspect import default_model, format_inspection, inspect_model
    from ..trained import load_trained

    require_int("--batch-size", args.batch_size, 1, 10_000)
    if args.model:
        trained = load_trained(args.model)
        model, config = trained.model, trained.config
        print(f"model: {trained.checkpoint}")
    else:
        model, config = default_model(seed=0), TrainConfig()
        print(
            "model: default config, random weights (seed 0); pass a run directory to inspect a "
            "trained one"
        )
    test = load_mnist(args.data_dir, train=False, download=not args.no_download)
    images = to_model_input(test.images[: args.batch_size], config.normalize)  # (B, 28, 28)
    print(
        f"batch: the first {images.shape[0]} test images, "
        f"{'standardised' if config.normalize else 'scaled to [0, 1]'} as in training\n"
    )
    print(format_inspection(inspect_model(model, images)))
    return 0


# --- export ---------------------------------------------------------------------------------


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX or TorchScript, checked against PyTorch on real test images",
        description="Write the model's forward (normalised images (B, 28, 28) -> logits (B, 10); "
        "probabilities for a seed-preset model) as ONNX or TorchScript, then run the file on 256 "
        "test images next to PyTorch: it is kept only if the outputs agree to 1e-4 and all "
        "labels match.",
    )
    _model_argument(p)
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["onnx", "torchscript"],
        default="onnx",
        help="onnx (needs the 'export' extra) or torchscript (default: onnx)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="file to write (default: model.onnx / model.pt beside the checkpoint); an existing "
        "file is replaced only if it is an earlier export of the same format",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out even if it is some other file (never the checkpoint itself) "
        "(default: off)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the export report as JSON (default: off)"
    )
    _common_data_flags(p)


def _run_export(args: argparse.Namespace) -> int:
    from ..export import export_model, format_export_report

    report = export_model(
        args.model,
        args.fmt,
        out=args.out,
        data_dir=args.data_dir,
        download=not args.no_download,
        overwrite=args.overwrite,
    )
    print(_json(report) if args.json else format_export_report(report))
    return 0


# --- compare --------------------------------------------------------------------------------


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="finished runs side by side: what they read, size, accuracy with its 95 %% interval, "
        "time, and every config field that differs between them",
        description="One row per run, best test accuracy first. Beside each test accuracy, its "
        "95 % Wilson score interval on the number of test images (the sampling noise of the "
        "test set); one column per config field that differs between the runs shown; train "
        "times marked '*' when the runs were timed on different machines, devices, thread or "
        "process counts, or at different moments.",
    )
    p.add_argument(
        "run_dirs", metavar="RUN_DIR", nargs="+", help="run directories made by `seqmnist train`"
    )
    p.add_argument(
        "--markdown", action="store_true", help="print a Markdown table (default: aligned text)"
    )
    p.add_argument(
        "--diff",
        action="store_true",
        help="only the run, its preset, accuracy and interval, and the fields that differ "
        "(default: every column)",
    )


def _run_compare(args: argparse.Namespace) -> int:
    """The table of the runs that could be read; one error line per path that could not, and a
    non-zero exit if there was any."""
    from ..compare import compare_runs, format_comparison

    rows, errors = compare_runs(args.run_dirs)
    if rows:
        print(format_comparison(rows, markdown=args.markdown, diff_only=args.diff), flush=True)
    for message in errors:
        print(f"seqmnist: error: {message}", file=sys.stderr)
    return EXIT_ERROR if errors else 0
