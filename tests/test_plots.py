"""Pictures: every PNG decodes, has the size its figure asks for and is not blank; the curves
overlay holds one line per run and series; bad inputs are one-line CLI errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import cli_train, synthetic_digits
from seqmnist import curves, figures, pictures, plots
from seqmnist.cli import main
from seqmnist.data import load_mnist
from seqmnist.errors import SeqMnistError
from seqmnist.run import RunDir


def read_png(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a PNG, check its pixel size, and check that it is not a blank canvas."""
    assert path.is_file(), f"{path} was not written"
    with Image.open(path) as image:
        assert image.format == "PNG"
        if size is not None:  # matplotlib may round a fractional pixel either way
            assert abs(image.size[0] - size[0]) <= 1 and abs(image.size[1] - size[1]) <= 1, (
                image.size,
                size,
            )
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.var() > 100.0, f"{path} looks blank (pixel variance {pixels.var():.1f})"
    return pixels


def px(inches: float) -> int:
    return round(inches * figures.DPI)


def grid_px(
    count: int, ncols: int, cell_inches: float = pictures.SAMPLE_CELL_INCHES
) -> tuple[int, int]:
    """Pixel size of an image mosaic, from the figure size the plotting code asks for."""
    width, height = pictures.grid_figsize(count, ncols, cell_inches)
    assert height > width * (-(-count // min(ncols, count))) / min(
        ncols, count
    )  # rows are taller than wide
    return px(width), px(height)


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 1
    assert err.startswith("seqmnist: error: ")
    assert err.strip().count("\n") == 0, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


@pytest.fixture()
def seed_like_run(tmp_path: Path) -> Path:
    """A run directory shaped like `--preset seed`: test every epoch, no validation, no summary."""
    run = tmp_path / "seedlike"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"preset": "seed"}))
    log = RunDir(run)
    for epoch in (1, 2, 3):
        log.append_metrics(
            {
                "epoch": epoch,
                "train_loss": 1.7 - 0.1 * epoch,
                "train_acc": 0.7 + 0.05 * epoch,
                "test_loss": 1.6 - 0.05 * epoch,
                "test_acc": 0.8 + 0.03 * epoch,
                "lr": 1e-3,
            }
        )
    return run


# --- library functions ------------------------------------------------------------------------


def test_select_samples_filters_and_checks_ranges() -> None:
    images, labels = synthetic_digits(40, seed=3)
    picked, picked_labels, idx = pictures.select_samples(images, labels, count=25)
    assert picked.shape == (25, 28, 28) and list(idx) == list(range(25))

    picked, picked_labels, idx = pictures.select_samples(images, labels, count=3, digit=7)
    assert set(picked_labels) == {7} and len(idx) == 3 and all(labels[i] == 7 for i in idx)

    picked, picked_labels, idx = pictures.select_samples(images, labels, digit=7, index=1)
    assert len(idx) == 1 and idx[0] == np.flatnonzero(labels == 7)[1]
    assert np.array_equal(picked[0], images[idx[0]])

    with pytest.raises(SeqMnistError, match=r"--index must be from 0 to 39 .* got 40"):
        pictures.select_samples(images, labels, index=40)
    with pytest.raises(SeqMnistError, match="--digit must be an integer from 0 to 9; got 10"):
        pictures.select_samples(images, labels, digit=10)
    with pytest.raises(SeqMnistError, match="--count must be an integer from 1 to 100; got 0"):
        pictures.select_samples(images, labels, count=0)


def test_sample_grid_and_sequence_view_pngs(tmp_path: Path) -> None:
    images, labels = synthetic_digits(25, seed=4)
    out = pictures.sample_grid(images, labels, tmp_path / "grid.png")
    read_png(out, size=grid_px(25, 5))
    assert grid_px(25, 5)[0] == px(5 * 1.5)

    out = pictures.sequence_view(images[0], int(labels[0]), tmp_path / "seq.png")
    read_png(out, size=(px(11), px(5.6)))


@pytest.mark.parametrize(
    ("name", "magic"),
    [
        ("v.jpg", b"\xff\xd8\xff"),
        ("v.JPEG", b"\xff\xd8\xff"),
        ("v.pdf", b"%PDF"),
        ("v.svg", b"<?xml"),
        ("v.png", b"\x89PNG"),
    ],
)
def test_output_format_follows_the_suffix(tmp_path: Path, name: str, magic: bytes) -> None:
    images, labels = synthetic_digits(1, seed=4)
    out = pictures.sequence_view(images[0], int(labels[0]), tmp_path / name)
    assert out.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["v.gif", "v.txt", "v", "v.png.bak"])
def test_unsupported_suffix_is_refused_before_writing(tmp_path: Path, name: str) -> None:
    out = tmp_path / "new-folder" / name
    with pytest.raises(SeqMnistError, match="ending in .png"):
        figures.prepare_output(out)  # what callers run before slow work
    with pytest.raises(SeqMnistError, match=r"\.png, \.jpg, \.jpeg, \.pdf, \.svg$") as info:
        pictures.sequence_view(np.zeros((28, 28), np.uint8), 0, out)
    assert "\n" not in str(info.value) and str(out) in str(info.value)
    assert not out.parent.exists()


def test_confusion_png_and_shape_check(tmp_path: Path) -> None:
    matrix = np.diag([100] * 10)
    matrix[7, 1] = 5
    read_png(plots.confusion(matrix, tmp_path / "cm.png"), size=(px(7.6), px(6.4)))
    with pytest.raises(SeqMnistError, match="square"):
        plots.confusion(np.zeros((10, 9)), tmp_path / "bad.png")


def test_error_gallery_with_and_without_errors(tmp_path: Path) -> None:
    images, labels = synthetic_digits(8, seed=5)
    preds = (labels + 1) % 10
    conf = np.linspace(0.3, 0.9, 8)
    read_png(
        pictures.error_gallery(
            images, labels, preds, conf, tmp_path / "err.png", max_items=6, ncols=3
        ),
        size=grid_px(6, 3, pictures.ERROR_CELL_INCHES),
    )
    empty = pictures.error_gallery(
        images[:0], labels[:0], preds[:0], conf[:0], tmp_path / "none.png"
    )
    assert empty.is_file()


def test_curves_overlay_has_one_line_per_run_and_series(
    tiny_run: Path, seed_like_run: Path
) -> None:
    fig = curves.curves_figure([tiny_run, seed_like_run])
    try:
        ax_loss, ax_acc, ax_lr = fig.axes[:3]
        tiny, seed = "tiny (default)", "seedlike (seed)"
        expected = {
            f"{tiny}: train",
            f"{tiny}: validation",
            f"{tiny}: test (once, best checkpoint)",
            f"{seed}: train",
            f"{seed}: test",
        }
        for ax in (ax_loss, ax_acc):
            labels = [line.get_label() for line in ax.get_lines()]
            assert sorted(labels) == sorted(expected)  # no duplicates, nothing missing
        lr_labels = [line.get_label() for line in ax_lr.get_lines()]
        assert sorted(label for label in lr_labels if not label.startswith("_")) == [
            f"{seed}: lr",
            f"{tiny}: lr",
        ]

        # Each run has its own colour; a split has one line style in every run.
        lines = {line.get_label(): line for line in ax_loss.get_lines()}
        assert lines[f"{tiny}: train"].get_color() != lines[f"{seed}: train"].get_color()
        assert lines[f"{seed}: train"].get_color() == lines[f"{seed}: test"].get_color()
        style = {label: line.get_linestyle() for label, line in lines.items()}
        assert style[f"{seed}: train"] == style[f"{tiny}: train"]
        assert (
            len({style[f"{tiny}: train"], style[f"{tiny}: validation"], style[f"{seed}: test"]})
            == 3
        )
        # The seed-like run's test line follows its metrics.csv, in percent on the accuracy axes.
        acc = {line.get_label(): line for line in ax_acc.get_lines()}
        assert list(acc[f"{seed}: test"].get_xdata()) == [1, 2, 3]
        assert np.allclose(acc[f"{seed}: test"].get_ydata(), [83, 86, 89])
        # Legends name the splits and each run.
        legend_texts = {t.get_text() for lg in fig.legends for t in lg.get_texts()}
        assert {"train", "validation", "test", tiny, seed} <= legend_texts
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_unwritable_output_fails_before_drawing(tiny_run: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(SeqMnistError, match=str(blocker / "c.png").replace("\\", "\\\\")):
        curves.curves([tiny_run], blocker / "c.png")
    with pytest.raises(SeqMnistError, match="cannot write .*curves.png"):
        plots.write_run_plots(tiny_run, out_dir=blocker)  # before the slow test-set pass
    with pytest.raises(SeqMnistError, match="it is a folder"):
        pictures.sample_grid(np.zeros((1, 28, 28), np.uint8), [0], tmp_path)


def test_a_failed_save_keeps_the_previous_picture(tmp_path: Path, monkeypatch) -> None:
    """Pictures are written atomically: a save that dies half way leaves the previous file as it
    was and no temp file beside it (it used to leave the half-written bytes in place)."""
    from matplotlib.figure import Figure

    def dies_half_way(self, target, **kwargs):
        if isinstance(target, (str, Path)):
            Path(target).write_bytes(b"half a PNG")
        else:
            target.write(b"half a PNG")
        raise RuntimeError("the renderer died")

    out = tmp_path / "grid.png"
    out.write_bytes(b"the previous picture")
    monkeypatch.setattr(Figure, "savefig", dies_half_way)
    with pytest.raises(RuntimeError, match="renderer died"):
        pictures.sample_grid(np.zeros((1, 28, 28), np.uint8), [0], out)
    assert out.read_bytes() == b"the previous picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]


def test_missing_metrics_and_summary_are_clear_errors(tmp_path: Path, seed_like_run: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SeqMnistError, match="metrics.csv not found"):
        curves.curves_figure([empty])
    with pytest.raises(SeqMnistError, match="no such run directory"):
        curves.curves_figure([tmp_path / "nowhere"])
    with pytest.raises(SeqMnistError, match="summary.json not found"):
        plots.write_run_plots(seed_like_run)


def test_misclassified_are_real_mistakes(tiny_run: Path, synthetic_data_dir: Path) -> None:
    """What errors.png draws (write_run_plots itself runs in test_cli_plot_single_and_overlay)."""
    errors = plots.misclassified(tiny_run, data_dir=synthetic_data_dir, download=False)
    assert errors["total"] == 200
    assert bool((errors["pred"] != errors["true"]).all())
    assert errors["images"].shape == (len(errors["true"]), 28, 28)
    assert bool(((errors["confidence"] > 0) & (errors["confidence"] <= 1)).all())


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_show(synthetic_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    out = tmp_path / "samples.png"
    assert main(["show", "--out", str(out), *data]) == 0
    assert "25 train images" in capsys.readouterr().out
    read_png(out, size=grid_px(25, 5))

    assert (
        main(
            [
                "show",
                "--split",
                "test",
                "--digit",
                "3",
                "--count",
                "4",
                "--out",
                str(tmp_path / "d.png"),
                *data,
            ]
        )
        == 0
    )
    read_png(tmp_path / "d.png", size=grid_px(4, 5))

    assert (
        main(["show", "--as-sequence", "--index", "5", "--out", str(tmp_path / "s.png"), *data])
        == 0
    )
    read_png(tmp_path / "s.png", size=(px(11), px(5.6)))


@pytest.mark.parametrize(
    ("flags", "reference"),
    [
        ([], lambda image: image),
        (["--order", "columns"], lambda image: image.T),
        (["--order", "pixels", "--pixels-per-step", "16"], lambda image: image.reshape(49, 16)),
        (
            ["--order", "permuted"],
            lambda image: image.reshape(784)[np.random.RandomState(92916).permutation(784)][
                :, None
            ],
        ),
    ],
)
def test_cli_show_as_sequence_draws_the_orders_sequence(
    flags, reference, synthetic_data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """The picture is drawn from the sequence the order builds: transposed for columns, the
    raster in chunks for pixels, the literature's permutation for permuted."""
    drawn = {}
    real_view = pictures.sequence_view

    def capture(sequence, label, out_path, order="rows", directions=None):
        drawn.update(sequence=np.asarray(sequence), order=order)
        return real_view(sequence, label, out_path, order=order, directions=directions)

    monkeypatch.setattr(pictures, "sequence_view", capture)
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    out = tmp_path / "s.png"
    assert main(["show", "--as-sequence", "--index", "3", "--out", str(out), *flags, *data]) == 0
    image = load_mnist(synthetic_data_dir, train=True, download=False).images[3].numpy()
    np.testing.assert_array_equal(drawn["sequence"], reference(image.astype(np.float32)))
    long = drawn["sequence"].shape[0] > pictures.LINE_PLOT_MAX_STEPS
    read_png(out, size=(px(12), px(5.2)) if long else (px(11), px(5.6)))


def test_cli_show_as_sequence_takes_a_trained_models_order(
    tiny_run: Path, synthetic_data_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    orders = []
    monkeypatch.setattr(
        pictures,
        "sequence_view",
        lambda seq, label, out, order="rows", directions=None: orders.append((order, directions)),
    )
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    args = ["show", "--as-sequence", "--model", str(tiny_run), "--out", str(tmp_path / "s.png")]
    assert main([*args, *data]) == 0
    assert orders == [("rows", 2)]  # the tiny run is bidirectional


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--index", "600"], ["--index must be from 0 to 599", "got 600"]),
        (["--index", "-1"], ["--index must be from 0 to 599"]),
        (["--digit", "10"], ["--digit must be an integer from 0 to 9"]),
        (["--digit", "2", "--index", "60"], ["--index must be from 0 to 59", "digit 2"]),
        (["--count", "0"], ["--count must be an integer from 1 to 100"]),
        (["--count", "101"], ["--count must be an integer from 1 to 100"]),
        (
            ["--as-sequence", "--order", "pixels", "--pixels-per-step", "5"],
            ["--pixels-per-step must divide 784", "got 5"],
        ),
        (["--order", "columns"], ["only shape --as-sequence", "add --as-sequence"]),
        (
            ["--as-sequence", "--order", "rows", "--model", "runs/x"],
            ["--model brings its own reading order"],
        ),
    ],
)
def test_cli_show_bad_input(
    flags, needles, synthetic_data_dir: Path, tmp_path: Path, capsys
) -> None:
    rc = main(
        [
            "show",
            *flags,
            "--out",
            str(tmp_path / "x.png"),
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
        ]
    )
    assert_one_line_error(rc, capsys.readouterr().err, *needles)
    assert not (tmp_path / "x.png").exists()


def test_cli_show_unwritable_out(synthetic_data_dir: Path, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rc = main(
        [
            "show",
            "--out",
            str(blocker / "x.png"),
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
        ]
    )
    assert_one_line_error(rc, capsys.readouterr().err, str(blocker / "x.png"))


def test_cli_plot_single_and_overlay(
    tiny_run: Path, seed_like_run: Path, synthetic_data_dir: Path, tmp_path: Path, capsys
) -> None:
    single = tmp_path / "single"
    rc = main(
        [
            "plot",
            str(tiny_run),
            "--out",
            str(single),
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    for name in plots.RUN_PLOT_NAMES:
        assert f"wrote {single / name}" in printed
        read_png(single / name)
    read_png(single / "curves.png", size=tuple(px(x) for x in curves.curves_figsize(1)))

    overlay = tmp_path / "overlay"
    assert main(["plot", str(tiny_run), str(seed_like_run), "--out", str(overlay)]) == 0
    read_png(overlay / "curves.png", size=tuple(px(x) for x in curves.curves_figsize(2)))
    assert not (overlay / "confusion.png").exists()


def test_cli_plot_bad_input(tmp_path: Path, tiny_run: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(
        main(["plot", str(empty)]), capsys.readouterr().err, str(empty / "metrics.csv")
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rc = main(["plot", str(tiny_run), str(tiny_run), "--out", str(blocker)])
    assert_one_line_error(rc, capsys.readouterr().err, str(blocker / "curves.png"))


# --- nothing of the user's is written over (issue 19) ------------------------------------------


def _users_image(path: Path) -> bytes:
    """A user's photo of a "1" (a dark stroke on white paper) at ``path``; its bytes."""
    paper = np.full((64, 64), 255, np.uint8)
    paper[12:52, 29:35] = 20
    Image.fromarray(paper).save(path)
    return path.read_bytes()


def test_show_and_inspect_say_what_reading_the_image_noticed(
    synthetic_data_dir: Path, tmp_path: Path, capsys
) -> None:
    """A 16-bit file of 12-bit samples: predict warned, show and inspect --image said nothing."""
    image = tmp_path / "twelve.png"
    paper = np.full((64, 64), 4000, np.uint16)
    paper[12:52, 29:35] = 300  # a dark "1" on light paper, 12-bit samples
    Image.fromarray(paper).save(image)
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    commands = (
        ["show", "--as-sequence", "--image", str(image), "--out", str(tmp_path / "s.png")],
        ["inspect", "--image", str(image), "--probe-size", "0", *data],
    )
    for command in commands:
        assert main(command) == 0
        err = capsys.readouterr().err
        assert f"seqmnist: warning: {image}: a 16-bit image" in err, command


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_show_never_writes_over_the_image_it_reads(tmp_path: Path, capsys, overwrite) -> None:
    """``show --image digit.png --out digit.png`` replaced the user's photo with the picture."""
    image = tmp_path / "digit.png"
    before = _users_image(image)
    rc = main(["show", "--as-sequence", "--image", str(image), "--out", str(image), *overwrite])
    assert_one_line_error(rc, capsys.readouterr().err, "image being read")
    assert image.read_bytes() == before


def test_show_draws_its_own_picture_again_but_keeps_a_users_file(
    synthetic_data_dir: Path, tmp_path: Path, capsys
) -> None:
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    out = tmp_path / "samples.png"
    before = _users_image(out)
    rc = main(["show", "--out", str(out), *data])
    assert_one_line_error(rc, capsys.readouterr().err, "not marked as a picture", "--overwrite")
    assert out.read_bytes() == before
    assert main(["show", "--out", str(out), "--overwrite", *data]) == 0
    assert figures.drawn_by_seqmnist(out)
    assert main(["show", "--count", "4", "--out", str(out), *data]) == 0  # its own: drawn again
    read_png(out, size=grid_px(4, 5))


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".pdf", ".svg"])
def test_every_picture_format_says_seqmnist_drew_it(tmp_path: Path, suffix: str) -> None:
    plt = figures.pyplot()
    ours = figures.save_figure(plt.figure(figsize=(2, 2)), tmp_path / f"ours{suffix}")
    assert figures.drawn_by_seqmnist(ours)
    theirs = plt.figure(figsize=(2, 2))
    theirs.savefig(tmp_path / f"theirs{suffix}")  # matplotlib's own marks name matplotlib
    plt.close(theirs)
    assert not figures.drawn_by_seqmnist(tmp_path / f"theirs{suffix}")
    if suffix in (".png", ".jpg"):  # a crop the user saves of it with Pillow is the user's file
        Image.open(ours).crop((0, 0, 50, 50)).save(tmp_path / f"crop{suffix}")
        assert not figures.drawn_by_seqmnist(tmp_path / f"crop{suffix}")


@pytest.mark.parametrize("flag", ["--picture", "--gradients"])
def test_inspect_never_writes_over_the_image_it_reads(
    synthetic_data_dir: Path, tmp_path: Path, capsys, flag: str
) -> None:
    image = tmp_path / "digit.png"
    before = _users_image(image)
    data = ["--data-dir", str(synthetic_data_dir), "--no-download"]
    rc = main(["inspect", "--image", str(image), flag, str(image), "--probe-size", "0", *data])
    assert_one_line_error(rc, capsys.readouterr().err, "image being read")
    assert image.read_bytes() == before


def test_plot_draws_a_runs_pictures_again_but_keeps_a_users_file(
    tiny_run: Path, synthetic_data_dir: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "pictures"
    out.mkdir()
    before = _users_image(out / "confusion.png")
    args = ["plot", str(tiny_run), "--out", str(out), "--data-dir", str(synthetic_data_dir)]
    rc = main([*args, "--no-download"])
    assert_one_line_error(rc, capsys.readouterr().err, "confusion.png", "--overwrite")
    assert (out / "confusion.png").read_bytes() == before
    assert not (out / "curves.png").exists()  # refused before anything was drawn
    assert main([*args, "--no-download", "--overwrite"]) == 0
    assert main([*args, "--no-download"]) == 0  # its own pictures now: drawn again
    # In a run directory the pictures are the run's, also those drawn before they carried the
    # mark: plot draws them again without --overwrite.
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    _users_image(run / "curves.png")
    assert main(["plot", str(run), *args[4:], "--no-download"]) == 0
    assert figures.drawn_by_seqmnist(run / "curves.png")


def test_cli_train_draws_plots_with_its_data_dir(
    synthetic_data_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """train hands --data-dir / --no-download on to write_run_plots (errors.png re-reads the
    test set)."""
    calls = []
    monkeypatch.setattr(
        plots, "write_run_plots", lambda run_dir, **kw: calls.append((Path(run_dir), kw))
    )
    run = tmp_path / "run"
    rc = cli_train(synthetic_data_dir, run, epochs=1)
    assert rc == 0
    assert calls == [(run, {"data_dir": str(synthetic_data_dir), "download": False})]


def test_cli_train_warns_when_plots_fail(
    synthetic_data_dir: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    """A plot failure after training is a warning: the run itself is saved and train exits 0."""

    def fail(run_dir, **kw):
        raise SeqMnistError("cannot write somewhere/curves.png")

    monkeypatch.setattr(plots, "write_run_plots", fail)
    rc = cli_train(synthetic_data_dir, tmp_path / "run", epochs=1)
    assert rc == 0
    err = capsys.readouterr().err
    assert "seqmnist: warning: no plots drawn (cannot write somewhere/curves.png)" in err
    assert (tmp_path / "run" / "summary.json").is_file()


def test_cli_show_real_mnist(real_data_dir: Path, tmp_path: Path, capsys) -> None:
    """On real MNIST: --digit really filters (the first test 7s), and the sequence view draws."""
    from seqmnist.data import load_mnist

    test = load_mnist(real_data_dir, train=False, download=False)
    sevens = (test.labels == 7).nonzero().flatten()
    images, labels, idx = pictures.select_samples(test.images, test.labels, count=10, digit=7)
    assert list(idx) == sevens[:10].tolist() and set(labels.tolist()) == {7}

    out = tmp_path / "seq.png"
    assert (
        main(
            [
                "show",
                "--split",
                "test",
                "--as-sequence",
                "--out",
                str(out),
                "--data-dir",
                str(real_data_dir),
                "--no-download",
            ]
        )
        == 0
    )
    read_png(out, size=(px(11), px(5.6)))
