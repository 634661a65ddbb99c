"""``seqmnist predict``'s work: walk the arguments for image files, classify each on its own, and
optionally save the 28x28 image the model saw. One bad file never stops the others."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import SeqMnistError
from .images import IMAGE_EXTENSIONS
from .run import atomic_write, write_failure


def image_files(inputs: Sequence[str]) -> list[tuple[str, str | None]]:
    """(path, None) for each file to classify, or (argument, error) for a folder without images."""
    files: list[tuple[str, str | None]] = []
    for arg in inputs:
        path = Path(arg)
        if not path.is_dir():
            files.append((arg, None))  # a missing or bad file is reported when it is opened
            continue
        found = sorted(
            f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not found:
            files.append(
                (
                    arg,
                    f"{arg}: no image files in this folder "
                    f"(looked for {' '.join(IMAGE_EXTENSIONS)})",
                )
            )
        files.extend((str(f), None) for f in found)
    return files


def prepare_save_dir(folder: str | os.PathLike | None) -> Path | None:
    """Create ``--save-preprocessed``'s folder up front.

    That way an unusable folder fails before any work is done.
    """
    if folder is None:
        return None
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SeqMnistError(f"--save-preprocessed {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(folder, exc) from None
    if not os.access(folder, os.W_OK):
        raise SeqMnistError(f"--save-preprocessed {folder} is not writable: choose another folder")
    return folder


def predict_files(
    classifier: Any,
    files: list[tuple[str, str | None]],
    *,
    top_k: int,
    save_dir: Path | None,
    on_error: Callable[[str], None],
    on_result: Callable[[Any], None] | None = None,
    debug: bool = False,
) -> list[dict[str, Any]]:
    """Classify each file on its own: a bad file gets ``on_error(message)`` and an "error" entry."""
    results: list[dict[str, Any]] = []
    saved_names: set[str] = set()
    for source, error in files:
        result: dict[str, Any] = {"source": source}
        if error is None:
            try:
                prediction = classifier.predict(source, top_k=top_k)[0]
                result = prediction.to_dict()
                if save_dir is not None:
                    saved = _save_preprocessed(
                        prediction.image, save_dir, Path(source).stem, saved_names
                    )
                    result["preprocessed"] = str(saved)
                if on_result is not None:
                    on_result(prediction)
            except SeqMnistError as exc:
                error = str(exc)
            except Exception as exc:  # one odd file must not stop the others (--debug shows it)
                if debug:
                    raise
                error = f"{source}: could not be processed ({type(exc).__name__}: {exc})"
        if error is not None:
            on_error(error)
            result = {"source": source, "error": error}
        results.append(result)
    return results


def _save_preprocessed(image: Any, folder: Path, stem: str, taken: set[str]) -> Path:
    """DIR/<stem>.png; a second file with the same stem becomes <stem>-2.png, and so on."""
    from PIL import Image

    name, n = f"{stem}.png", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    atomic_write(folder / name, lambda f: f.write(buffer.getvalue()))
    return folder / name
