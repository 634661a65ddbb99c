"""The ``seqmnist`` command line: parse, validate, dispatch. No training logic lives here.

Each subcommand is a pair of functions, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``,
registered in ``COMMANDS``. Library errors (``SeqMnistError``) become one line on stderr,
``seqmnist: error: ...``, and a non-zero exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import DEVICES, PRESETS, FlagSpec, TrainConfig, apply_overrides, flag_fields, preset_config
from .errors import ConfigError, SeqMnistError, TrainingInterrupted

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


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


def _require_range(flag: str, value: int, low: int, high: int) -> None:
    """A command's integer flag outside its range is a one-line error naming the flag."""
    if not low <= value <= high:
        raise ConfigError(f"{flag} must be an integer from {low} to {high}; got {value}")


def _common_data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="folder holding MNIST/raw/ (default: $SEQMNIST_DATA, else ./data)",
    )
    parser.add_argument(
        "--no-download", action="store_true", help="never download MNIST; fail if it is missing (default: download when missing)"
    )


# --- train ----------------------------------------------------------------------------------

def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model into a run directory",
        description="Train a recurrent classifier on MNIST rows. Starts from --preset; every other "
        "flag overrides that one field of the preset.",
    )
    p.add_argument(
        "--preset", choices=list(PRESETS), default="default",
        help="default: our recipe (all four fixes); seed: the article's recipe, faithfully; smnist / pmnist: "
        "sequential / permuted MNIST, 784 steps of one pixel (GPU work) (default: default)",
    )
    p.add_argument("--out", help="run directory to create (default: runs/<preset>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its checkpoint_last.pt (default: off)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out (default: refuse)")
    _common_data_flags(p)
    for spec in flag_fields():  # one flag per config field, declared in config.py
        help_text = f"{spec.help} ({_defaults_text(spec)})"
        if spec.type is bool:
            p.add_argument(spec.flag, dest=spec.name, action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        else:
            p.add_argument(spec.flag, dest=spec.name, type=spec.type, choices=spec.choices, default=None,
                           help=help_text)
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines (default: off)")
    p.add_argument("--no-plots", action="store_true", help="do not draw plots into the run directory (default: draw them)")


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {spec.name: getattr(args, spec.name) for spec in flag_fields() if getattr(args, spec.name) is not None}


def _run_train(args: argparse.Namespace) -> int:
    from .run import RunDir
    from .train import fit

    overrides = _train_overrides(args)
    if args.resume:
        run_dir = Path(args.resume)
        if args.out and Path(args.out) != run_dir:
            raise ConfigError("--resume continues the run where it is; drop --out (or pass the same folder)")
        config = RunDir(run_dir).read_config()
        resumable = [spec for spec in flag_fields() if spec.resumable]
        fixed = sorted(set(overrides) - {spec.name for spec in resumable})
        if fixed or args.preset != "default" and args.preset != config.preset:
            flags = ", ".join("--" + f.replace("_", "-") for f in fixed) or "--preset"
            may = " and ".join(spec.flag for spec in resumable)
            raise ConfigError(f"--resume continues the saved config; drop {flags} (only {may} may change)")
        config = apply_overrides(config, overrides)
    else:
        config = apply_overrides(preset_config(args.preset), overrides)
        run_dir = Path(args.out) if args.out else Path("runs") / config.preset
    fit(
        config,
        run_dir,
        data_dir=args.data_dir,
        download=not args.no_download,
        resume=bool(args.resume),
        overwrite=args.overwrite,
        quiet=args.quiet,
        after_run=None if args.no_plots else functools.partial(
            _draw_run_plots, data_dir=args.data_dir, download=not args.no_download
        ),
    )
    return 0


def _draw_run_plots(run_dir: Path, data_dir: str | None = None, download: bool = True) -> None:
    """Plots at the end of training; a missing plotting extra or a plot failure only warns
    (the run is already saved)."""
    try:
        from .plots import write_run_plots
    except ImportError:
        return
    try:
        write_run_plots(run_dir, data_dir=data_dir, download=download)
    except (ImportError, SeqMnistError) as exc:
        print(f"seqmnist: warning: no plots drawn ({exc})", file=sys.stderr)


# --- evaluate -------------------------------------------------------------------------------

def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy, loss, per-class report and confusion matrix of a model")
    p.add_argument("model", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (its best checkpoint) or a checkpoint file")
    p.add_argument("--split", choices=["test", "val"], default="test", help="which split to evaluate (default: test)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables (default: off)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="device to evaluate on (default: auto)")
    p.add_argument("--batch-size", type=int, default=1000, help="evaluation batch size (default: 1000)")
    _common_data_flags(p)


def _run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_checkpoint, format_evaluation

    _require_range("--batch-size", args.batch_size, 1, 65_536)
    result = evaluate_checkpoint(
        args.model, split=args.split, data_dir=args.data_dir, download=not args.no_download,
        device=args.device, batch_size=args.batch_size,
    )
    print(_json(result) if args.json else format_evaluation(result))
    return 0


# --- info -----------------------------------------------------------------------------------

def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="config, parameter count and training summary of a run or checkpoint")
    p.add_argument("model", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory or a checkpoint file")
    p.add_argument("--json", action="store_true", help="print one JSON object (default: off)")


def _run_info(args: argparse.Namespace) -> int:
    from .evaluation import describe, format_description

    info = describe(args.model)
    print(_json(info) if args.json else format_description(info))
    return 0


# --- show -----------------------------------------------------------------------------------

def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="draw MNIST images, or one image as the sequence the network reads")
    p.add_argument("--split", choices=["train", "test"], default="train", help="which MNIST split (default: train)")
    p.add_argument("--count", type=int, default=25, help="how many images, 1 to 100 (default: 25, a 5x5 grid)")
    p.add_argument("--digit", type=int, help="only images of this digit, 0 to 9 (default: all digits)")
    p.add_argument("--index", type=int, help="draw only the image at this index of the split, "
                   "counted among --digit's images if given (default: the first --count images)")
    p.add_argument("--as-sequence", action="store_true",
                   help="draw one image (--index, default 0) as 28 time steps x 28 features (default: off)")
    p.add_argument("--out", default="samples.png", help="PNG file to write (default: samples.png)")
    _common_data_flags(p)


def _run_show(args: argparse.Namespace) -> int:
    from .data import load_mnist
    from .pictures import sample_grid, select_samples, sequence_view

    index = 0 if args.as_sequence and args.index is None else args.index
    if args.digit is not None:  # checked before loading data
        _require_range("--digit", args.digit, 0, 9)
    _require_range("--count", args.count, 1, 100)
    split = load_mnist(args.data_dir, train=args.split == "train", download=not args.no_download)
    images, labels, indices = select_samples(
        split.images, split.labels, count=args.count, digit=args.digit, index=index
    )
    if args.as_sequence:
        out = sequence_view(images[0], int(labels[0]), args.out)
    else:
        which = f"digit {args.digit}" if args.digit is not None else "label above each image"
        title = f"MNIST {args.split} images ({which})"
        out = sample_grid(images, labels, args.out, title=title)
    print(f"wrote {out} ({len(indices)} {args.split} image{'s' if len(indices) != 1 else ''})")
    return 0


# --- plot -----------------------------------------------------------------------------------

def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="training curves (several runs overlaid), confusion matrix and error gallery")
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="one or more run directories made by `seqmnist train`")
    p.add_argument("--out", metavar="DIR", help="folder for the PNGs (default: the run directory; "
                   "for several runs, the first one)")
    _common_data_flags(p)


def _run_plot(args: argparse.Namespace) -> int:
    from .plots import curves, write_run_plots

    if len(args.run_dirs) == 1:
        written = write_run_plots(
            args.run_dirs[0], out_dir=args.out, data_dir=args.data_dir, download=not args.no_download
        )
    else:
        out_dir = Path(args.out) if args.out else Path(args.run_dirs[0])
        written = [curves(args.run_dirs, out_dir / "curves.png")]
    for path in written:
        print(f"wrote {path}")
    return 0


# --- inspect --------------------------------------------------------------------------------

def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="shapes of output, h_n, c_n and which slices of output equal h_n")
    p.add_argument("model", metavar="RUN_DIR_OR_CHECKPOINT", nargs="?",
                   help="a trained model (default: the default config with seeded random weights)")
    p.add_argument("--batch-size", type=int, default=8, help="test images in the batch, 1 to 10000 (default: 8)")
    _common_data_flags(p)


def _run_inspect(args: argparse.Namespace) -> int:
    from .data import load_mnist, to_model_input
    from .inspect import default_model, format_inspection, inspect_model
    from .trained import load_trained

    _require_range("--batch-size", args.batch_size, 1, 10_000)
    if args.model:
        trained = load_trained(args.model)
        model, config = trained.model, trained.config
        print(f"model: {trained.checkpoint}")
    else:
        model, config = default_model(seed=0), TrainConfig()
        print("model: default config, random weights (seed 0); pass a run directory to inspect a trained one")
    test = load_mnist(args.data_dir, train=False, download=not args.no_download)
    images = to_model_input(test.images[: args.batch_size], config.normalize)  # (B, 28, 28)
    print(f"batch: the first {images.shape[0]} test images, "
          f"{'standardised' if config.normalize else 'scaled to [0, 1]'} as in training\n")
    print(format_inspection(inspect_model(model, images)))
    return 0


# --- serve ----------------------------------------------------------------------------------

def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a draw-a-digit web page and a JSON API for a trained model",
        description="Serve a trained model over HTTP: GET / is a page to draw digits on, POST /api/predict "
        "classifies an uploaded image, GET /api/model describes the model. The model loads once; "
        "stop with Ctrl-C. Needs the 'serve' extra: pip install 'seqmnist[serve]'.",
    )
    p.add_argument("model", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (its best checkpoint) or a checkpoint file")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 exposes the server to your network (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="TCP port, 1 to 65535; 0 picks a free one (default: 8000)")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="device to run the model on (default: cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="PyTorch threads per prediction, 1 to 256; requests run in parallel anyway (default: 1)")


def _run_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    if not 0 <= args.port <= 65_535:
        raise SeqMnistError(f"--port must be an integer from 1 to 65535 (or 0: any free port); got {args.port}")
    _require_range("--threads", args.threads, 1, 256)
    serve(args.model, host=args.host, port=args.port, device=args.device, threads=args.threads)
    return 0


# --- predict --------------------------------------------------------------------------------

def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify your own images (photos, scans, drawings) with a trained model",
        description="Classify image files. Each image is made MNIST-like first (grey, light ink on "
        "black, cropped, fitted to 20x20, centred by mass in 28x28). A file that cannot be used gets "
        "an error line on stderr; the others are still classified; the exit code is 1 if any failed.",
    )
    p.add_argument("model", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (its best checkpoint) or a checkpoint file")
    p.add_argument("images", metavar="IMAGE_OR_DIR", nargs="+",
                   help="image files, or folders searched (recursively, sorted) for "
                   ".png .jpg .jpeg .bmp .gif .tif .tiff .webp files")
    p.add_argument("--top-k", type=int, default=3, help="most probable digits to show per image, 1 to 10 (default: 3)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON list with an object per image; failures carry an \"error\" field (default: off)")
    p.add_argument("--save-preprocessed", metavar="DIR",
                   help="write the 28x28 image the model saw as DIR/<stem>.png (default: write nothing)")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="device to run the model on (default: cpu)")


def _run_predict(args: argparse.Namespace) -> int:
    import torch

    from .predict import load
    from .predict_files import image_files, predict_files, prepare_save_dir

    _require_range("--top-k", args.top_k, 1, 10)
    save_dir = prepare_save_dir(args.save_preprocessed)
    classifier = load(args.model, device=args.device)
    # One image at a time: a batch of 1 gains nothing from intra-op threads, and idle threads
    # spin-waiting between images cost CPU (measured: 3x the time per image on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = predict_files(
            classifier, image_files(args.images), top_k=args.top_k, save_dir=save_dir, debug=args.debug,
            on_error=lambda message: print(f"seqmnist: error: {message}", file=sys.stderr),
            on_result=None if args.json else _print_prediction,
        )
    finally:
        torch.set_num_threads(threads)  # main() may be called in-process (tests, notebooks)
    if args.json:
        print(_json(results))
    return EXIT_ERROR if any("error" in r for r in results) else 0


def _print_prediction(prediction: Any) -> None:
    top = ", ".join(f"{digit}: {p:.1%}" for digit, p in prediction.top_k)
    print(f"{prediction.source}  {prediction.label}  ({top})")


# --- export ---------------------------------------------------------------------------------

def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX or TorchScript, checked against PyTorch on real test images",
        description="Write the model's forward (normalised images (B, 28, 28) -> logits (B, 10); "
        "probabilities for a seed-preset model) as ONNX or TorchScript, then run the file on 256 "
        "test images next to PyTorch: it is kept only if the outputs agree to 1e-4 and all labels match.",
    )
    p.add_argument("model", metavar="RUN_DIR_OR_CHECKPOINT", help="a run directory (its best checkpoint) or a checkpoint file")
    p.add_argument("--format", dest="fmt", choices=["onnx", "torchscript"], default="onnx",
                   help="onnx (needs the 'export' extra) or torchscript (default: onnx)")
    p.add_argument("--out", metavar="FILE",
                   help="file to write (default: model.onnx / model.pt beside the checkpoint)")
    p.add_argument("--json", action="store_true", help="print the export report as JSON (default: off)")
    _common_data_flags(p)


def _run_export(args: argparse.Namespace) -> int:
    from .export import export_model, format_export_report

    report = export_model(args.model, args.fmt, out=args.out, data_dir=args.data_dir, download=not args.no_download)
    print(_json(report) if args.json else format_export_report(report))
    return 0


# --- compare --------------------------------------------------------------------------------

def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="finished runs side by side: order, cell, size, parameters, accuracy, time")
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="run directories made by `seqmnist train`")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (default: aligned text)")


def _run_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, format_comparison

    print(format_comparison(compare_runs(args.run_dirs), markdown=args.markdown))
    return 0


# --- entry point ----------------------------------------------------------------------------

COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]]] = {
    "train": (_add_train, _run_train),
    "evaluate": (_add_evaluate, _run_evaluate),
    "info": (_add_info, _run_info),
    "show": (_add_show, _run_show),
    "plot": (_add_plot, _run_plot),
    "inspect": (_add_inspect, _run_inspect),
    "serve": (_add_serve, _run_serve),
    "predict": (_add_predict, _run_predict),
    "export": (_add_export, _run_export),
    "compare": (_add_compare, _run_compare),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqmnist",
        description="Train, evaluate, explain and serve recurrent classifiers on MNIST read row by row.",
    )
    parser.add_argument("--version", action="version", version=f"seqmnist {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors (default: off)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def _json(data: Any) -> str:
    """Strict JSON: a NaN or infinity (never valid JSON) is an error, not a bare NaN token."""
    try:
        return json.dumps(data, indent=2, allow_nan=False)
    except ValueError:
        raise SeqMnistError("the result holds NaN or infinite numbers; the model or its run is damaged") from None


def _torchrun_rank() -> int:
    """This process's rank under torchrun (which sets RANK), else 0. Read from the environment
    so that commands other than train need not import torch.distributed."""
    value = os.environ.get("RANK", "0")
    return int(value) if value.isdigit() else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _, run = COMMANDS[args.command]
    # Under torchrun every process runs this. Ctrl-C reaches all of them and a bad flag fails on all
    # of them alike, so only rank 0 reports those; any other error is reported by the rank it hit,
    # tagged with that rank.
    rank = _torchrun_rank()
    who = "seqmnist" if rank == 0 else f"seqmnist [rank {rank}]"
    try:
        return run(args)
    except TrainingInterrupted as exc:
        if rank == 0:
            print(f"seqmnist: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        if rank == 0:
            print("seqmnist: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SeqMnistError as exc:
        if args.debug:
            raise
        if rank == 0 or not isinstance(exc, ConfigError):
            print(f"{who}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
