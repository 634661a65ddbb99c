"""The public Python API beyond ``load`` / ``predict``: recipes, training, the data, evaluation,
``inspect_model`` and the pictures. Everything here is reachable as ``seqmnist.<name>``::

    import seqmnist
    cfg = seqmnist.recipe("default", epochs=3)         # a preset, with overrides
    summary = seqmnist.fit(cfg, "runs/mine")           # trains, tests once, writes the run
    clf = seqmnist.load("runs/mine")
    test = seqmnist.mnist("test")                      # images (N, 28, 28) uint8, labels (N,)
    seqmnist.draw_confusion("runs/mine", "confusion.png")
    reading = seqmnist.watch(clf, "seven.png")         # watch it read (see seqmnist.explain)
    seqmnist.draw_reading(reading, "out/")             # its pictures and GIF

Each function raises ``SeqMnistError`` (one line: what is wrong, what to do) for bad input;
pictures need the ``plots`` extra (matplotlib), attributions the ``notebook`` extra (Captum).
Training imports happen inside ``train`` only, so inference code that imports this stays light.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .config import PRESETS, TrainConfig, apply_overrides, preset_config
from .errors import SeqMnistError

PathLike = str | os.PathLike


def recipe(preset: str = "default", **overrides: Any) -> TrainConfig:
    """A training config: a preset ("default", "seed" = the article's recipe, "smnist",
    "pmnist", "best") with any field replaced by keyword, train and model fields alike
    (``epochs=3``, ``hidden=128``, ``order="columns"``). Raises ``ConfigError`` for an unknown
    preset or field, or a value out of range."""
    return apply_overrides(preset_config(preset), overrides)


def presets() -> list[str]:
    """The preset names ``recipe`` and ``fit`` accept."""
    return list(PRESETS)


def fit(
    config: TrainConfig | str = "default",
    out: PathLike = "runs/default",
    *,
    data_dir: PathLike | None = None,
    download: bool = True,
    overwrite: bool = False,
    resume: bool = False,
    quiet: bool = False,
    plots: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Train a model into the run directory ``out`` and test it once; returns the run's summary
    (test accuracy ``test_acc`` in 0..1, ``test_loss``, timings in seconds, the confusion
    matrix), also in ``out/summary.json``.

    ``config``: a ``TrainConfig`` (from ``recipe``) or a preset name; ``overrides`` replace its
    fields. ``data_dir``: the folder holding MNIST/raw/ (default $SEQMNIST_DATA, else ./data).
    ``plots``: draw curves.png, confusion.png and errors.png into ``out`` (needs matplotlib).
    Refuses an ``out`` that holds a run unless ``overwrite`` or ``resume``. Progress lines go to
    stdout unless ``quiet``.
    """
    from .train import fit

    if isinstance(config, str):
        cfg = recipe(config, **overrides)
    elif isinstance(config, TrainConfig):
        cfg = apply_overrides(config, overrides)
    else:
        raise SeqMnistError(
            f"fit takes a TrainConfig or a preset name; got {type(config).__name__}"
        )
    after_run = None
    if plots:

        def after_run(run_dir: Path) -> None:
            from .plots import write_run_plots

            write_run_plots(run_dir, data_dir=data_dir, download=download)

    return fit(
        cfg,
        out,
        data_dir=data_dir,
        download=download,
        resume=resume,
        overwrite=overwrite,
        quiet=quiet,
        progress=False,
        after_run=after_run,
    )


def mnist(split: str = "train", data_dir: PathLike | None = None, download: bool = True) -> Any:
    """MNIST's "train" (60,000) or "test" (10,000) split: ``.images`` (N, 28, 28) uint8 0-255,
    ``.labels`` (N,) int64 0-9, as torch tensors. Downloads when missing unless ``download`` is
    False; raises ``DataError`` naming the folder otherwise."""
    from .data import load_mnist

    if split not in ("train", "test"):
        raise SeqMnistError(f'split must be "train" or "test"; got {split!r}')
    return load_mnist(data_dir, train=split == "train", download=download)


def evaluate(
    model: PathLike, split: str = "test", data_dir: PathLike | None = None, download: bool = True
) -> dict[str, Any]:
    """A run directory or checkpoint on the "test" split (or the run's own "val" split), on the CPU:
    ``accuracy`` (0..1), ``loss``, ``per_class`` and ``confusion_matrix`` (10 x 10 counts, row =
    true digit, column = predicted), as ``seqmnist evaluate --json`` prints."""
    from .evaluation import evaluate_checkpoint

    return evaluate_checkpoint(
        model, split=split, data_dir=data_dir, download=download, device="cpu"
    )


def inspect_model(classifier: Any = None, images: Any = None) -> dict[str, Any]:
    """Shapes of ``output``, ``h_n``, ``c_n`` for a batch and which slices of ``output`` equal
    which rows of ``h_n`` (checked on the tensors, tolerance 1e-6), as ``seqmnist inspect``.

    ``classifier``: from ``seqmnist.load`` (None: the default architecture, seeded random
    weights). ``images``: (B, 28, 28) uint8 MNIST images (default: the first 8 test images);
    they are normalised as the model was trained.
    """
    import torch

    from .data import to_model_input
    from .inspect import inspect_model as inspect_rnn

    normalize = classifier.config.normalize if classifier is not None else True
    if images is None:
        images = mnist("test").images[:8]
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise SeqMnistError(
            f"inspect takes uint8 images (B, 28, 28); got {images.dtype} {tuple(images.shape)}"
        )
    model = classifier.model.cpu() if classifier is not None else None
    return inspect_rnn(model, to_model_input(images, normalize))


def example_image(name: str = "seven") -> Path:
    """The path of a digit image shipped inside the package (a photo-like "seven": dark ink on
    light paper, 160 x 200 pixels), found from any working folder. Names: ``example_images()``."""
    from importlib.resources import files

    if name not in example_images():
        raise SeqMnistError(
            f"no example image {name!r}: choose one of {', '.join(example_images())}"
        )
    return Path(str(files("seqmnist") / "samples" / f"{name}.png"))


def example_images() -> list[str]:
    """Names of the digit images shipped with the package."""
    from importlib.resources import files

    folder = files("seqmnist") / "samples"
    return sorted(p.name[: -len(".png")] for p in folder.iterdir() if p.name.endswith(".png"))


# --- pictures: each writes one file and returns its path ---------------------------------


def draw_samples(images: Any, labels: Any, out: PathLike, title: str | None = None) -> Path:
    """Images (N, 28, 28) uint8 in a grid, each with its label (N up to ~100)."""
    from .pictures import sample_grid

    kwargs = {"title": title} if title else {}
    return sample_grid(images, labels, out, **kwargs)


def draw_sequence(image: Any, label: int, out: PathLike, **order: Any) -> Path:
    """One (28, 28) uint8 image as the sequence a model reads: 28 rows of 28 pixels, or the
    order given by ``order="columns"`` / ``"pixels"`` / ``"permuted"`` (and
    ``pixels_per_step``, ``permutation_seed``)."""
    import torch

    from .config import ModelConfig
    from .pictures import sequence_view
    from .sequence import SequenceReader

    reading = ModelConfig(**order)
    reading.validate()
    sequence = SequenceReader(reading)(torch.as_tensor(image).float()[None])[0]  # (T, F)
    return sequence_view(sequence, int(label), out, order=reading.order)


def draw_curves(runs: PathLike | list[PathLike], out: PathLike) -> Path:
    """Loss, accuracy and learning-rate curves of one run directory, or several overlaid."""
    from .curves import curves

    return curves([runs] if isinstance(runs, (str, os.PathLike)) else list(runs), out)


def draw_confusion(run_or_matrix: Any, out: PathLike, title: str | None = None) -> Path:
    """The confusion matrix of a finished run directory (from its summary.json) or of a
    (10, 10) count matrix (row = true digit)."""
    from .plots import confusion
    from .run import RunDir

    matrix = run_or_matrix
    if isinstance(run_or_matrix, (str, os.PathLike)):
        summary = RunDir(run_or_matrix).read_summary()
        if not summary or "confusion_matrix" not in summary:
            raise SeqMnistError(f"{run_or_matrix} holds no finished run (no summary.json)")
        matrix = summary["confusion_matrix"]
    kwargs = {"title": title} if title else {}
    return confusion(matrix, out, **kwargs)


def draw_mistakes(
    run: PathLike, out: PathLike, data_dir: PathLike | None = None, max_items: int = 30
) -> Path:
    """The run's most confident mistakes on the test set (best checkpoint), captioned
    "true 7 → pred 1 (0.83)"."""
    from .pictures import error_gallery
    from .plots import misclassified

    e = misclassified(run, data_dir=data_dir)
    args = (e["images"], e["true"], e["pred"], e["confidence"], out)
    return error_gallery(*args, max_items=max_items, total=e["total"])


def draw_reading(
    reading: Any, out_dir: PathLike, stem: str = "digit", overwrite: bool = False
) -> list[Path]:
    """Every picture of a ``Reading`` (from ``watch``) into ``out_dir``:
    <stem>-probabilities.png, -states.png, -attributions.png and the animation -reading.gif.
    Refuses to replace existing files unless ``overwrite``."""
    from .explain_plots import write_explanation

    return write_explanation(reading, out_dir, stem, overwrite=overwrite)
