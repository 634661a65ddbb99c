"""RunDir: the run directory's files, written whole or not at all.

Damaged ones are reported in one line.
"""

from __future__ import annotations

import errno
import json
import math

import pytest

from seqmnist.config import preset_config
from seqmnist.errors import CheckpointError, SeqMnistError
from seqmnist.run import (
    METRIC_COLUMNS,
    RunDir,
    WriteError,
    atomic_write,
    read_metrics,
    write_json_atomic,
)


def test_metrics_append_read_truncate(tmp_path):
    run = RunDir(tmp_path)
    assert run.read_metrics() == []
    for epoch in (1, 2, 3):
        run.append_metrics(
            {"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": 0.5 + epoch / 10, "lr": 1e-3}
        )
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0]
    assert header == ",".join(METRIC_COLUMNS)
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [1.0, 2.0, 3.0]
    assert rows[1]["train_loss"] == pytest.approx(0.5) and rows[1]["test_acc"] is None
    run.truncate_metrics_after(2)
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.csv")] == [1.0, 2.0]
    assert read_metrics(tmp_path / "metrics.csv")[1]["val_acc"] == pytest.approx(0.7)
    run.append_metrics({"epoch": 3, "train_loss": math.nan})
    assert math.isnan(read_metrics(tmp_path / "metrics.csv")[2]["train_loss"])
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    "text",
    [
        "epoch,train_loss\n1,0.5\n",
        ",".join(METRIC_COLUMNS) + "\n1,zero" + "," * (len(METRIC_COLUMNS) - 2) + "\n",
        ",".join(METRIC_COLUMNS) + "\n1,2\n",
        b"\xff\xfe garbage".decode("latin-1"),
    ],
)
def test_a_damaged_metrics_file_is_one_line(tmp_path, text):
    (tmp_path / "metrics.csv").write_text(text, encoding="latin-1")
    with pytest.raises(CheckpointError) as info:
        RunDir(tmp_path).read_metrics()
    message = str(info.value)
    assert "metrics.csv is damaged" in message and "\n" not in message


@pytest.mark.parametrize("content", [b"\xff\xfe\x00not utf-8", b"[1, 2, 3]", b"{broken", b"42"])
def test_a_damaged_config_or_summary_is_one_line(tmp_path, content):
    run = RunDir(tmp_path)
    run.config_file.write_bytes(content)
    run.summary_file.write_bytes(content)
    with pytest.raises(CheckpointError, match="config.json is not a"):
        run.read_config()
    with pytest.raises(CheckpointError, match="summary.json is not a"):
        run.read_summary()


def test_a_config_with_wrong_values_is_reported(tmp_path):
    run = RunDir(tmp_path)
    run.config_file.write_text(json.dumps({"epochs": "many", "colour": 1}))
    with pytest.raises(CheckpointError, match="not a valid seqmnist config"):
        run.read_config()


def test_create_refuses_to_replace_a_run_and_clears_stale_files(tmp_path):
    run = RunDir(tmp_path / "r")
    config = preset_config("default")
    run.create(config, overwrite=False)
    assert run.read_config() == config
    run.append_metrics({"epoch": 1})
    with pytest.raises(SeqMnistError, match="already holds a run.*--resume.*--overwrite"):
        run.create(config, overwrite=False)
    run.summary_file.write_text("{}")
    run.create(config, overwrite=True)
    assert not run.metrics_file.exists() and not run.summary_file.exists()


def test_atomic_write_leaves_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "file.json"
    write_json_atomic(target, {"a": 1})

    def fail_half_way(f):
        f.write(b'{"a": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match="the disk is full"):
        atomic_write(target, fail_half_way)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_atomic_write_where_nothing_can_be_written_is_one_line():
    # /proc refuses new files even to root (a chmod'ed folder would not stop root, who runs CI)
    with pytest.raises(WriteError, match="cannot write /proc/seqmnist-file.json"):
        write_json_atomic("/proc/seqmnist-file.json", {})


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json_atomic(tmp_path / "x.json", {"a": math.nan})
    assert not list(tmp_path.iterdir())
