"""Curves that say what happened, for any number of runs: a colour per run, labels that tell runs
apart, the lr range within each epoch, the softmax-output loss floor; a broken folder among the
runs is one line, and a failed plot leaves no empty --out folder."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from seqmnist import curves
from seqmnist.cli import main
from seqmnist.config import preset_config
from seqmnist.console import TEST_SELECTION_NOTE, result_lines
from seqmnist.evaluation import format_evaluation
from seqmnist.metrics import softmax_floor_note, softmax_loss_floor
from seqmnist.run import RunDir, read_metrics


def fake_run(path: Path, epochs: int = 3, lr_range: bool = True, softmax: bool = False) -> Path:
    """A run folder with a config and ``epochs`` metrics rows (no checkpoints, no summary)."""
    run = RunDir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = tiny_config()
    config.model = dataclasses.replace(config.model, softmax_output=softmax)
    run.create(config, overwrite=False)
    for epoch in range(1, epochs + 1):
        row = {
            "epoch": epoch,
            "train_loss": 1.0 / epoch,
            "train_acc": 0.5 + 0.1 * epoch,
            "val_loss": 1.1 / epoch,
            "val_acc": 0.45 + 0.1 * epoch,
            "lr": 1e-3 * epoch,
        }
        if lr_range:
            row |= {"lr_min": 1e-4 * epoch, "lr_max": 2e-3 * epoch}
        run.append_metrics(row)
    return path


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_every_run_of_many_keeps_its_own_colour_and_the_text_fits(tmp_path: Path) -> None:
    """Issue 25: with 8 runs the 6th was drawn exactly like the 1st and the title ran off."""
    for count in (8, 12, 25):
        runs = [
            fake_run(tmp_path / f"{count}" / f"a-rather-long-run-name-{i}") for i in range(count)
        ]
        fig = curves.curves_figure(runs)
        try:
            ax_loss = fig.axes[0]
            trains = [line for line in ax_loss.get_lines() if line.get_label().endswith(": train")]
            assert len(trains) == count
            assert len({line.get_color() for line in trains}) == count
            fig.canvas.draw()
            box = fig.bbox
            texts = [fig._suptitle, *fig.legends, *(ax.get_legend() for ax in fig.axes)]
            for artist in filter(None, texts):
                extent = artist.get_window_extent()
                assert extent.x0 >= box.x0 - 1 and extent.x1 <= box.x1 + 1, artist
                assert extent.y0 >= box.y0 - 1 and extent.y1 <= box.y1 + 1, artist
            (run_legend,) = [
                lg for lg in fig.legends if lg.get_title().get_text() == "run (colour)"
            ]
            legend_labels = {t.get_text() for t in run_legend.get_texts()}
            assert len(legend_labels) == count
        finally:
            _close(fig)


def test_runs_named_alike_get_distinct_labels(tmp_path: Path) -> None:
    first = fake_run(tmp_path / "a" / "runs" / "default")
    second = fake_run(tmp_path / "b" / "runs" / "default")
    fig = curves.curves_figure([first, second])
    try:
        labels = {line.get_label() for line in fig.axes[2].get_lines()}
        assert {"a/runs/default (default): lr", "b/runs/default (default): lr"} <= labels
    finally:
        _close(fig)


def test_plot_draws_the_other_runs_beside_an_unfinished_folder(tmp_path: Path, capsys) -> None:
    good = [
        fake_run(tmp_path / "x" / "runs" / "default"),
        fake_run(tmp_path / "y" / "runs" / "default"),
    ]
    unfinished = tmp_path / "started"
    RunDir(unfinished).create(tiny_config(), overwrite=False)  # config, no finished epoch
    out = tmp_path / "pictures"
    rc = main(["plot", str(good[0]), str(unfinished), str(good[1]), "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 1 and (out / "curves.png").is_file()
    assert captured.out.strip() == f"wrote {out / 'curves.png'}"
    err = captured.err.strip()
    assert err.count("\n") == 0 and err.startswith("seqmnist: error: ") and "started" in err


def test_a_failed_plot_leaves_no_empty_out_folder(tmp_path: Path, tiny_run: Path, capsys) -> None:
    """Issue 25: an unreadable run failed the plot and left the --out folder behind, empty."""
    unfinished = tmp_path / "started"
    RunDir(unfinished).create(tiny_config(), overwrite=False)
    out = tmp_path / "new" / "pictures"
    assert main(["plot", str(unfinished), str(tmp_path / "typo"), "--out", str(out)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 3  # two reasons, then the verdict
    assert not (tmp_path / "new").exists()

    damaged = tmp_path / "damaged"  # finished, but its checkpoint cannot be loaded
    damaged.mkdir()
    for name in ("config.json", "metrics.csv", "summary.json"):
        shutil.copy(tiny_run / name, damaged / name)
    (damaged / "checkpoint_best.pt").write_bytes(b"not a checkpoint")
    assert main(["plot", str(damaged), "--out", str(out)]) == 1
    assert not (tmp_path / "new").exists()


def test_lr_panel_shows_the_range_within_each_epoch(tmp_path: Path) -> None:
    fig = curves.curves_figure([fake_run(tmp_path / "run")])
    try:
        lines = {line.get_label(): line for line in fig.axes[2].get_lines()}
        high = lines["run (default): lr"]
        assert list(high.get_xdata()) == [0, 1, 2, 3]  # epoch e spans [e - 1, e]
        assert list(high.get_ydata()) == pytest.approx([2e-3, 4e-3, 6e-3, 6e-3])
        assert list(lines["_lr min"].get_ydata()) == pytest.approx([1e-4, 2e-4, 3e-4, 3e-4])
    finally:
        _close(fig)


def test_metrics_written_before_the_lr_range_still_read_and_plot(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "old", lr_range=False)
    text = (run / "metrics.csv").read_text().splitlines()
    header = text[0].split(",")
    keep = [i for i, name in enumerate(header) if name not in ("lr_min", "lr_max")]
    old = [",".join(line.split(",")[i] for i in keep) for line in text]
    (run / "metrics.csv").write_text("\n".join(old) + "\n")
    assert "lr_min" not in (run / "metrics.csv").read_text()
    rows = read_metrics(run / "metrics.csv")
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[0]["lr_min"] is None
    fig = curves.curves_figure([run])
    try:
        lines = {line.get_label(): line for line in fig.axes[2].get_lines()}
        assert list(lines["old (default): lr"].get_ydata()) == pytest.approx(
            [1e-3, 2e-3, 3e-3, 3e-3]
        )
    finally:
        _close(fig)


def test_fit_records_the_lr_range_of_each_epoch(tiny_run: Path) -> None:
    """One-cycle warms up inside epoch 1: the lr at its start (lr / 10) is not its highest."""
    config = json.loads((tiny_run / "config.json").read_text())
    rows = read_metrics(tiny_run / "metrics.csv")
    first = rows[0]
    assert first["lr"] == pytest.approx(config["lr"] / 10, rel=1e-5)
    assert first["lr_min"] == pytest.approx(first["lr"], rel=1e-5)
    assert first["lr_max"] == pytest.approx(config["lr"], rel=1e-5)  # the peak, mid-epoch
    for row in rows:
        assert row["lr_min"] <= row["lr"] <= row["lr_max"]
    assert rows[-1]["lr_min"] < config["lr"] / 100  # annealed to ~0 by the last step


def test_softmax_floor_is_exact_and_a_true_floor() -> None:
    floor = softmax_loss_floor()
    one_hot = torch.eye(10)  # the best outputs a probability model can give
    assert floor == pytest.approx(
        float(torch.nn.functional.cross_entropy(one_hot, torch.arange(10)))
    )
    assert f"{floor:.4f}" == "1.4612"
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(10 * torch.randn(10_000, 10, generator=generator), dim=1)
    labels = probs.argmax(dim=1)  # even when every answer is right and confident
    losses = torch.nn.functional.cross_entropy(probs, labels, reduction="none")
    assert float(losses.min()) >= floor - 1e-6


def test_softmax_output_runs_get_the_dotted_floor_and_a_note(tmp_path: Path) -> None:
    article = fake_run(tmp_path / "article", softmax=True)
    ours = fake_run(tmp_path / "ours")
    fig = curves.curves_figure([ours, article])
    try:
        floor = [line for line in fig.axes[0].get_lines() if line.get_label() == "_floor"]
        assert len(floor) == 1 and floor[0].get_linestyle() == ":"
        assert list(floor[0].get_ydata()) == pytest.approx([softmax_loss_floor()] * 2)
        note = fig.axes[0].get_title()  # the loss panel's title names the floor and whose it is
        assert "1.4612" in note and "article" in note and "ours" not in note
    finally:
        _close(fig)
    fig = curves.curves_figure([ours])
    try:
        assert not [line for line in fig.axes[0].get_lines() if line.get_label() == "_floor"]
        assert "1.4612" not in fig.axes[0].get_title()
    finally:
        _close(fig)


def test_train_and_evaluate_text_name_the_floor_and_the_test_selection() -> None:
    summary = {
        "test_acc": 0.95,
        "test_loss": 1.5,
        "best_epoch": 3,
        "train_seconds": 10.0,
        "total_seconds": 12.0,
        "run_dir": "runs/seed",
    }
    lines = result_lines(summary, preset_config("seed"))
    assert lines[0].startswith("test accuracy 95.00%") and TEST_SELECTION_NOTE in lines[0]
    assert "optimistic" in lines[0] and lines[1] == softmax_floor_note()
    assert result_lines(summary, preset_config("default")) == [
        lines[0].replace(" " + TEST_SELECTION_NOTE, "")
    ]

    result = {
        "checkpoint": "c.pt",
        "split": "test",
        "samples": 10,
        "accuracy": 0.9,
        "loss": 1.5,
        "per_class": [],
        "confusion_matrix": [[1, 0], [0, 1]],
    }
    assert "1.4612" not in format_evaluation(result)
    assert softmax_floor_note() in format_evaluation({**result, "softmax_output": True})


def test_epoch_line_prints_the_lr_range() -> None:
    from seqmnist.console import epoch_line

    row = {"epoch": 1, "train_loss": 1.0, "train_acc": 0.5, "lr": 5e-4, "epoch_seconds": 1.0}
    row |= {"samples_per_s": 10.0, "lr_min": 5e-4, "lr_max": 5e-3}
    assert "lr 5.00e-04..5.00e-03" in epoch_line(row, 3)
    assert "  lr 1.00e-03  " in epoch_line({**row, "lr": 1e-3, "lr_min": 1e-3, "lr_max": 1e-3}, 3)
