"""Shell conventions and the user's files (issue 19, requirements 3 and 4): nothing of the user's is
overwritten, every file gets the umask's mode, a closed pipe ends a command quietly, and a folder
walk finds every image it can read and says what it skipped.

Commands run in process (``main([...])``) where that shows the behaviour, and as real processes
where only a real pipe can (``| head -1``, a closed stdout).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from seqmnist.cli import main

# A command whose output pipe closed exits 141, as coreutils do (128 + SIGPIPE).
EXIT_OUTPUT_CLOSED = 141

pytestmark = pytest.mark.usefixtures("torch_one_thread")

REPO = Path(__file__).resolve().parents[1]


def digit_image(mode: str = "RGB") -> Image.Image:
    """A dark stroke on light paper: something predict reads without an error."""
    image = Image.new(mode, (60, 60), "white")
    image.paste("black" if mode != "L" else 0, (26, 10, 34, 50))
    return image


def write_digit(path: Path, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    digit_image().save(path, format=fmt)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def predict_json(capsys, *args: str) -> tuple[int, list[dict], str]:
    code = main(["predict", *args, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else [], err


# --- nothing of the user's is overwritten ---------------------------------------------------


def test_save_preprocessed_into_the_photos_folder_never_replaces_the_photos(tiny_run, tmp_path):
    """`predict RUN . --save-preprocessed .` replaced every photo by its 28x28 version (exit 0)."""
    photos = tmp_path / "photos"
    write_digit(photos / "four.jpg", "JPEG")
    write_digit(photos / "seven.png", "PNG")
    before = snapshot(photos)

    assert main(["predict", str(tiny_run), str(photos), "--save-preprocessed", str(photos)]) == 1
    assert snapshot(photos) == before  # refused: nothing written, nothing replaced

    # --overwrite writes beside the photos, under names that cannot be theirs
    assert (
        main(
            ["predict", str(tiny_run), str(photos), "--save-preprocessed", str(photos)]
            + ["--overwrite"]
        )
        == 0
    )
    after = snapshot(photos)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == ["four.jpg.png", "seven.png.png"]


def test_overwrite_never_writes_over_an_image_being_read(tiny_run, tmp_path, capsys):
    """four.png's save name would be four.png.png, which is itself one of the images read."""
    photos = tmp_path / "photos"
    write_digit(photos / "four.png")
    write_digit(photos / "four.png.png")
    before = snapshot(photos)
    code, results, _ = predict_json(
        capsys, str(tiny_run), str(photos), "--save-preprocessed", str(photos), "--overwrite"
    )
    assert code == 0
    after = snapshot(photos)
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == ["four.png-2.png", "four.png.png.png"]


def test_overwrite_without_save_preprocessed_is_refused(tiny_run, tmp_path, capsys):
    photo = write_digit(tmp_path / "four.png")
    assert main(["predict", str(tiny_run), str(photo), "--overwrite"]) == 1
    assert "--save-preprocessed" in capsys.readouterr().err


def test_refusal_is_one_line_that_names_the_way_out(tiny_run, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_digit(photos / "four.png")
    assert main(["predict", str(tiny_run), str(photos), "--save-preprocessed", str(photos)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqmnist: error: "), err
    assert "--overwrite" in lines[0] and "Traceback" not in err


def test_existing_files_in_the_save_folder_are_not_replaced(tiny_run, tmp_path):
    photos, seen = tmp_path / "photos", tmp_path / "seen"
    write_digit(photos / "four.jpg", "JPEG")
    seen.mkdir()
    mine = {"four.png": b"the user's own four.png", "four.jpg.png": b"the user's own file"}
    for name, data in mine.items():
        (seen / name).write_bytes(data)

    assert main(["predict", str(tiny_run), str(photos), "--save-preprocessed", str(seen)]) == 1
    assert snapshot(seen) == mine

    assert (
        main(
            ["predict", str(tiny_run), str(photos), "--save-preprocessed", str(seen)]
            + ["--overwrite"]
        )
        == 0
    )
    assert (seen / "four.png").read_bytes() == mine["four.png"]  # not a name this run uses
    with Image.open(seen / "four.jpg.png") as saved:
        assert saved.size == (28, 28)


def test_save_names_keep_the_extension_and_the_subfolders(tiny_run, tmp_path, capsys):
    """four.jpg and four.png became four.png and four-2.png; a/1.png and b/1.png 1.png, 1-2.png."""
    photos, seen = tmp_path / "photos", tmp_path / "seen"
    write_digit(photos / "four.jpg", "JPEG")
    write_digit(photos / "four.png")
    write_digit(photos / "a" / "1.png")
    write_digit(photos / "b" / "1.png")
    code, results, _ = predict_json(
        capsys, str(tiny_run), str(photos), "--save-preprocessed", str(seen)
    )
    assert code == 0
    assert sorted(snapshot(seen)) == ["a/1.png.png", "b/1.png.png", "four.jpg.png", "four.png.png"]
    by_source = {Path(r["source"]).relative_to(photos).as_posix(): r for r in results}
    assert by_source["four.jpg"]["preprocessed"] == str(seen / "four.jpg.png")
    assert by_source["a/1.png"]["preprocessed"] == str(seen / "a" / "1.png.png")


def test_the_same_name_from_two_arguments_does_not_collide(tiny_run, tmp_path, capsys):
    one, two, seen = tmp_path / "one", tmp_path / "two", tmp_path / "seen"
    write_digit(one / "four.png")
    write_digit(two / "four.png")
    code, results, _ = predict_json(
        capsys,
        str(tiny_run),
        str(one / "four.png"),
        str(two / "four.png"),
        "--save-preprocessed",
        str(seen),
    )
    assert code == 0
    assert [r["preprocessed"] for r in results] == [
        str(seen / "four.png.png"),
        str(seen / "four.png-2.png"),
    ]


def test_a_save_folder_inside_the_walked_folder_is_left_out(tiny_run, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_digit(photos / "four.png")
    seen = photos / "seen"
    for _ in range(2):  # the second walk must not read the first one's output
        code, results, _ = predict_json(
            capsys, str(tiny_run), str(photos), "--save-preprocessed", str(seen), "--overwrite"
        )
        assert code == 0
        assert [r["source"] for r in results] == [str(photos / "four.png")]
    assert sorted(snapshot(seen)) == ["four.png.png"]


# --- file modes -----------------------------------------------------------------------------


@pytest.fixture()
def umask():
    """Set the process umask for one test; restored afterwards."""
    before = os.umask(0o022)
    os.umask(before)

    def set_to(mask: int) -> None:
        os.umask(mask)

    yield set_to
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600)])
def test_saved_and_exported_files_get_the_umask_mode(
    tiny_run, synthetic_data_dir, tmp_path, umask, mask, expected
):
    """ONNX and TorchScript exports were 0600 under umask 022 (checkpoints were 0644); pt2 too."""
    from seqmnist.export import export_model

    umask(mask)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    formats = ["torchscript", "pt2"]
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        formats.append("onnx")
    except ImportError:
        pass
    for fmt in formats:
        report = export_model(run, fmt, data_dir=synthetic_data_dir, download=False, samples=32)
        assert mode(Path(report["path"])) == expected, fmt
    photo = write_digit(tmp_path / "photo.png")
    seen = tmp_path / "seen"
    assert main(["predict", str(run), str(photo), "--save-preprocessed", str(seen)]) == 0
    assert mode(seen / "photo.png.png") == expected


def test_reading_the_umask_leaves_it_alone(umask):
    from seqmnist.run import current_umask

    umask(0o027)
    assert current_umask() == 0o027
    assert os.umask(0o027) == 0o027


# --- the folder walk ------------------------------------------------------------------------


def test_walk_reads_every_registered_extension(tiny_run, tmp_path, capsys):
    """.jfif and .jpe (what browsers save JPEGs as) were skipped without a word."""
    from PIL import features

    photos = tmp_path / "photos"
    names = {"a.jfif": "JPEG", "b.jpe": "JPEG", "c.JPG": "JPEG", "d.apng": "PNG", "e.Png": "PNG"}
    names["f.mpo"] = "JPEG"
    try:
        if features.check_module("avif"):
            names["g.avif"] = "AVIF"
    except ValueError:  # a Pillow that knows no AVIF
        pass
    for name, fmt in names.items():
        write_digit(photos / name, fmt)
    code, results, err = predict_json(capsys, str(tiny_run), str(photos))
    assert code == 0, err
    assert sorted(Path(r["source"]).name for r in results) == sorted(names)
    assert all("error" not in r for r in results)


def test_walk_skips_hidden_sniffs_files_without_extension_and_says_so(tiny_run, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_digit(photos / "four.png")
    write_digit(photos / "scan", "PNG")  # no extension: read by its content
    (photos / "README").write_text("not an image\n")  # no extension, not an image
    (photos / "notes.txt").write_text("hello\n")
    write_digit(photos / ".thumb.png")  # hidden file
    write_digit(photos / ".git" / "x.png")  # hidden folders
    write_digit(photos / ".venv" / "lib" / "y.png")

    code, results, err = predict_json(capsys, str(tiny_run), str(photos))
    assert code == 0
    assert [r["source"] for r in results] == [str(photos / "four.png"), str(photos / "scan")]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("seqmnist: ") and str(photos) in line
    for part in (
        "1 not an image by extension",
        "1 without extension and not an image",
        "1 hidden file",
        "2 hidden folders",
    ):
        assert part in line, line

    code, results, err = predict_json(capsys, str(tiny_run), str(photos), "--verbose")
    assert len(results) == 2
    for name in ("README", "notes.txt", ".thumb.png", ".git", ".venv"):
        assert any(str(photos / name) in line for line in err.splitlines()), (name, err)


def test_a_folder_with_nothing_to_skip_prints_no_skip_line(tiny_run, tmp_path, capsys):
    photos = tmp_path / "photos"
    write_digit(photos / "four.png")
    code, results, err = predict_json(capsys, str(tiny_run), str(photos))
    assert code == 0 and err == "" and len(results) == 1


# --- closed pipes ---------------------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqmnist", *args]


def shell_env(buffered: bool = True) -> dict[str, str]:
    """The environment a user's shell gives: stdout into a pipe is block-buffered unless
    PYTHONUNBUFFERED is set (pytest's own environment may set it)."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    env.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def run_into_closed_stdout(args: list[str], buffered: bool = True) -> tuple[int, str]:
    """Run with stdout a pipe whose reader has already gone: every write to it fails."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            args,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=shell_env(buffered),
            timeout=240,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr


def many_photos(folder: Path, count: int) -> Path:
    first = write_digit(folder / "000.png")
    for i in range(1, count):
        shutil.copyfile(first, folder / f"{i:03}.png")
    return folder


def assert_quiet(err: str) -> None:
    assert "Traceback" not in err and "BrokenPipe" not in err and "Broken pipe" not in err, err
    assert "error" not in err, err


@pytest.mark.parametrize("buffered", [True, False])
def test_predict_into_a_closed_pipe_is_quiet_and_stops(tiny_run, tmp_path, buffered):
    """Was: one "BrokenPipeError" error line per file, exit 1, and every file still worked on."""
    photos = many_photos(tmp_path / "photos", 60)
    seen = tmp_path / "seen"
    args = cli("predict", str(tiny_run), str(photos), "--save-preprocessed", str(seen))
    code, err = run_into_closed_stdout(args, buffered)
    assert code == EXIT_OUTPUT_CLOSED
    assert_quiet(err)
    assert len(list(seen.iterdir())) <= 2  # the work stopped at the first broken write


def test_predict_json_into_a_closed_pipe_is_quiet(tiny_run, tmp_path):
    """Was: a traceback."""
    photos = many_photos(tmp_path / "photos", 3)
    code, err = run_into_closed_stdout(cli("predict", str(tiny_run), str(photos), "--json"))
    assert code == EXIT_OUTPUT_CLOSED
    assert_quiet(err)


def pipe_to_head(args: list[str], buffered: bool = True) -> tuple[int, str, str]:
    """`args | head -1` in bash with pipefail: (the pipeline's status, head's output, stderr)."""
    command = shlex.join(args) + " | head -1"
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        env=shell_env(buffered),
        timeout=240,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_predict_head_1(tiny_run, tmp_path):
    photos = many_photos(tmp_path / "photos", 200)
    code, out, err = pipe_to_head(cli("predict", str(tiny_run), str(photos)), buffered=False)
    assert out.startswith(str(photos / "000.png")) and len(out.splitlines()) == 1
    assert_quiet(err)
    assert code == EXIT_OUTPUT_CLOSED


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_info_head_1(tiny_run, json_flag):
    code, err = run_into_closed_stdout(cli("info", str(tiny_run), *json_flag))
    assert code == EXIT_OUTPUT_CLOSED
    assert_quiet(err)
    code, out, err = pipe_to_head(cli("info", str(tiny_run), *json_flag))
    assert len(out.splitlines()) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert code in (0, EXIT_OUTPUT_CLOSED)  # 0 when all of it fitted into the pipe in time


def test_train_into_a_closed_pipe_ends_as_ctrl_c_does(synthetic_data_dir, tmp_path):
    """The run keeps a checkpoint, stderr says how to resume, and the resume finishes the run."""
    from seqmnist.run import RunDir

    run = tmp_path / "run"
    args = cli(
        "train",
        "--data-dir",
        str(synthetic_data_dir),
        "--no-download",
        "--out",
        str(run),
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--batch-size",
        "50",
        "--val-size",
        "100",
        "--threads",
        "1",
        "--no-plots",
    )
    code, err = run_into_closed_stdout(args)
    assert code == EXIT_OUTPUT_CLOSED
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert f"seqmnist train --resume {run}" in err
    assert RunDir(run).last_checkpoint.is_file()
    assert not RunDir(run).summary_file.exists()  # it stopped: the run is not finished

    assert (
        main(
            [
                "train",
                "--resume",
                str(run),
                "--data-dir",
                str(synthetic_data_dir),
                "--no-download",
                "--quiet",
                "--no-plots",
            ]
        )
        == 0
    )
    assert RunDir(run).summary_file.is_file()
