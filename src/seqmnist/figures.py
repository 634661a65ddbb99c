"""The plumbing every picture shares: pyplot without a display, output paths checked before any
drawing, and an atomic save.

matplotlib is an optional extra (``pip install 'seqmnist[plots]'``), so it is imported inside
``pyplot()``, never at module import; a missing matplotlib is one ``PlotsUnavailable`` line. Every
drawing function in seqmnist calls ``prepare_output`` before slow work and ends with
``save_figure``, which writes the format the file's suffix names (PNG, JPEG, PDF or SVG) through
``run.atomic_write``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .errors import SeqMnistError
from .run import atomic_write

if TYPE_CHECKING:  # only for type hints; matplotlib is imported lazily
    from matplotlib.figure import Figure

DPI = 120


class PlotsUnavailable(SeqMnistError, ImportError):
    """matplotlib is not installed. An ImportError too, so training only warns about it."""


def pyplot() -> Any:
    """Import pyplot with the non-interactive Agg backend (no display needed)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotsUnavailable(
            "matplotlib is not installed: pip install 'seqmnist[plots]' to draw pictures"
        ) from None
    return plt


# Output file suffix -> matplotlib format (JPEG through Pillow, a core dependency).
PLOT_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".pdf": "pdf", ".svg": "svg"}


def _unwritable(out_path: Path, exc: OSError) -> SeqMnistError:
    return SeqMnistError(
        f"cannot write {out_path} ({exc.strerror or exc}): choose a writable output path"
    )


def plot_format(out_path: str | os.PathLike) -> str:
    """The format ``out_path``'s suffix names (``.png`` -> "png"); other suffixes are refused."""
    suffix = Path(out_path).suffix.lower()
    if suffix not in PLOT_FORMATS:
        named = f"ends in {suffix!r}" if suffix else "has no file suffix"
        raise SeqMnistError(
            f"cannot write {out_path}: it {named}; give a file name ending in "
            f"{', '.join(PLOT_FORMATS)}"
        )
    return PLOT_FORMATS[suffix]


def prepare_output(out_path: str | os.PathLike) -> Path:
    """Check the suffix and create the folder ``out_path`` goes into, so a bad or unwritable path
    fails before any drawing (call it before slow work too)."""
    out_path = Path(out_path)
    if out_path.is_dir():
        raise SeqMnistError(
            f"cannot write {out_path}: it is a folder; give a file name ending in "
            f"{', '.join(PLOT_FORMATS)}"
        )
    plot_format(out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(out_path, exc) from None
    return out_path


@contextlib.contextmanager
def removing_new_folders(folder: str | os.PathLike) -> Iterator[None]:
    """Remove the folders up to ``folder`` that this block created, if it fails and they are
    still empty: a failed plot leaves no empty --out folder behind."""
    folder = Path(folder).absolute()
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield
    except BaseException:
        for path in missing:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only removes an empty folder
        raise


MADE_BY = "written by seqmnist"
"""In the metadata of every picture seqmnist saves (PNG "Software", PDF / SVG "Creator", JPEG EXIF
"Software"): it tells a picture seqmnist may draw again from a file of the user's."""
EXIF_SOFTWARE = 0x0131
READ_FOR_MARK = 1 << 16  # the mark sits in a picture's first (PNG, SVG, JPEG) or last (PDF) bytes


def _marked(fmt: str) -> dict[str, Any]:
    """``savefig`` keyword arguments that write MADE_BY into a picture of format ``fmt``."""
    if fmt == "png":
        return {"metadata": {"Software": MADE_BY}}
    if fmt in ("pdf", "svg"):
        return {"metadata": {"Creator": MADE_BY}}
    # JPEG, through Pillow: the EXIF "Software" tag, which editors rewrite with their own name
    # (a JPEG comment would be copied into every crop Pillow saves of it)
    exif = Image.Exif()
    exif[EXIF_SOFTWARE] = MADE_BY
    return {"pil_kwargs": {"exif": exif.tobytes()}}


def drawn_by_seqmnist(path: str | os.PathLike) -> bool:
    """True for a picture seqmnist saved (its metadata holds MADE_BY)."""
    mark = MADE_BY.encode()
    try:
        with open(path, "rb") as f:
            head = f.read(READ_FOR_MARK)
            f.seek(max(0, os.fstat(f.fileno()).st_size - READ_FOR_MARK))
            return mark in head or mark in f.read()
    except OSError:
        return False


def refuse_replacing(
    out_path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    flag: str = "--out",
) -> None:
    """Before any drawing: a command never writes a picture over one of its ``inputs``, nor over
    a file seqmnist did not draw unless ``overwrite`` (its own pictures are drawn again).
    ``flag`` names the option that chose ``out_path``, for the refusal's advice."""
    out_path = Path(out_path)
    if not out_path.is_file():
        return
    for source in inputs:
        if source is not None and Path(source).exists() and out_path.samefile(source):
            raise SeqMnistError(
                f"cannot write {out_path}: it is the image being read; choose another {flag}"
            )
    if not overwrite and not drawn_by_seqmnist(out_path):
        raise SeqMnistError(
            f"{out_path} already exists and is not marked as a picture seqmnist drew (none "
            f"before 2026-12-02 is): choose another {flag}, or pass --overwrite to replace it"
        )


def save_figure(fig: Figure, out_path: str | os.PathLike) -> Path:
    """Write ``fig`` in the format its suffix names (PNG, JPEG, PDF or SVG) and close it; errors
    name the path. Atomic, as every file seqmnist writes: a failed or interrupted save leaves the
    previous picture (or none), never half a PNG."""
    plt = pyplot()
    try:
        out_path = prepare_output(out_path)
        fmt = plot_format(out_path)
        atomic_write(out_path, lambda f: fig.savefig(f, dpi=DPI, format=fmt, **_marked(fmt)))
    finally:
        plt.close(fig)
    return out_path


def as_numpy(array: Any) -> np.ndarray:
    """Tensors (any device) and lists become numpy arrays."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)
