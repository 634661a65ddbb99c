"""Commands on a trained model: evaluate, info, inspect, export, compare."""

from __future__ import annotations

import argparse
import sys

from ..options import require_int
from .common import EXIT_ERROR, _common_data_flags, _device_flag, _json, _model_argument

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
        "--json",
        action="store_true",
        help="print one JSON object instead of tables; its 'mistakes' list gives each "
        "misclassified image's index in the split (for show / inspect --index) (default: off)",
    )
    _device_flag(p, default="auto", purpose="evaluate on")
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


# --- export ---------------------------------------------------------------------------------


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX, a torch.export program (.pt2) or TorchScript (deprecated), "
        "checked against PyTorch on real test images",
        description="Write the model's forward (normalised images (B, 28, 28) -> logits (B, 10); "
        "probabilities for a seed-preset model) as ONNX, a torch.export program or TorchScript, "
        "then run the file on 256 test images next to PyTorch: it is kept only if the outputs "
        "agree to 1e-4 and all labels match.",
    )
    _model_argument(p)
    p.add_argument(
        "--format",
        dest="fmt",
        choices=["onnx", "pt2", "torchscript"],
        default="onnx",
        help="onnx (needs the 'export' extra), pt2 (torch.export.save; load with "
        "torch.export.load) or torchscript (deprecated by PyTorch: use pt2) (default: onnx)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="file to write (default: model.onnx / model.pt2 / model.pt beside the checkpoint); "
        "an existing "
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
        "(size, epochs and the other fixed columns too, when they differ) (default: every column)",
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
