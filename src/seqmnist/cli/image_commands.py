"""Commands about images: show, plot, serve, predict."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from ..config import ModelConfig
from ..errors import SeqMnistError
from ..options import flag_specs, require_int
from .common import (
    EXIT_ERROR,
    _add_config_flag,
    _common_data_flags,
    _device_flag,
    _json,
    _model_argument,
    _print_image_warnings,
)

# The ModelConfig fields that say how an image becomes a sequence.
READING_ORDER_FIELDS = ("order", "pixels_per_step", "permutation_seed")

# --- show -----------------------------------------------------------------------------------


def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show", help="draw MNIST images, or one image as the sequence the network reads"
    )
    p.add_argument(
        "--split",
        choices=["train", "test"],
        default="train",
        help="which MNIST split (default: train)",
    )
    p.add_argument(
        "--count", type=int, default=25, help="how many images, 1 to 100 (default: 25, a 5x5 grid)"
    )
    p.add_argument(
        "--digit", type=int, help="only images of this digit, 0 to 9 (default: all digits)"
    )
    p.add_argument(
        "--index",
        type=int,
        help="draw only the image at this index of the split, "
        "counted among --digit's images if given (default: the first --count images)",
    )
    p.add_argument(
        "--as-sequence",
        action="store_true",
        help="draw one image (--index, default 0) as the sequence a model reads: 28 rows of 28 "
        "pixels unless --order or --model says otherwise (default: off)",
    )
    defaults = ModelConfig()
    for spec in flag_specs(ModelConfig):
        if spec.name in READING_ORDER_FIELDS:  # declared once, in config.py, as for train
            default = getattr(defaults, spec.name)
            _add_config_flag(p, spec, f"with --as-sequence: {spec.help} (default: {default})")
    p.add_argument(
        "--model",
        metavar="RUN_DIR_OR_CHECKPOINT",
        help="with --as-sequence: read the image in this trained model's order and name its "
        "directions (only its reading order and direction count: nothing the model computes "
        "is drawn; `seqmnist inspect RUN --picture` draws that)",
    )
    p.add_argument(
        "--image",
        metavar="FILE",
        help="with --as-sequence: draw this image file instead of an MNIST image, made "
        "MNIST-like as `seqmnist predict` makes it (default: none)",
    )
    p.add_argument("--out", default="samples.png", help="PNG file to write (default: samples.png)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out file that seqmnist did not draw (its own pictures "
        "are always redrawn; the --image file is never replaced) (default: refuse)",
    )
    _common_data_flags(p)


def _reading_order(args: argparse.Namespace) -> tuple[ModelConfig, int | None]:
    """The reading order ``show --as-sequence`` draws, a trained model's or the flags', and the
    model's direction count (None without a model: the picture then speaks of both cases)."""
    given = {k: getattr(args, k) for k in READING_ORDER_FIELDS if getattr(args, k) is not None}
    if args.model is not None:
        if given:
            raise SeqMnistError("--model brings its own reading order: drop --order and its flags")
        from ..trained import load_trained

        model_config = load_trained(args.model).config.model
        return model_config, 2 if model_config.bidirectional else 1
    config = ModelConfig(**given)
    config.validate()
    return config, None


def _show_file_as_sequence(
    image: str, reading: ModelConfig, directions: int | None, out_path: str
) -> int:
    """``show --as-sequence --image FILE``: the file made MNIST-like, read in ``reading``."""

    from ..digit_source import pick_digit
    from ..pictures import sequence_view
    from ..sequence import SequenceReader

    digit = pick_digit(None, "test", None, image)
    _print_image_warnings(digit.source, digit.warnings)  # as `seqmnist predict` says them
    sequence = SequenceReader(reading)(digit.image[None].float())[0]  # (T, F), values 0-255
    out = sequence_view(sequence, None, out_path, order=reading.order, directions=directions)
    print(f"wrote {out} ({digit.source}, made MNIST-like as predict does)")
    return 0


def _run_show(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_mnist
    from ..figures import prepare_output, refuse_replacing
    from ..pictures import sample_grid, select_samples, sequence_view
    from ..sequence import SequenceReader

    index = 0 if args.as_sequence and args.index is None else args.index
    if args.digit is not None:  # checked before loading data
        require_int("--digit", args.digit, 0, 9)
    require_int("--count", args.count, 1, 100)
    if not args.as_sequence and (
        args.model is not None or args.order is not None or args.image is not None
    ):
        raise SeqMnistError(
            "--order, --model and --image only shape --as-sequence: add --as-sequence"
        )
    if args.image is not None and (args.index is not None or args.digit is not None):
        raise SeqMnistError("--image names the digit itself: drop --index and --digit")
    reading, directions = _reading_order(args) if args.as_sequence else (None, None)
    prepare_output(args.out)  # a bad --out fails before the data is read and drawn
    refuse_replacing(args.out, inputs=[args.image], overwrite=args.overwrite)
    if args.image is not None:
        return _show_file_as_sequence(args.image, reading, directions, args.out)
    split = load_mnist(args.data_dir, train=args.split == "train", download=not args.no_download)
    images, labels, indices = select_samples(
        split.images, split.labels, count=args.count, digit=args.digit, index=index
    )
    if args.as_sequence:
        reader = SequenceReader(reading)
        sequence = reader(torch.as_tensor(images[:1]).float())[0]  # (T, F), values 0-255
        out = sequence_view(
            sequence, int(labels[0]), args.out, order=reading.order, directions=directions
        )
    else:
        which = f"digit {args.digit}" if args.digit is not None else "label above each image"
        title = f"MNIST {args.split} images ({which})"
        out = sample_grid(images, labels, args.out, title=title)
    print(f"wrote {out} ({len(indices)} {args.split} image{'s' if len(indices) != 1 else ''})")
    return 0


# --- plot -----------------------------------------------------------------------------------


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot", help="training curves (several runs overlaid), confusion matrix and error gallery"
    )
    p.add_argument(
        "run_dirs",
        metavar="RUN_DIR",
        nargs="+",
        help="one or more run directories made by `seqmnist train`",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the PNGs (default: the run directory; for several runs, the first one)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace same-named files in --out that seqmnist did not draw (its own "
        "pictures, and any in a run directory, are always redrawn) (default: refuse)",
    )
    _common_data_flags(p)


def _refuse_replacing_plots(args: argparse.Namespace) -> None:
    """Pictures in a run directory are the run's own, drawn again; in another --out folder, a
    same-named file seqmnist did not draw is refused unless --overwrite."""
    from ..figures import refuse_replacing
    from ..plots import RUN_PLOT_NAMES

    if args.out is None or any(_same_folder(args.out, run) for run in args.run_dirs):
        return
    names = RUN_PLOT_NAMES if len(args.run_dirs) == 1 else ("curves.png",)
    for name in names:
        refuse_replacing(Path(args.out) / name, overwrite=args.overwrite, flag="--out folder")


def _same_folder(a: str, b: str) -> bool:
    return Path(a).is_dir() and Path(b).is_dir() and Path(a).samefile(b)


def _run_plot(args: argparse.Namespace) -> int:
    """One run: its curves, confusion matrix and error gallery. Several: their curves in one
    picture; a folder that cannot be drawn is one error line (and a non-zero exit), the others
    are still drawn."""
    from ..curve_data import load_runs
    from ..curves import save_curves
    from ..plots import write_run_plots

    _refuse_replacing_plots(args)
    if len(args.run_dirs) == 1:
        written = write_run_plots(
            args.run_dirs[0],
            out_dir=args.out,
            data_dir=args.data_dir,
            download=not args.no_download,
        )
        errors = []
    else:
        runs, errors = load_runs(args.run_dirs)
        for message in errors if not runs else []:  # nothing to draw: every reason, then stop
            print(f"seqmnist: error: {message}", file=sys.stderr)
        out_dir = Path(args.out) if args.out else (runs[0].path if runs else Path("."))
        written = [save_curves(runs, out_dir / "curves.png")]
    for path in written:
        print(f"wrote {path}", flush=True)
    for message in errors:
        print(f"seqmnist: error: {message}", file=sys.stderr)
    return EXIT_ERROR if errors else 0


# --- serve ----------------------------------------------------------------------------------


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a draw-a-digit web page and a JSON API for a trained model",
        description="Serve a trained model over HTTP: GET / is a page to draw digits on, "
        "POST /api/predict classifies an uploaded image, GET /api/model describes the model. "
        "The model loads once; stop with Ctrl-C. Needs the 'serve' extra: "
        "pip install 'seqmnist[serve]'.",
    )
    _model_argument(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 exposes the server to your network "
        "(default: 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=8000,
        help="TCP port, 1 to 65535; 0 picks a free one (default: 8000)",
    )
    _device_flag(p)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="PyTorch threads per prediction, 1 to 256; requests run in parallel anyway "
        "(default: 1)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages from ORIGIN (scheme://host[:port], or * for any) call the API from a "
        "browser; repeatable (default: none, same-origin only)",
    )


def _run_serve(args: argparse.Namespace) -> int:
    from ..serve import serve

    if not 0 <= args.port <= 65_535:
        raise SeqMnistError(
            f"--port must be an integer from 1 to 65535 (or 0: any free port); got {args.port}"
        )
    require_int("--threads", args.threads, 1, 256)
    serve(
        args.model,
        host=args.host,
        port=args.port,
        device=args.device,
        threads=args.threads,
        cors_origins=args.cors_origin,
    )
    return 0


# --- predict --------------------------------------------------------------------------------


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify your own images (photos, scans, drawings) with a trained model",
        description="Classify image files. Each image is made MNIST-like first (grey, light ink "
        "on black, cropped, fitted to 20x20, centred by mass in 28x28). A file that cannot be "
        "used gets an error line on stderr; the others are still classified; the exit code is 1 "
        "if any failed. Output into a closed pipe (| head -1) stops the work quietly with exit "
        "code 141, as coreutils do.",
    )
    _model_argument(p)
    p.add_argument(
        "images",
        metavar="IMAGE_OR_DIR",
        nargs="+",
        help="image files, or folders searched (recursively, sorted) for every file name ending "
        "Pillow registers for PNG, JPEG, BMP, GIF, TIFF, WebP and, where Pillow reads it, AVIF "
        "(.png .apng .jpg .jpeg .jpe .jfif .mpo .bmp .gif .tif .tiff .webp .avif ...), in any "
        "letter case; files without an extension are read if their content is such an image; "
        "hidden files and folders (.git, .venv) are skipped. One stderr line per folder counts "
        "what was skipped and why",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=3,
        help="most probable digits to show per image, 1 to 10 (default: 3)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print one JSON list with an object per image; failures carry an "error" field '
        "(default: off)",
    )
    p.add_argument(
        "--save-preprocessed",
        metavar="DIR",
        help="write the 28x28 image the model saw as DIR/<name>.png, where <name> keeps the "
        "source's file name, extension and subfolders within a walked folder (four.jpg -> "
        "DIR/four.jpg.png, a/1.png -> DIR/a/1.png.png); a name met twice in one run gets -2, -3 "
        "(four.jpg-2.png). Refuses a DIR that holds images being read, or files already there, "
        "unless --overwrite; a DIR inside a walked folder is left out of the walk "
        "(default: write nothing)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="with --save-preprocessed: write into a folder that holds the images being read, "
        "and replace files already there; the images being read are never written over "
        "(default: refuse)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="name every file or folder a folder walk skipped, and why (default: one line per "
        "folder with the counts)",
    )
    _device_flag(p)


def _run_predict(args: argparse.Namespace) -> int:
    import torch

    from ..predict import load
    from ..predict_files import find_images, plan_saves, predict_files

    require_int("--top-k", args.top_k, 1, 10)
    if args.overwrite and args.save_preprocessed is None:
        raise SeqMnistError("--overwrite only matters with --save-preprocessed: add it or drop it")
    walk = find_images(args.images, exclude=args.save_preprocessed)
    for line in walk.skip_lines(args.verbose):
        print(line, file=sys.stderr)
    save_to = None
    if args.save_preprocessed is not None:  # refusals come before any work
        save_to = plan_saves(walk.inputs, args.save_preprocessed, overwrite=args.overwrite)
    classifier = load(args.model, device=args.device)
    # One image at a time: a batch of 1 gains nothing from intra-op threads, and idle threads
    # spin-waiting between images cost CPU (measured: 3x the time per image on a busy 2-core
    # machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = predict_files(
            classifier,
            walk.inputs,
            top_k=args.top_k,
            save_to=save_to,
            debug=args.debug,
            on_error=lambda message: print(f"seqmnist: error: {message}", file=sys.stderr),
            on_result=functools.partial(_report_prediction, quiet_stdout=args.json),
        )
    finally:
        torch.set_num_threads(threads)  # main() may be called in-process (tests, notebooks)
    if args.json:
        print(_json(results))
    return EXIT_ERROR if any("error" in r for r in results) else 0


def _report_prediction(prediction: Any, quiet_stdout: bool) -> None:
    """One image's answer on stdout (unless --json prints them all at the end), and each of its
    warnings as a line on stderr (--json carries them too)."""
    if not quiet_stdout:
        top = ", ".join(f"{digit}: {p:.1%}" for digit, p in prediction.top_k)
        # Flushed per line: `| head -1` or `| grep -m1` ends the work at the next image, not
        # after a buffer's worth of them, and `| tee` shows progress as it comes.
        print(f"{prediction.source}  {prediction.label}  ({top})", flush=True)
    _print_image_warnings(prediction.source, prediction.warnings)
