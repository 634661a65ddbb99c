"""``seqmnist train --config FILE``: records and overlays, precedence, and one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli_train
from seqmnist.cli import main
from seqmnist.config import DEFAULT, preset_config
from seqmnist.config_file import load_config_file
from seqmnist.errors import ConfigError


def printed_config(capsys, *argv: str) -> dict:
    assert main(["train", *argv, "--print-config"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def error_line(capsys, *argv: str) -> str:
    assert main(["train", *argv]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("seqmnist: error: "), err
    return err.strip()


def test_overlay_precedence_preset_then_file_then_flags(tmp_path, capsys):
    toml = tmp_path / "mine.toml"
    toml.write_text('epochs = 4\nhidden = 32\nlr = 1\n[model]\ncell = "gru"\n')
    config = printed_config(capsys, "--config", str(toml), "--epochs", "7")
    assert config["epochs"] == 7  # the flag beats the file
    assert config["model"]["hidden"] == 32 and config["model"]["cell"] == "gru"  # flat and nested
    assert config["lr"] == 1.0 and isinstance(config["lr"], float)  # TOML's 1 for a float field
    assert config["augment_rotate"] == DEFAULT.augment_rotate  # untouched: the default preset's
    seeded = printed_config(capsys, "--config", str(toml), "--preset", "seed")
    assert seeded["preset"] == "seed" and seeded["batch_size"] == 32  # the seed preset below
    assert seeded["epochs"] == 4  # the file above it


def test_overlay_may_name_its_preset_in_json(tmp_path, capsys):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"preset": "seed", "model": {"hidden": 16}}))
    config = printed_config(capsys, "--config", str(path))
    assert config["preset"] == "seed" and config["optimizer"] == "adam"
    assert config["model"]["hidden"] == 16 and config["model"]["readout"] == "last"
    err = error_line(capsys, "--config", str(path), "--preset", "best")
    assert "mine.json starts from preset 'seed'" in err


def test_printed_config_is_a_record_that_reads_back_identically(tmp_path, capsys):
    printed = printed_config(capsys, "--preset", "seed", "--hidden", "20")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(printed))
    assert printed_config(capsys, "--config", str(path)) == printed
    config, origin = load_config_file(path)
    assert origin["config_file_kind"] == "record" and config.to_dict() == printed
    err = error_line(capsys, "--config", str(path), "--preset", "default")
    assert "the record of a 'seed' run; drop --preset default" in err


def test_an_old_record_keeps_the_meaning_it_had(tmp_path):
    """A config.json from before rotations existed ran without them: read as a record it must
    not pick up today's default preset (rotate 10), as resume reads it."""
    old = preset_config("default").to_dict()
    for name in ("augment_rotate", "augment_scale", "augment_shear", "cuda_graphs"):
        del old[name]
    old["model"]["input_size"] = 28  # configs from before reading orders
    del old["model"]["order"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(old))
    config, origin = load_config_file(path)
    assert origin["config_file_kind"] == "record"
    assert config.augment_rotate == 0.0 and config.augment_scale == 0.0
    assert config.model.order == "rows"


BAD_FILES = [
    ("a.toml", "hiden = 3\n", "unknown field hiden (did you mean hidden?)"),
    ("a.toml", "[model]\nepochs = 3\n", "unknown field model.epochs"),
    ("a.toml", 'hidden = "many"\n', "field hidden must be an integer from 1 to 4096; got 'many'"),
    ("a.toml", "hidden = 2.0\n", "field hidden must be an integer"),
    ("a.toml", "hidden = 0\n", "field hidden must be an integer from 1 to 4096; got 0"),
    ("a.toml", "lr = 100.0\n", "field lr must be a number from 1e-08 to 10; got 100.0"),
    ("a.toml", "lr = nan\n", "field lr must be a finite number"),
    ("a.toml", 'lr = "0.1"\n', "field lr must be a number"),
    ("a.toml", 'bidirectional = "yes"\n', "field bidirectional must be true or false"),
    ("a.toml", 'cell = "transformer"\n', "field cell must be one of lstm, gru"),
    ("a.toml", 'preset = "fast"\n', "field preset must be one of default, seed"),
    ("a.toml", "normalize = 1\n", "field normalize must be true or false; got 1"),
    ("a.toml", "model = 3\n", "field model must be a table of model fields"),
    ("a.toml", "hidden = 8\n[model]\nhidden = 9\n", "field hidden is given twice"),
    ("a.toml", "pixels_per_step = 16\n", "a.toml: --order rows reads 28 pixels a step"),
    ("a.toml", "seed = 99999999999999999999999\n", "field seed must be an integer from 0 to"),
    ("a.toml", f"seed = {'9' * 4000}\n", "field seed is too long to be valid; got 9999"),
    ("a.toml", f"cell = '{'x' * 10_000}'\n", "field cell is too long to be valid; got 'xxx"),
    ("a.toml", "hidden = 3\n[model\n", "is not valid TOML"),
    ("a.json", '{"lr": NaN}', "is not valid JSON: NaN is not a number"),
    ("a.json", '{"epochs": 3,', "is not valid JSON"),
    ("a.json", "[1, 2]", "must hold an object of config fields; got list"),
    ("a.json", '"epochs"', "must hold an object of config fields; got str"),
    ("a.json", "[" * 100_000, "is not valid JSON"),
    ("a.json", b"\xff\xfe{}", "is not valid JSON"),
    ("a.yaml", "epochs: 3\n", "the file name must end in .json or .toml"),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES)
def test_a_bad_config_file_is_one_line_naming_file_and_field(
    tmp_path, capsys, name, content, expected
):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    err = error_line(capsys, "--config", str(path), "--out", str(tmp_path / "run"))
    assert f"--config {path}" in err and expected in err, err
    assert not (tmp_path / "run").exists()


def test_missing_or_folder_config_file(tmp_path, capsys):
    assert "no such file" in error_line(capsys, "--config", str(tmp_path / "none.toml"))
    assert "is a folder" in error_line(capsys, "--config", str(tmp_path))


def test_config_with_resume_is_refused(tmp_path, capsys):
    path = tmp_path / "a.toml"
    path.write_text("epochs = 3\n")
    err = error_line(capsys, "--config", str(path), "--resume", str(tmp_path))
    assert "drop --config" in err


def test_a_run_records_its_resolved_config_and_where_it_came_from(synthetic_data_dir, tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("hidden = 12\nepochs = 1\n")
    run = tmp_path / "run"
    assert cli_train(synthetic_data_dir, run, "--config", str(path), "--no-plots", epochs=1) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["hidden"] == 8  # cli_train's --hidden 8 beats the file's 12
    origin = json.loads((run / "config_origin.json").read_text())
    assert origin["config_file"] == str(path.resolve()) and origin["preset"] == "default"
    assert origin["config_file_kind"] == "overlay" and origin["flags"]["hidden"] == 8
    # The run's own config.json starts a copy of it.
    again = tmp_path / "again"
    assert cli_train(synthetic_data_dir, again, "--config", str(run / "config.json"), epochs=1) == 0
    assert json.loads((again / "config.json").read_text()) == config
    # A later run in the same folder without --config does not keep the old origin.
    assert cli_train(synthetic_data_dir, run, "--overwrite", "--no-plots", epochs=1) == 0
    assert json.loads((run / "config_origin.json").read_text())["config_file"] is None


def test_library_call_names_the_file(tmp_path):
    path = Path(tmp_path / "x.json")
    path.write_text('{"epochs": -1}')
    with pytest.raises(ConfigError, match=r"x\.json: field epochs must be an integer"):
        load_config_file(path)
    path.write_text('{"epochs": 5, "hidden": 9}')
    config, origin = load_config_file(path, overrides={"epochs": 2})  # flags are applied last
    assert config.epochs == 2 and config.model.hidden == 9 and origin["flags"] == {"epochs": 2}


def test_a_record_for_other_than_ten_classes_is_refused(tmp_path, capsys):
    """MNIST has 10 classes: a crafted config.json with another num_classes once started training
    and crashed in the loss with a traceback, leaving a half-written run directory."""
    record = preset_config("default").to_dict()
    record["model"]["num_classes"] = 5
    path = tmp_path / "config.json"
    path.write_text(json.dumps(record))
    err = error_line(capsys, "--config", str(path), "--out", str(tmp_path / "run"))
    assert f"--config {path}: field model.num_classes must be 10" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("name", "text"), [("a.json", '{"epochs": 3}'), ("a.toml", "epochs = 3\n")]
)
def test_a_config_file_saved_with_a_byte_order_mark_is_read(tmp_path, capsys, name, text):
    """Windows editors (Notepad, PowerShell 5's Out-File) start UTF-8 files with a BOM."""
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert printed_config(capsys, "--config", str(path))["epochs"] == 3
