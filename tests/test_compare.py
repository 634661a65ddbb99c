"""`seqmnist compare`: finished and unfinished runs side by side, as text or Markdown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import tiny_config
from seqmnist.cli import main
from seqmnist.run import RunDir


@pytest.fixture()
def unfinished_run(tmp_path):
    """A permuted-order run that has written its config but not yet its summary."""
    run = RunDir(tmp_path / "perm")
    run.create(
        tiny_config(order="permuted", pixels_per_step=16, permutation_seed=7), overwrite=False
    )
    return run.path


def test_compare_text_and_markdown(tiny_run, unfinished_run, capsys):
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert main(["compare", str(tiny_run), str(unfinished_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run",
        "order",
        "steps",
        "x",
        "pixels",
        "cell",
        "size",
        "params",
        "epochs",
        "test",
        "acc",
        "train",
        "time",
        "epochs",
        "at",
        "chance",
    ]
    finished, unfinished = lines[1], lines[2]
    assert finished.startswith("tiny ") and "rows" in finished and "28 x 28" in finished
    assert f"{summary['test_acc']:.2%}" in finished and f"{summary['parameters']:,}" in finished
    assert unfinished.startswith("perm ") and "permuted (seed 7)" in unfinished
    assert "49 x 16" in unfinished and "unfinished" in unfinished

    assert main(["compare", str(tiny_run), "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | order |") and table[1].startswith("|---|")
    assert table[2].startswith("| tiny | rows | 28 x 28 | lstm | 1 x 16 bi |")


def _copy_with_accuracy(run: Path, dest: Path, test_acc: float) -> Path:
    """A run folder holding ``run``'s config and summary, the summary claiming ``test_acc``."""
    dest.mkdir()
    (dest / "config.json").write_text((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    (dest / "summary.json").write_text(json.dumps({**summary, "test_acc": test_acc}))
    return dest


def test_compare_sorts_by_test_accuracy_unfinished_last(tiny_run, unfinished_run, tmp_path, capsys):
    worse = _copy_with_accuracy(tiny_run, tmp_path / "worse", 0.5)
    better = _copy_with_accuracy(tiny_run, tmp_path / "better", 0.99)
    assert main(["compare", str(unfinished_run), str(worse), str(better)]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert names == ["better", "worse", "perm"]


def test_compare_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no table without a single run
    err = captured.err.strip()
    assert err.startswith("seqmnist: error: no such run directory") and "\n" not in err
    assert main(["compare", str(tmp_path)]) == 1
    assert "has no config.json" in capsys.readouterr().err


def test_compare_still_shows_the_runs_beside_a_bad_path(tiny_run, tmp_path, capsys):
    """One stray folder (a shell glob, a typo) costs one error line, not the whole table."""
    stray = tmp_path / "notes"
    stray.mkdir()
    args = ["compare", str(tmp_path / "typo"), str(tiny_run), str(stray), "--markdown"]
    assert main(args) == 1
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert len(table) == 3 and table[2].startswith("| tiny | rows |")
    errors = captured.err.splitlines()
    assert len(errors) == 2 and all(e.startswith("seqmnist: error: ") for e in errors)
    assert "typo" in errors[0] and "notes has no config.json" in errors[1]


@pytest.mark.parametrize("value", ["0.99", None, True, [1]])
def test_compare_a_summary_with_a_non_number_is_that_runs_error(tiny_run, tmp_path, capsys, value):
    damaged = _copy_with_accuracy(tiny_run, tmp_path / "damaged", 0.9)
    summary = json.loads((damaged / "summary.json").read_text())
    (damaged / "summary.json").write_text(json.dumps({**summary, "parameters": value}))
    code = main(["compare", str(damaged), str(tiny_run)])
    captured = capsys.readouterr()
    assert "tiny" in captured.out
    if value is None:  # a missing figure is shown as "-", not an error
        assert code == 0 and "damaged" in captured.out
    else:
        assert code == 1 and "parameters is" in captured.err and "damaged" not in captured.out
