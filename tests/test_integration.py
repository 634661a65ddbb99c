"""Real MNIST: the default architecture after two short epochs, and the evaluate command on it.

Needs $SEQMNIST_DATA (a folder holding MNIST/raw/): skipped without it, failed under CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqmnist.cli import main
from seqmnist.printed import BANK_SIZE
from seqmnist.run import read_metrics

pytestmark = pytest.mark.slow


def test_default_architecture_learns_real_mnist(real_run):
    summary = json.loads((real_run / "summary.json").read_text())
    rows = read_metrics(real_run / "metrics.csv")
    assert len(rows) == 2
    assert summary["best_val_acc"] >= 0.90
    assert summary["test_acc"] >= 0.90
    assert summary["test_samples"] == 10_000
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    # the held-out split is 5,000 images: every epoch trained on the other 55,000 and the
    # default recipe's printed digits
    assert summary["samples_per_s"] * summary["train_seconds"] == pytest.approx(
        2 * (55_000 + BANK_SIZE), rel=1e-3
    )


def test_evaluate_agrees_with_the_summary(real_run, real_data_dir, capsys):
    code = main(
        ["evaluate", str(real_run), "--json", "--data-dir", str(real_data_dir), "--no-download"]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((real_run / "summary.json").read_text())
    assert result["samples"] == 10_000
    assert result["accuracy"] == pytest.approx(summary["test_acc"], abs=1e-9)
    assert result["confusion_matrix"] == summary["confusion_matrix"]
    code = main(
        [
            "evaluate",
            str(real_run),
            "--split",
            "val",
            "--json",
            "--data-dir",
            str(real_data_dir),
            "--no-download",
        ]
    )
    assert code == 0
    val = json.loads(capsys.readouterr().out)
    assert val["samples"] == 5_000
    assert val["accuracy"] == pytest.approx(summary["best_val_acc"], abs=1e-9)


def test_missing_real_data_fails_under_ci(tmp_path):
    """Under CI=true a missing MNIST must fail the tests that need it, never silently skip them."""
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), suite / "conftest.py")
    (suite / "test_needs_mnist.py").write_text("def test_needs_mnist(real_data_dir):\n    pass\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "CI": "true", "SEQMNIST_DATA": str(empty)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(suite),
            str(suite),
        ],
        cwd=suite,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "1 error" in out or "1 failed" in out, out
    assert "skipped" not in out
    assert "real MNIST not found" in out
