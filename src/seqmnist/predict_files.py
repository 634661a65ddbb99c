"""``seqmnist predict``'s work: walk the arguments for image files, classify each on its own, and
optionally save the 28x28 image the model saw. One bad file never stops the others.

The walk reads every file name ending Pillow registers for the formats ``open_image`` decodes
(any letter case), reads files without an extension by their content, skips hidden files and
folders, and keeps a list of what it skipped and why. ``--save-preprocessed`` never writes over an
image it reads, nor over a file already in its folder unless told to (``--overwrite``).
"""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SeqMnistError
from .images import IMAGE_EXTENSIONS, PILLOW_FORMATS
from .run import atomic_write, write_failure

# Why the walk skipped something: (one, several), as the skip line counts them.
NOT_IMAGE_BY_EXTENSION = ("not an image by extension", "not images by extension")
NO_EXTENSION_NOT_IMAGE = (
    "without extension and not an image",
    "without extension and not images",
)
HIDDEN_FILE = ("hidden file", "hidden files")
HIDDEN_FOLDER = ("hidden folder", "hidden folders")
NOT_A_FILE = ("not a regular file", "not regular files")
FOLDER_LINK = ("link to a folder (not followed)", "links to folders (not followed)")
UNREADABLE_FOLDER = ("folder that cannot be read", "folders that cannot be read")
SAVE_FOLDER = ("--save-preprocessed folder", "--save-preprocessed folders")


@dataclass(frozen=True)
class FileInput:
    """One file to classify: its path, its name under ``--save-preprocessed`` before ".png" is
    added (its path inside the folder it was found in, else its file name), or an error."""

    source: str
    name: str
    error: str | None = None


@dataclass
class Walk:
    """What the arguments name: the files to classify, and what folder walks skipped."""

    inputs: list[FileInput] = field(default_factory=list)
    skipped: list[tuple[str, str, tuple[str, str]]] = field(default_factory=list)
    """(folder argument, skipped path, reason)"""

    def skip_lines(self, verbose: bool = False) -> list[str]:
        """One line per walked folder that skipped anything (counts by reason); with ``verbose``,
        one line per skipped path instead."""
        if verbose:
            return [f"seqmnist: skipped {path}: {why[0]}" for _, path, why in self.skipped]
        lines = []
        for folder in dict.fromkeys(arg for arg, _, _ in self.skipped):
            counts = Counter(why for arg, _, why in self.skipped if arg == folder)
            parts = "; ".join(
                f"{n} {why[0] if n == 1 else why[1]}" for why, n in counts.most_common()
            )
            total = sum(counts.values())
            lines.append(f"seqmnist: skipped {total} in {folder}: {parts} (--verbose lists them)")
        return lines


def find_images(inputs: Sequence[str], exclude: str | os.PathLike | None = None) -> Walk:
    """Files named as arguments, and the image files in folders named as arguments (recursively,
    sorted). ``exclude`` (the ``--save-preprocessed`` folder) is left out of every walk."""
    excluded = os.path.realpath(exclude) if exclude is not None else None
    walk = Walk()
    for arg in inputs:
        path = Path(arg)
        if not path.is_dir():  # a missing or bad file is reported when it is opened
            walk.inputs.append(FileInput(arg, path.name))
            continue
        found = _walk_folder(arg, excluded, walk.skipped)
        if not found:
            walk.inputs.append(
                FileInput(
                    arg,
                    path.name,
                    f"{arg}: no image files in this folder "
                    f"(looked for {' '.join(IMAGE_EXTENSIONS)}, in any letter case)",
                )
            )
        walk.inputs.extend(FileInput(str(f), f.relative_to(path).as_posix()) for f in found)
    return walk


def _walk_folder(
    arg: str, excluded: str | None, skipped: list[tuple[str, str, tuple[str, str]]]
) -> list[Path]:
    found: list[Path] = []
    mine: list[tuple[str, str, tuple[str, str]]] = []

    def unreadable(exc: OSError) -> None:
        mine.append((arg, str(exc.filename), UNREADABLE_FOLDER))

    for root, dirs, files in os.walk(arg, onerror=unreadable):
        for name in sorted(dirs):
            path = os.path.join(root, name)
            why = None
            if name.startswith("."):
                why = HIDDEN_FOLDER  # .git, .venv, .ipynb_checkpoints ...
            elif excluded is not None and os.path.realpath(path) == excluded:
                why = SAVE_FOLDER  # its output must not become the next walk's input
            elif os.path.islink(path):
                why = FOLDER_LINK  # os.walk does not follow them (a link may loop)
            if why is not None:
                dirs.remove(name)
                mine.append((arg, path, why))
        for name in files:
            path = os.path.join(root, name)
            why = _file_skip_reason(path, name)
            if why is None:
                found.append(Path(path))
            else:
                mine.append((arg, path, why))
    skipped.extend(sorted(mine, key=lambda item: Path(item[1])))
    return sorted(found)


def _file_skip_reason(path: str, name: str) -> tuple[str, str] | None:
    """Why a file found in a folder is not read, or None to read it."""
    if name.startswith("."):
        return HIDDEN_FILE
    suffix = os.path.splitext(name)[1].lower()
    if suffix and suffix not in IMAGE_EXTENSIONS:
        return NOT_IMAGE_BY_EXTENSION
    if not os.path.isfile(path):  # a FIFO would block a read; a broken link cannot be read
        return NOT_A_FILE
    if not suffix and not _is_image(path):
        return NO_EXTENSION_NOT_IMAGE
    return None


def _is_image(path: str) -> bool:
    """Whether a file's header is one of the formats ``open_image`` decodes (cheap: Pillow reads
    the header only)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a large image's DecompressionBombWarning
            with Image.open(path, formats=PILLOW_FORMATS):
                return True
    except Image.DecompressionBombError:
        return True  # an image: predict says why it cannot use it
    except Exception:  # not an image, or unreadable: either way not one to classify
        return False


def plan_saves(
    inputs: Sequence[FileInput], folder: str | os.PathLike, overwrite: bool
) -> list[Path | None]:
    """Where ``--save-preprocessed`` writes each input's 28x28 image: FOLDER/<name>.png.

    Names keep the source's name and extension and a walked folder's subfolders (four.jpg ->
    four.jpg.png, a/1.png -> a/1.png.png), so different files get different names; a name met
    twice in one run (the same file name in two arguments) becomes <name>-2.png, -3 ... No target
    is ever an image this run reads. Unless ``overwrite``, a folder that holds images this run
    reads, or a target that exists already, is refused before any work is done; then the
    folder is created (an unusable one fails here too, before any image is classified).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SeqMnistError(f"--save-preprocessed {folder} is a file, not a folder")
    readable = [item for item in inputs if item.error is None]
    sources = {os.path.realpath(item.source) for item in readable}
    if not overwrite:
        real_folder = os.path.join(os.path.realpath(folder), "")
        inside = [item.source for item in readable if _is_within(item.source, real_folder)]
        if inside:
            raise SeqMnistError(
                f"--save-preprocessed {folder} holds images this command reads "
                f"({_first_and_count(inside)}); choose a folder outside them (a new subfolder of "
                "a walked folder is fine: the walk leaves it out), or pass --overwrite to save "
                "beside them"
            )
    taken: set[str] = set()
    targets: list[Path | None] = []
    for item in inputs:
        if item.error is not None:
            targets.append(None)
            continue
        n = 1
        while True:
            target = folder / (f"{item.name}.png" if n == 1 else f"{item.name}-{n}.png")
            real = os.path.realpath(target)
            # casefold: four.PNG and four.png are one file on macOS and Windows
            if real.casefold() not in taken and real not in sources:
                break
            n += 1
        taken.add(real.casefold())
        targets.append(target)
    if not overwrite:
        existing = [str(t) for t in targets if t is not None and os.path.lexists(t)]
        if existing:
            raise SeqMnistError(
                f"--save-preprocessed would replace files already in {folder} "
                f"({_first_and_count(existing)}); pass --overwrite to replace them, or choose "
                "another folder"
            )
    _create_save_dir(folder)
    return targets


def _is_within(path: str, real_folder: str) -> bool:
    """Whether ``path`` lies in ``real_folder`` (a real path ending in a separator), at any
    depth."""
    return os.path.realpath(path).startswith(real_folder)


def _first_and_count(paths: Sequence[str]) -> str:
    return paths[0] if len(paths) == 1 else f"{paths[0]} and {len(paths) - 1} more"


def _create_save_dir(folder: Path) -> None:
    """Create ``--save-preprocessed``'s folder (``plan_saves`` refused a file of that name)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failure(folder, exc) from None
    if not os.access(folder, os.W_OK):
        raise SeqMnistError(f"--save-preprocessed {folder} is not writable: choose another folder")


def predict_files(
    classifier: Any,
    inputs: Sequence[FileInput],
    *,
    top_k: int,
    save_to: Sequence[Path | None] | None = None,
    on_error: Callable[[str], None],
    on_result: Callable[[Any], None] | None = None,
    debug: bool = False,
) -> list[dict[str, Any]]:
    """Classify each file on its own: a bad file gets ``on_error(message)`` and an "error" entry.

    ``save_to`` (from ``plan_saves``) says where each input's 28x28 image goes. ``on_result`` runs
    outside the per-file error handling: a failed write of the result (a closed pipe) is not the
    file's fault and stops the loop.
    """
    results: list[dict[str, Any]] = []
    for i, item in enumerate(inputs):
        result: dict[str, Any] = {"source": item.source}
        error, prediction = item.error, None
        if error is None:
            try:
                prediction = classifier.predict(item.source, top_k=top_k)[0]
                result = prediction.to_dict()
                target = save_to[i] if save_to is not None else None
                if target is not None:
                    _save_preprocessed(prediction.image, target)
                    result["preprocessed"] = str(target)
            except SeqMnistError as exc:
                error = str(exc)
            except Exception as exc:  # one odd file must not stop the others (--debug shows it)
                if debug:
                    raise
                error = f"{item.source}: could not be processed ({type(exc).__name__}: {exc})"
        if error is not None:
            on_error(error)
            result = {"source": item.source, "error": error}
        elif on_result is not None:
            on_result(prediction)
        results.append(result)
    return results


def _save_preprocessed(image: Any, target: Path) -> None:
    from PIL import Image

    try:
        target.parent.mkdir(parents=True, exist_ok=True)  # a walked folder's subfolders
    except OSError as exc:
        raise write_failure(target.parent, exc) from None
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    atomic_write(target, lambda f: f.write(buffer.getvalue()))
