"""Checkpoints: round trip, safe loading, clear refusals, atomic writes."""

from __future__ import annotations

import os
from dataclasses import asdict

import pytest
import torch

from seqmnist import checkpoint as ckpt_mod
from seqmnist.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
    train_config_from_checkpoint,
)
from seqmnist.config import ModelConfig, apply_overrides, preset_config
from seqmnist.errors import CheckpointError
from seqmnist.model import build_model
from seqmnist.run import BEST_NAME, LAST_NAME, RunDir, WriteError, resolve_checkpoint

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _payload(seed: int = 0, **model_kw) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(seed)
    mc = ModelConfig(hidden=8, **model_kw)
    model = build_model(mc)
    config = apply_overrides(preset_config("default"), {"hidden": 8, **model_kw})
    return model, {
        "model_config": asdict(mc),
        "train_config": config.to_dict(),
        "model_state": model.state_dict(),
        "epoch": 3,
    }


def test_round_trip_gives_identical_outputs(tmp_path):
    model, payload = _payload(cell="gru", layers=2, dropout=0.1)
    path = tmp_path / "c.pt"
    save_checkpoint(path, payload)
    data = load_checkpoint(path)
    assert data["format"] == "seqmnist-checkpoint" and data["version"] == FORMAT_VERSION
    assert data["arch"] == "SeqClassifier" and data["epoch"] == 3 and data["path"] == str(path)
    rebuilt = model_from_checkpoint(data)
    assert not rebuilt.training  # eval mode
    x = torch.randn(4, 28, 28)
    model.eval()
    assert torch.equal(rebuilt(x), model(x))
    assert rebuilt.config == ModelConfig(hidden=8, cell="gru", layers=2, dropout=0.1)
    assert train_config_from_checkpoint(data).model.cell == "gru"


def test_load_uses_weights_only(tmp_path, monkeypatch):
    _, payload = _payload()
    path = tmp_path / "c.pt"
    save_checkpoint(path, payload)
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path)
    assert seen.get("weights_only") is True


def test_pickled_object_is_refused_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    torch.save({"format": "seqmnist-checkpoint", "version": 1, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a seqmnist checkpoint"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_run_directory_prefers_best(tmp_path):
    _, payload = _payload()
    save_checkpoint(tmp_path / LAST_NAME, {**payload, "epoch": 5})
    assert resolve_checkpoint(tmp_path) == tmp_path / LAST_NAME
    save_checkpoint(tmp_path / BEST_NAME, {**payload, "epoch": 4})
    assert load_checkpoint(tmp_path)["epoch"] == 4
    assert resolve_checkpoint(tmp_path, prefer="last") == tmp_path / LAST_NAME


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(os.urandom(4096), id="random-bytes"),
        pytest.param(b"", id="empty"),
        pytest.param(b"PK\x03\x04 not really a zip", id="bad-zip"),
        pytest.param(b"\x80\x02}q\x00.", id="bare-pickle"),
        pytest.param(b"hello", id="text"),
        pytest.param(b"\x80\x02h\x65.", id="bad-memo-reference"),
    ],
)
def test_refuses_files_that_are_not_torch_files(tmp_path, content):
    # (each fails differently inside torch.load: UnpicklingError, EOFError, KeyError, ...)
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg and "checkpoint" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "obj", [{"a": 1}, [1, 2, 3], torch.zeros(3), {"format": "other-tool", "version": 1}]
)
def test_refuses_torch_files_that_are_not_seqmnist_checkpoints(tmp_path, obj):
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="not a seqmnist checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("version", "shown"),
    [(FORMAT_VERSION + 1, str(FORMAT_VERSION + 1)), (True, "True"), (1.0, "1.0")],
)
def test_refuses_other_format_version(tmp_path, version, shown):
    """Another version, or the right number in another type (True == 1 in Python)."""
    _, payload = _payload()
    path = tmp_path / "c.pt"
    save_checkpoint(path, payload)
    data = torch.load(path, weights_only=True)
    data["version"] = version
    torch.save(data, path)
    with pytest.raises(
        CheckpointError, match=f"format version {shown}, this seqmnist reads version"
    ):
        load_checkpoint(path)


def test_refuses_unknown_architecture_and_missing_keys(tmp_path):
    _, payload = _payload()
    path = tmp_path / "c.pt"
    save_checkpoint(path, {**payload, "arch": "Transformer"})
    with pytest.raises(CheckpointError, match="unknown architecture 'Transformer'"):
        load_checkpoint(path)
    del payload["model_state"]
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match="no valid 'model_state'"):
        load_checkpoint(path)


def test_refuses_weights_that_do_not_match_the_config(tmp_path):
    _, payload = _payload()
    payload["model_config"]["hidden"] = 9
    path = tmp_path / "c.pt"
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match="does not match its own model config"):
        model_from_checkpoint(load_checkpoint(path))


def test_missing_path_and_folder_without_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no such run directory or checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match=f"folder without {BEST_NAME} or {LAST_NAME}"):
        load_checkpoint(tmp_path)


def test_save_leaves_no_temporary_files(tmp_path):
    _, payload = _payload()
    save_checkpoint(tmp_path / LAST_NAME, payload)
    save_checkpoint(tmp_path / LAST_NAME, {**payload, "epoch": 4})
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST_NAME]
    assert load_checkpoint(tmp_path / LAST_NAME)["epoch"] == 4


@pytest.mark.parametrize(
    "error,raised",
    [
        (OSError(28, "No space left on device"), WriteError),
        (
            RuntimeError("[enforce fail at inline_container.cc] . unexpected pos 64 vs 0"),
            WriteError,
        ),
        (KeyboardInterrupt(), KeyboardInterrupt),
    ],
)
def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch, error, raised):
    _, payload = _payload()
    path = tmp_path / LAST_NAME
    save_checkpoint(path, payload)
    before = path.read_bytes()
    real_save = torch.save

    def half_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.seek(len(before) // 2)
        f.truncate()  # half a file written, then the failure
        raise error

    monkeypatch.setattr(ckpt_mod.torch, "save", half_then_fail)
    with pytest.raises(raised) as info:
        save_checkpoint(path, {**payload, "epoch": 99})
    if raised is WriteError:  # a full disk says so, in one line
        assert "the disk is full" in str(info.value) and "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [LAST_NAME]
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 3


def test_saved_checkpoint_has_ordinary_file_permissions(tmp_path):
    """Atomic saving goes through a private temporary file; the result is readable as usual."""
    import os

    from seqmnist.checkpoint import save_checkpoint

    path = tmp_path / "c.pt"
    save_checkpoint(path, {"model_config": {}, "model_state": {}})
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_read_summary_none_when_missing_and_one_line_error_when_damaged(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_summary() is None
    run.summary_file.write_text('{"test_acc": 0.99')  # cut short
    with pytest.raises(CheckpointError, match="not a readable summary") as info:
        run.read_summary()
    assert "\n" not in str(info.value)
    run.summary_file.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a seqmnist summary"):
        run.read_summary()
    run.summary_file.write_text('{"test_acc": 0.99}')
    assert run.read_summary() == {"test_acc": 0.99}


def test_an_inflated_config_is_refused_before_the_model_is_built(tmp_path):
    """A small checkpoint whose config claims a huge model: the shapes are compared on the meta
    device, so nothing of that size is allocated (hidden 4096 x 16 layers would take ~18 GB)."""
    import resource
    import time

    _, payload = _payload()
    payload["model_config"].update(hidden=4096, layers=16)
    path = tmp_path / "inflated.pt"
    save_checkpoint(path, payload)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="does not match its own model config"):
        model_from_checkpoint(load_checkpoint(path))
    assert time.perf_counter() - start < 10
    assert (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 500_000
    )  # < 500 MB more


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, value):
    _, payload = _payload()
    payload["model_state"]["head.bias"][3] = value
    path = tmp_path / "nan.pt"
    save_checkpoint(path, payload)
    with pytest.raises(CheckpointError, match="non-finite weights.*head.bias"):
        model_from_checkpoint(load_checkpoint(path))


@pytest.mark.parametrize("train_config", [[1, 2], 42, "default", {"epochs": "many"}])
def test_a_train_config_of_the_wrong_type_is_one_line(tmp_path, train_config):
    _, payload = _payload()
    path = tmp_path / "c.pt"
    save_checkpoint(path, {**payload, "train_config": train_config})
    with pytest.raises(CheckpointError, match="invalid train config"):
        train_config_from_checkpoint(load_checkpoint(path))


def test_a_file_that_is_not_a_checkpoint_never_suggests_turning_safety_off(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_bytes(b"PK\x03\x04" + os.urandom(200))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "not a seqmnist checkpoint" in str(info.value) and "weights_only" not in str(info.value)
