"""``seqmnist inspect``: shapes and relations (inspect.py), what the readout costs
(readout_probe.py), a picture of ``output``, and the gradient reaching each step (gradients.py)."""

from __future__ import annotations

import argparse
from typing import Any

from ..config import ModelConfig
from ..errors import SeqMnistError
from ..options import flag_specs, require_int
from .common import _add_config_flag, _common_data_flags, _print_image_warnings


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="shapes of output, h_n, c_n, which slices of output equal h_n, and what that costs",
        description="Run a batch of test images through a model's recurrent layer: tensor shapes, "
        "which slices of output equal h_n (with the scale of each difference), the value range "
        "of h and c, how constant the article's backward half output[:, -1, H:] is over "
        "--probe-size test images and the accuracy when each half of the readout is replaced by "
        "its mean; optionally a picture of output (--picture) and of the gradient reaching each "
        "time step (--gradients).",
    )
    p.add_argument(
        "model",
        metavar="RUN_DIR_OR_CHECKPOINT",
        nargs="?",
        help="a trained model (default: a model with seeded random weights, built from the "
        "architecture flags below)",
    )
    p.add_argument(
        "--index",
        type=int,
        help="the test image to start the batch with and to picture (default: 0)",
    )
    p.add_argument(
        "--image",
        metavar="FILE",
        help="an image file instead, read as `seqmnist predict` reads it (default: none)",
    )
    p.add_argument(
        "--batch-size", type=int, default=8, help="images in the batch, 1 to 10000 (default: 8)"
    )
    p.add_argument(
        "--probe-size",
        type=int,
        default=1000,
        help="test images for the readout figures, 0 to 10000; 0 skips them (default: 1000)",
    )
    p.add_argument("--picture", metavar="PNG", help="draw output (T x D*H) of the digit here")
    p.add_argument(
        "--gradients",
        metavar="PNG",
        help="measure |dL/dx_t| and |dL/dh_t| over the batch and draw them here (log scale)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a --picture or --gradients file that seqmnist did not draw (its own "
        "pictures are always redrawn; the --image file is never replaced) (default: refuse)",
    )
    defaults = ModelConfig()
    for spec in flag_specs(ModelConfig):  # the random-weights model's architecture, as train's
        default = getattr(defaults, spec.name)
        _add_config_flag(p, spec, f"random-weights model only: {spec.help} (default: {default})")
    _common_data_flags(p)


def _model_and_config(args: argparse.Namespace) -> tuple[Any, Any]:
    """The trained model and its config, or a seeded random one built from the flags."""
    from ..config import TrainConfig
    from ..model import build_model

    given = {s.name: getattr(args, s.name) for s in flag_specs(ModelConfig)}
    given = {k: v for k, v in given.items() if v is not None}
    if args.model:
        if given:
            flags = ", ".join("--" + k.replace("_", "-") for k in given)
            which = "it describes" if len(given) == 1 else "they describe"
            raise SeqMnistError(
                f"{flags}: {which} the random-weights model, not a trained run; drop "
                f"{'it' if len(given) == 1 else 'them'} (the run's own config is used)"
            )
        from ..trained import load_trained

        trained = load_trained(args.model)
        print(f"model: {trained.checkpoint}")
        return trained.model, trained.config
    import torch

    model_config = ModelConfig(**given)
    model_config.validate()
    torch.manual_seed(0)
    print("model: random weights (seed 0); pass a run directory to inspect a trained one")
    return build_model(model_config).eval(), TrainConfig(model=model_config)


def _run_inspect(args: argparse.Namespace) -> int:
    import torch

    from ..data import load_mnist, to_model_input
    from ..digit_source import pick_digit
    from ..figures import prepare_output, refuse_replacing
    from ..inspect import format_inspection, inspect_model

    require_int("--batch-size", args.batch_size, 1, 10_000)
    require_int("--probe-size", args.probe_size, 0, 10_000)
    for flag, picture in (("--picture", args.picture), ("--gradients", args.gradients)):
        if picture is not None:  # checked before any slow work
            prepare_output(picture)
            refuse_replacing(picture, inputs=[args.image], overwrite=args.overwrite, flag=flag)
    model, config = _model_and_config(args)
    test = load_mnist(args.data_dir, train=False, download=not args.no_download)
    digit = pick_digit(test, "test", args.index, args.image)
    _print_image_warnings(digit.source, digit.warnings)  # as `seqmnist predict` says them
    start = args.index or 0
    rest = test.images[start + 1 : start + args.batch_size] if args.image is None else None
    if rest is None:
        rest = test.images[: args.batch_size - 1]
    raw = torch.cat([digit.image[None], rest])  # (B, 28, 28) uint8: the digit first
    images = to_model_input(raw, config.normalize)
    scaled = "standardised" if config.normalize else "scaled to [0, 1]"
    print(f"batch: {digit.source} and {len(rest)} more test images, {scaled} as in training\n")
    print(format_inspection(inspect_model(model, images)))
    if args.probe_size:
        print()
        print(_probe_text(model, config, test, args.probe_size))
    if args.picture:
        _draw_output(model, images[:1], digit, args.picture)
    if args.gradients:
        _gradients(model, images, digit, test, start, args)
    return 0


def _probe_text(model: Any, config: Any, test: Any, size: int) -> str:
    from ..data import to_model_input
    from ..readout_probe import format_readout_probe, readout_probe

    raw = test.images[:size]  # (N, 28, 28) uint8
    last_step = model.read(raw.float())[:, -1]  # (N, F): the pixels of the last step
    blank = float((last_step.amax(dim=1) == 0).float().mean())
    probe = readout_probe(model, to_model_input(raw, config.normalize), test.labels[:size], blank)
    return format_readout_probe(probe, model.config.readout)


def _draw_output(model: Any, image: Any, digit: Any, out: str) -> None:
    from ..readout_probe import output_picture

    label = "" if digit.label is None else f", label {digit.label}"
    path = output_picture(model, image, out, f"output of {digit.source}{label}")
    print(f"\nwrote {path}")


def _gradients(model: Any, images: Any, digit: Any, test: Any, start: int, args: Any) -> None:
    import torch

    from ..gradients import format_gradients, gradient_picture, step_gradients

    if digit.label is None:  # an image file: its own label is unknown; use the model's answer
        with torch.no_grad():
            first = model(images[:1]).argmax(dim=1)
        labels = torch.cat([first, test.labels[: images.shape[0] - 1]])
        print("\n(the image file's label: the model's own answer)")
    else:
        labels = test.labels[start : start + images.shape[0]]
    result = step_gradients(model, images, labels)
    print()
    print(format_gradients(result))
    cfg = model.config
    title = (
        f"{cfg.cell.upper()} {'bi' if cfg.bidirectional else 'uni'}directional, "
        f"{result['steps']} steps ({cfg.order}), mean over {result['images']} images"
    )
    print(f"wrote {gradient_picture(result, args.gradients, title)}")
