"""ONNX and TorchScript export: the files compute what the PyTorch model computes."""

from __future__ import annotations

import builtins
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from seqmnist.checkpoint import load_checkpoint, model_from_checkpoint
from seqmnist.cli import main
from seqmnist.data import load_mnist, to_model_input
from seqmnist.errors import SeqMnistError
from seqmnist.export import MAX_ABS_DIFF, TORCHSCRIPT_DEPRECATED, ExportError, export_model

MISSING_EXTRA = "ONNX export needs the 'export' extra: pip install 'seqmnist[export]'"


@pytest.fixture(scope="module")
def reference(real_run: Path, real_data_dir: Path):
    """The PyTorch model and 300 normalised real test images (300, 28, 28) with its logits."""
    model = model_from_checkpoint(load_checkpoint(real_run))
    images = to_model_input(
        load_mnist(real_data_dir, train=False, download=False).images[-300:], True
    )
    with torch.inference_mode():
        return model, images, model(images)


def test_onnx_export_matches_pytorch(real_run, real_data_dir, reference, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "model.onnx"
    report = export_model(real_run, "onnx", out=out, data_dir=real_data_dir, download=False)
    assert report["path"] == str(out) and report["bytes"] == out.stat().st_size > 10_000
    assert report["samples"] == 256 and report["output"] == "logits (B, 10)"
    assert report["max_abs_diff"] <= MAX_ABS_DIFF and report["agreement"] == 1.0

    # Our own check on other images and batch sizes (the batch axis is dynamic).
    _, images, logits = reference
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 7, 300):
        (got,) = session.run(None, {"images": images[:batch].numpy()})
        assert got.shape == (batch, 10)
        assert np.abs(got - logits[:batch].numpy()).max() <= MAX_ABS_DIFF
        assert (got.argmax(1) == logits[:batch].numpy().argmax(1)).all()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore:--format torchscript is deprecated:FutureWarning")
def test_torchscript_export_matches_pytorch(real_run, real_data_dir, reference, tmp_path):
    out = tmp_path / "model.pt"
    report = export_model(real_run, "torchscript", out=out, data_dir=real_data_dir, download=False)
    assert report["max_abs_diff"] <= MAX_ABS_DIFF and report["agreement"] == 1.0
    _, images, logits = reference
    loaded = torch.jit.load(str(out))
    for batch in (1, 7, 300):
        with torch.inference_mode():
            got = loaded(images[:batch])
        assert (got - logits[:batch]).abs().max().item() <= MAX_ABS_DIFF
        assert torch.equal(got.argmax(1), logits[:batch].argmax(1))


PT2_IN_A_CLEAN_PROCESS = """
import json, sys
sys.modules["seqmnist"] = None  # importing seqmnist now fails: the file must stand alone
import torch
extra = {"seqmnist.json": ""}
program = torch.export.load(sys.argv[1], extra_files=extra)
images = torch.load(sys.argv[2])
with torch.inference_mode():
    torch.save(program.module()(images), sys.argv[3])
print(extra["seqmnist.json"])
"""


def test_pt2_export_loads_and_runs_without_seqmnist(real_run, real_data_dir, reference, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "model.pt2"
    report = export_model(real_run, "pt2", out=out, data_dir=real_data_dir, download=False)
    assert report["exporter"] == "torch.export" and report["agreement"] == 1.0
    assert report["max_abs_diff"] <= MAX_ABS_DIFF and report["path"] == str(out)
    _, images, logits = reference
    for batch in (1, 7, 300):  # the batch axis is free
        torch.save(images[:batch], tmp_path / "images.pt")
        done = subprocess.run(
            [sys.executable, "-c", PT2_IN_A_CLEAN_PROCESS, str(out)]
            + [str(tmp_path / "images.pt"), str(tmp_path / "logits.pt")],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        got = torch.load(tmp_path / "logits.pt")
        assert got.shape == (batch, 10) and (got - logits[:batch]).abs().max() <= MAX_ABS_DIFF
    info = json.loads(done.stdout)  # the input recipe travels in the file
    assert info["normalize"] is True and info["mean"] == 0.1307 and info["std"] == 0.3081
    assert info["producer"] == "seqmnist" and "logits" in info["output"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.pt", "logits.pt", "model.pt2"]


def test_onnx_exporter_is_chosen_by_sequence_length_in_one_file(
    tiny_run, synthetic_data_dir, tmp_path
):
    """Rows (28 steps) go through the torch.export-based exporter, into one file with no side
    .data file; the file says how to prepare its input."""
    import onnx

    report = export_model(
        tiny_run, "onnx", out=tmp_path / "m.onnx", data_dir=synthetic_data_dir, download=False
    )
    assert report["exporter"] == "torch.onnx (torch.export-based, dynamo=True)"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert props["producer"] == "seqmnist" and props["normalize"] == "true"


def test_onnx_fallback_to_the_dynamo_exporter_works(
    tiny_run, synthetic_data_dir, tmp_path, monkeypatch
):
    """Regression: where the TorchScript-based exporter is missing, the fallback named the input
    `x` (the forward's argument is `images`) and never worked."""
    import seqmnist.export as export

    real = torch.onnx.export

    def without_torchscript_exporter(*args, dynamo=True, **kwargs):
        if not dynamo:
            raise TypeError("this PyTorch has no TorchScript-based ONNX exporter")
        return real(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(export, "DYNAMO_ONNX_MAX_STEPS", 0)  # rows would take the classic path
    monkeypatch.setattr(torch.onnx, "export", without_torchscript_exporter)
    report = export_model(
        tiny_run, "onnx", out=tmp_path / "m.onnx", data_dir=synthetic_data_dir, download=False
    )
    assert report["exporter"].endswith("dynamo=True)") and report["agreement"] == 1.0
    monkeypatch.setattr(torch.onnx, "export", real)
    report = export_model(
        tiny_run, "onnx", out=tmp_path / "m.onnx", data_dir=synthetic_data_dir, download=False
    )
    assert report["exporter"] == "torch.onnx (TorchScript-based, dynamo=False)"


def test_torchscript_is_deprecated_in_one_line_of_ours(
    tiny_run, synthetic_data_dir, tmp_path, capsys
):
    argv = ["export", str(tiny_run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]
    assert main([*argv, "--data-dir", str(synthetic_data_dir), "--no-download"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [f"seqmnist: warning: {TORCHSCRIPT_DEPRECATED}"], err
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "torchscript (deprecated by PyTorch: use pt2)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fmt", "name", "expected"),
    [
        ("pt2", "m.onnx", "m.pt2"),
        ("onnx", "m.pt2", "m.onnx"),
        ("onnx", "m.PT", "m.onnx"),
        ("pt2", "m.pt", "m.pt2"),
        ("torchscript", "m.onnx", "m.pt"),
    ],
)
def test_out_named_like_another_format_is_refused(
    tiny_run, synthetic_data_dir, tmp_path, capsys, fmt, name, expected
):
    """--format pt2 --out m.onnx used to write a torch.export program named .onnx; now one line
    names the format, the suffix it writes and the name to use, and nothing is written."""
    argv = ["export", str(tiny_run), "--format", fmt, "--out", str(tmp_path / name)]
    assert main([*argv, "--data-dir", str(synthetic_data_dir), "--no-download"]) == 1
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith(f"seqmnist: error: --format {fmt} writes a ")
    assert f"name it {expected}," in error
    assert list(tmp_path.iterdir()) == []


def test_default_output_path_is_beside_the_checkpoint(tiny_run, synthetic_data_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)  # tiny_run is shared: export into a copy
    report = export_model(run, "torchscript", data_dir=synthetic_data_dir, download=False)
    assert report["path"] == str(run / "model.pt") and (run / "model.pt").is_file()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx", "pt2"])
def test_export_never_writes_over_a_file_it_did_not_write(
    tiny_run, synthetic_data_dir, tmp_path, fmt
):
    """--out onto the run's checkpoint, its config.json or a user's file is refused (issue 19:
    the checkpoint was replaced and the run broken); redoing an export replaces it."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    kept = {p: p.read_bytes() for p in (run / "checkpoint_best.pt", run / "config.json", notes)}

    def export(out, **kw):
        return export_model(run, fmt, out=out, data_dir=synthetic_data_dir, download=False, **kw)

    with pytest.raises(ExportError, match="the checkpoint being exported"):
        export(run / "checkpoint_best.pt", overwrite=True)
    for out in (run / "config.json", notes):
        with pytest.raises(ExportError, match="not an earlier .* export.*--overwrite"):
            export(out)
    assert all(p.read_bytes() == data for p, data in kept.items())
    model = tmp_path / f"model.{fmt}"
    export(model)
    export(model)  # an export of the same format is redone
    other = "onnx" if fmt != "onnx" else "torchscript"
    with pytest.raises(ExportError, match=f"not an earlier {other} export"):
        export_model(run, other, out=model, data_dir=synthetic_data_dir, download=False)
    export(notes, overwrite=True)
    assert notes.read_bytes() != b"mine"


def test_failed_parity_check_is_an_error_and_writes_nothing(
    real_run, real_data_dir, tmp_path, monkeypatch
):
    import seqmnist.export as export

    real = export._run_torchscript
    monkeypatch.setattr(export, "_run_torchscript", lambda path, x: real(path, x) + 1e-3)
    out = tmp_path / "model.pt"
    with pytest.raises(ExportError, match="does not match PyTorch"):
        export_model(real_run, "torchscript", out=out, data_dir=real_data_dir, download=False)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp file


def test_missing_export_extra_is_a_clear_error(real_run, tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxruntime"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(SeqMnistError) as info:
        export_model(real_run, "onnx", out=tmp_path / "m.onnx")
    assert str(info.value) == MISSING_EXTRA
    assert (
        main(["export", str(real_run), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 1
    )
    assert capsys.readouterr().err.strip() == f"seqmnist: error: {MISSING_EXTRA}"
    assert list(tmp_path.iterdir()) == []


def test_cli_export(real_run, real_data_dir, tmp_path, capsys):
    out = tmp_path / "m.pt"
    args = [
        "export",
        str(real_run),
        "--format",
        "torchscript",
        "--out",
        str(out),
        "--data-dir",
        str(real_data_dir),
        "--no-download",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert str(out) in text and "KiB" in text and "labels agree 100.00%" in text
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["agreement"] == 1.0 and report["max_abs_diff"] <= MAX_ABS_DIFF

    assert main(["export", str(real_run), "--out", str(tmp_path / "no" / "such" / "m.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_seed_preset_model_exports_probabilities(synthetic_data_dir, tmp_path):
    """The article's model ends in a softmax: its export returns probabilities, and says so."""
    from seqmnist.checkpoint import save_checkpoint
    from seqmnist.config import ModelConfig, preset_config
    from seqmnist.model import SeqClassifier

    torch.manual_seed(0)
    model_config = ModelConfig(hidden=8, readout="last", softmax_output=True)
    config = preset_config("seed")
    config.model = model_config
    save_checkpoint(
        tmp_path / "seed.pt",
        {
            "model_config": vars(model_config),
            "train_config": config.to_dict(),
            "model_state": SeqClassifier(model_config).state_dict(),
            "epoch": 1,
        },
    )
    report = export_model(tmp_path / "seed.pt", "onnx", data_dir=synthetic_data_dir, download=False)
    assert report["output"] == "probabilities (B, 10)" and report["input"].endswith("pixels / 255")
    assert report["path"] == str(tmp_path / "model.onnx") and report["agreement"] == 1.0
    import onnx

    props = {p.key: p.value for p in onnx.load(report["path"]).metadata_props}
    assert props["normalize"] == "false" and "probabilities" in props["output"]
