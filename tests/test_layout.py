"""The shape of the code that DESIGN.md promises: inference never imports training; modules and
functions stay small enough to read."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "seqmnist"


@pytest.mark.parametrize(
    "module",
    [
        "seqmnist.predict",
        "seqmnist.evaluation",
        "seqmnist.export",
        "seqmnist.serve",
        "seqmnist.trained",
        "seqmnist.plots",
        "seqmnist.curves",
        "seqmnist.curve_data",
        "seqmnist.pictures",
        "seqmnist.figures",
        "seqmnist.compare",
        "seqmnist.gradients",
        "seqmnist.readout_probe",
        "seqmnist.digit_source",
        "seqmnist.explain",
        "seqmnist.explain_plots",
        "seqmnist.rnn_states",
        "seqmnist.attribution",
    ],
)
def test_inference_modules_do_not_import_training(module):
    code = (
        f"import {module}, sys; bad = [m for m in ('seqmnist.train', 'seqmnist.state') "
        "if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_function_over_60_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long.append(f"{path.name}:{node.name} ({length} lines)")
    assert not long, long
