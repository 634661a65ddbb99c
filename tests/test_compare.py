"""`seqmnist compare`: finished and unfinished runs side by side, as text or Markdown."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from conftest import tiny_config
from seqmnist.cli import main
from seqmnist.compare import run_labels
from seqmnist.metrics import Z_95, wilson_interval
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
    heading = "run preset order steps x pixels cell size params epochs test acc 95 % interval"
    assert lines[0].split() == [*heading.split(), "train", "time", "epochs", "at", "chance"]
    finished, unfinished = lines[1], lines[2]
    assert finished.startswith("tiny ") and "rows" in finished and "28 x 28" in finished
    assert f"{summary['test_acc']:.2%}" in finished and f"{summary['parameters']:,}" in finished
    assert unfinished.startswith("perm ") and "permuted (seed 7)" in unfinished
    assert "49 x 16" in unfinished and "unfinished" in unfinished

    assert main(["compare", str(tiny_run), "--markdown"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | preset | order |") and table[1].startswith("|---|")
    assert table[2].startswith("| tiny | default | rows | 28 x 28 | lstm | 1 x 16 bi |")


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
    table = capsys.readouterr().out.split("\n\n")[0]  # the footnotes follow a blank line
    names = [line.split()[0] for line in table.splitlines()[1:]]
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
    assert table[2].startswith("| tiny | default | rows |")
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


def test_run_labels_are_the_shortest_tails_that_differ(tmp_path):
    a, b = tmp_path / "a" / "runs" / "default", tmp_path / "b" / "runs" / "default"
    other = tmp_path / "runs" / "x"
    assert run_labels([a, b, other]) == ["a/runs/default", "b/runs/default", "x"]
    assert run_labels([other]) == ["x"]
    assert run_labels([other, str(other) + "/"]) == ["x", "x (2)"]  # the same folder twice
    nested = tmp_path / "x" / "runs" / "x"  # one path's tail is the other's whole name
    assert run_labels([other, nested]) == [f"{tmp_path.name}/runs/x", "x/runs/x"]


def test_two_runs_named_alike_get_distinct_labels(tiny_run, tmp_path, capsys):
    """Issue 25: two runs both named runs/default in different folders were labelled alike."""
    first = _copy_with_accuracy(tiny_run, _parent(tmp_path / "a" / "runs") / "default", 0.91)
    second = _copy_with_accuracy(tiny_run, _parent(tmp_path / "b" / "runs") / "default", 0.92)
    assert main(["compare", str(first), str(second)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:3]
    assert rows[0].startswith("b/runs/default ") and rows[1].startswith("a/runs/default ")


def _parent(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def test_wilson_interval_solves_its_defining_equation():
    """The Wilson bounds are the two p0 with |p - p0| = z * sqrt(p0 (1 - p0) / n)."""
    for correct, total in [(9_823, 10_000), (50, 100), (0, 10), (10, 10), (1, 3)]:
        low, high = wilson_interval(correct, total)
        p = correct / total
        assert 0.0 <= low <= p <= high <= 1.0
        for bound in (low, high):
            sd = math.sqrt(bound * (1 - bound) / total)
            assert abs(abs(p - bound) - Z_95 * sd) < 1e-9
    low, high = wilson_interval(10, 10)
    assert high == 1.0 and low < 1.0  # not zero-width at 100 %
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_compare_shows_the_interval_and_says_which(tiny_run, capsys):
    summary = json.loads((tiny_run / "summary.json").read_text())
    low, high = wilson_interval(round(summary["test_acc"] * 200), 200)
    assert summary["test_samples"] == 200
    assert main(["compare", str(tiny_run)]) == 0
    out = capsys.readouterr().out
    assert f"{low:.2%} .. {high:.2%}" in out.splitlines()[1]
    assert "Wilson score interval" in out


def _run_with(source: Path, dest: Path, config_changes=None, summary_changes=None) -> Path:
    """A copy of ``source``'s config and summary with some fields changed."""
    dest.mkdir(parents=True)
    config = json.loads((source / "config.json").read_text())
    for key, value in (config_changes or {}).items():
        if key.startswith("model."):
            config["model"][key.removeprefix("model.")] = value
        else:
            config[key] = value
    (dest / "config.json").write_text(json.dumps(config))
    summary = json.loads((source / "summary.json").read_text())
    (dest / "summary.json").write_text(json.dumps({**summary, **(summary_changes or {})}))
    return dest


def test_compare_adds_a_column_per_differing_field(tiny_run, tmp_path, capsys):
    base = _run_with(tiny_run, tmp_path / "base")
    other = _run_with(tiny_run, tmp_path / "other", {"lr": 0.003, "model.readout": "last"})
    threads = _run_with(tiny_run, tmp_path / "threads", {"threads": 2})  # where, not what
    assert main(["compare", str(base), str(other), str(threads)]) == 0
    header, *rows = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert header.split()[-2:] == ["--lr", "--readout"]
    cells = {row.split()[0]: row.split()[-2:] for row in rows}
    assert cells == {
        "base": ["0.01", "final"],
        "other": ["0.003", "last"],
        "threads": ["0.01", "final"],
    }

    assert main(["compare", str(base), str(threads)]) == 0  # nothing learned differently
    assert "--" not in capsys.readouterr().out.splitlines()[0]


def test_compare_marks_times_measured_apart(tiny_run, tmp_path, capsys):
    one = _run_with(tiny_run, tmp_path / "one", summary_changes={"threads": 1})
    # A summary from before the host was recorded beside one that has it: nothing known differs.
    two = _run_with(tiny_run, tmp_path / "two", summary_changes={"threads": 1, "host": None})
    assert main(["compare", str(one), str(two)]) == 0
    out = capsys.readouterr().out
    assert " s *" not in out and "not comparable" not in out  # made together: comparable

    four = _run_with(tiny_run, tmp_path / "four", summary_changes={"threads": 4})
    assert main(["compare", str(one), str(four)]) == 0
    out = capsys.readouterr().out
    assert out.count(" s *") == 2 and "not comparable" in out and "threads 1 / 4" in out

    day = 24 * 3600
    stat = (two / "summary.json").stat()
    os.utime(two / "summary.json", (stat.st_atime - day, stat.st_mtime - day))
    assert main(["compare", str(one), str(two)]) == 0
    out = capsys.readouterr().out
    assert out.count(" s *") == 2 and "finished " in out.splitlines()[-1]


def test_compare_diff_keeps_only_what_differs(tiny_run, tmp_path, capsys):
    base = _run_with(tiny_run, tmp_path / "base")
    other = _run_with(tiny_run, tmp_path / "other", {"lr": 0.003})
    assert main(["compare", "--diff", str(base), str(other)]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.split() == ["run", "preset", "test", "acc", "95", "%", "interval", "--lr"]
    with pytest.raises(SystemExit) as exit_info:  # the help texts hold a literal "%"
        main(["--help"])
    assert exit_info.value.code == 0 and "95 % interval" in capsys.readouterr().out


def test_compare_diff_keeps_fixed_columns_whose_fields_differ(tiny_run, tmp_path, capsys):
    """--diff dropped the size, cell, order and epochs columns even when they differed, so two
    runs of different width or epochs looked alike apart from accuracy."""
    base = _run_with(tiny_run, tmp_path / "base")
    wider = _run_with(tiny_run, tmp_path / "wider", {"model.hidden": 32, "epochs": 5})
    assert main(["compare", "--diff", str(base), str(wider)]) == 0
    header, *rows = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert "size" in header and "epochs" in header
    assert "cell" not in header and "order" not in header  # the same in both runs
    cells = {row.split()[0]: row for row in rows}
    assert "x 32" in cells["wider"] and " 5 " in cells["wider"]
