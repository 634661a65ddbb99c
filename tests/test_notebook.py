"""docs/tutorial.ipynb: the committed copy holds a real run's outputs; a copy runs green from a
clean kernel with CI=true (a short training budget), and the committed file is never rewritten."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def _code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code"]


def _text(cell: dict) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append("".join(output["text"]))
        elif "text/plain" in output.get("data", {}):
            parts.append("".join(output["data"]["text/plain"]))
    return "".join(parts)


def test_the_committed_notebook_holds_a_real_runs_outputs():
    notebook = json.loads(NOTEBOOK.read_text())
    first = "".join(notebook["cells"][0]["source"])
    assert 'pip install -e ".[notebook]"' in first  # the first cell says how to install
    cells = _code_cells(notebook)
    assert all(c["execution_count"] for c in cells), "every code cell was executed"
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))  # in order
    assert not any(o["output_type"] == "error" for c in cells for o in c["outputs"])
    setup = _text(cells[0])
    assert "machine: " in setup and "full tutorial run" in setup  # named machine, not CI mode
    images = sum("image/png" in o.get("data", {}) for c in cells for o in c["outputs"])
    assert images >= 10
    assert any("image/gif" in o.get("data", {}) for c in cells for o in c["outputs"])


@pytest.mark.slow
def test_the_notebook_runs_from_a_clean_kernel(real_data_dir, tmp_path, monkeypatch):
    """A copy of the notebook executed in a fresh kernel, in an empty working folder, with
    CI=true: one epoch per model (a minute or two on 2 cores)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    committed = NOTEBOOK.read_bytes()
    # one training thread on a shared machine (as conftest's real_run), every core under CI
    monkeypatch.setenv("SEQMNIST_THREADS", "0" if os.environ.get("CI") == "true" else "1")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("SEQMNIST_DATA", str(real_data_dir))
    notebook = nbformat.reads(committed.decode(), as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell that failed
    assert NOTEBOOK.read_bytes() == committed
    cells = _code_cells(notebook)
    assert "CI (short budget)" in _text(cells[0])
    claims = _text(cells[3])  # the article's claim about output[:, -1, :], numerically
    assert "forward half,  output[:, -1, :64] vs h_n[0]: max |difference| = 0.000000" in claims
    assert "output[:, 0, 64:]  vs h_n[1]: max |difference| = 0.000000" in claims
    assert "backward half, output[:, -1, 64:] vs h_n[1]: max |difference| = 0.0000" not in claims
    pictures = tmp_path / "tutorial-runs" / "pictures"
    for name in ("seven-reading.gif", "seven-states.png", "seven-attributions.png", "mistakes.png"):
        assert (pictures / name).stat().st_size > 5_000, name
