"""``seqmnist explain RUN IMAGE...``: watch a trained model read images (``seqmnist.explain``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import SeqMnistError
from ..options import require_int
from .common import (
    EXIT_ERROR,
    _common_data_flags,
    _device_flag,
    _model_argument,
    _print_image_warnings,
)


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="watch a model read an image: prediction after each step, states, gates, "
        "attributions, an animation",
        description="For each image: <name>-probabilities.png (P(digit) after each prefix of the "
        "sequence), <name>-states.png (hidden state over time; for an LSTM the input, forget and "
        "output gates and the cell state, recomputed from the weights), "
        "<name>-attributions.png (integrated gradients from a blank image; needs Captum: "
        "pip install 'seqmnist[notebook]') and <name>-reading.gif (the image read step by step). "
        "Images are prepared as for predict. Files already in --out are never replaced unless "
        "--overwrite.",
    )
    _model_argument(p)
    p.add_argument(
        "images", metavar="IMAGE", nargs="*", help="image files (PNG, JPEG, ...) (default: none)"
    )
    p.add_argument(
        "--index",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="a test image by its index, as the error gallery and `evaluate --json` name it, read "
        "exactly as MNIST holds it; repeatable (default: none)",
    )
    _common_data_flags(p)
    p.add_argument("--out", default="explain", help="folder for the pictures (default: ./explain)")
    p.add_argument(
        "--max-steps",
        type=int,
        default=49,
        help="prefixes to run, 1 to 784: every step up to this many, else every k-th step "
        "(784-step orders: every 16th) (default: 49)",
    )
    p.add_argument(
        "--no-attributions",
        action="store_true",
        help="skip integrated gradients (no Captum needed; default: draw them)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace pictures already in --out (default: refuse)",
    )
    _device_flag(p)


def _stems(images: list[str]) -> list[str]:
    """A file-name stem per image, unique within the call (seven.png, a/seven.png -> seven,
    seven-2)."""
    seen: dict[str, int] = {}
    stems = []
    for image in images:
        stem = Path(image).stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def _refuse_taken(out: Path, stems: list[str], overwrite: bool) -> None:
    """Before any work: a file this call would write that exists already is refused."""
    from ..explain_plots import PICTURES

    if overwrite:
        return
    if out.exists() and not out.is_dir():
        raise SeqMnistError(f"--out {out} is a file: give a folder")
    for stem in stems:
        for file, _ in PICTURES.values():
            if (out / f"{stem}-{file}").exists():
                raise SeqMnistError(
                    f"{out / f'{stem}-{file}'} already exists: choose another --out folder or "
                    "pass --overwrite"
                )


def _run_explain(args: argparse.Namespace) -> int:
    from ..explain import watch
    from ..explain_plots import write_explanation
    from ..figures import pyplot
    from ..predict import load

    require_int("--max-steps", args.max_steps, 1, 784)
    if not args.images and not args.index:
        raise SeqMnistError("name an image file or a test image (--index N) to explain")
    out = Path(args.out)
    stems = _stems(args.images) + [f"test-{i}" for i in args.index]
    _refuse_taken(out, stems, args.overwrite)
    pyplot()  # no matplotlib: say so before loading anything
    classifier = load(args.model, device=args.device)
    digits = [(image, False) for image in args.images] + _test_digits(args)
    failed = False
    for (image, mnist_form), stem in zip(digits, stems):
        try:
            reading = watch(
                classifier,
                image,
                max_steps=args.max_steps,
                attributions=not args.no_attributions,
                mnist_form=mnist_form,
            )
            written = write_explanation(reading, out, stem, overwrite=args.overwrite)
        except SeqMnistError as exc:
            if args.debug:
                raise
            print(f"seqmnist: error: {exc}", file=sys.stderr)
            failed = True
            continue
        probs = reading.probabilities[-1]
        name = stem if mnist_form else image
        print(f"{name}  {reading.label}  ({probs[reading.label]:.1%})", flush=True)
        for path in written:
            print(f"  wrote {path}", flush=True)
        _print_image_warnings(name, reading.warnings)
    return EXIT_ERROR if failed else 0


def _test_digits(args: argparse.Namespace) -> list[tuple[object, bool]]:
    """The ``--index`` test images, uint8 (28, 28) each, checked against the split's size."""
    if not args.index:
        return []
    from ..data import load_mnist
    from ..digit_source import pick_digit

    test = load_mnist(args.data_dir, train=False, download=not args.no_download)
    return [(pick_digit(test, "test", i, None).image, True) for i in args.index]
