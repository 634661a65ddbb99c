"""`seqmnist compare`: finished and unfinished runs side by side, as text or Markdown."""

from __future__ import annotations

import json

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


def test_compare_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqmnist: error: no such run directory") and "\n" not in err
    assert main(["compare", str(tmp_path)]) == 1
    assert "has no config.json" in capsys.readouterr().err
