"""`inspect_model` reports true shapes and relations; `seqmnist inspect` prints the same numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import synthetic_digits
from seqmnist.checkpoint import load_checkpoint, model_from_checkpoint
from seqmnist.cli import main
from seqmnist.config import ModelConfig
from seqmnist.data import load_mnist, to_model_input
from seqmnist.inspect import default_model, format_inspection, inspect_model
from seqmnist.model import build_model


def batch(n: int = 6, normalize: bool = True) -> torch.Tensor:
    images, _ = synthetic_digits(n, seed=7)
    return to_model_input(torch.from_numpy(images), normalize)  # (B, 28, 28)


def by_name(info: dict) -> dict[str, dict]:
    return {r["relation"]: r for r in info["relations"]}


def test_bidirectional_lstm_relations_and_shapes() -> None:
    info = inspect_model(None, batch(6))  # default config, seeded random weights
    assert info["shapes"] == {
        "input": [6, 28, 28],
        "output": [6, 28, 128],
        "h_n": [2, 6, 64],
        "c_n": [2, 6, 64],
        "readout": [6, 128],
        "logits": [6, 10],
    }
    rel = by_name(info)
    assert rel["output[:, -1, :H] == h_n[-2]"]["max_abs_diff"] == 0.0
    assert rel["output[:, 0, H:] == h_n[-1]"]["max_abs_diff"] == 0.0
    claim = rel["output[:, -1, H:] == h_n[-1]"]
    assert claim["equal"] is False and claim["max_abs_diff"] > 1e-3
    assert rel["readout == cat(h_n[-2], h_n[-1])"]["equal"] is True
    assert info["all_as_expected"] is True

    # The reported numbers are the tensors' own differences.
    model = default_model()
    with torch.no_grad():
        output, (h_n, _) = model.rnn(batch(6))
    assert claim["max_abs_diff"] == pytest.approx(float((output[:, -1, 64:] - h_n[-1]).abs().max()))


def test_seeded_default_model_is_reproducible() -> None:
    a, b = default_model(seed=0), default_model(seed=0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_unidirectional_stacked_gru() -> None:
    model = build_model(
        ModelConfig(cell="gru", hidden=12, layers=2, bidirectional=False, readout="mean")
    )
    info = inspect_model(model, batch(3))
    assert info["shapes"]["c_n"] is None
    assert info["shapes"]["h_n"] == [2, 3, 12]  # (L*D, B, H): two layers, one direction
    assert info["shapes"]["output"] == [3, 28, 12]
    rel = by_name(info)
    assert rel["output[:, -1, :] == h_n[-1]"]["max_abs_diff"] == 0.0
    assert rel["readout == output.mean(dim=1)"]["equal"] is True
    text = format_inspection(info)
    assert "c_n" not in text and "earlier layers" in text


def test_other_reading_orders_inspect_their_own_sequence() -> None:
    config = ModelConfig(order="pixels", pixels_per_step=16, hidden=8, bidirectional=False)
    model = build_model(config)
    info = inspect_model(model, batch(3))  # images (3, 28, 28), read as 49 steps of 16 pixels
    assert info["model"]["order"] == "pixels"
    assert info["shapes"]["input"] == [3, 49, 16] and info["shapes"]["output"] == [3, 49, 8]
    assert info["all_as_expected"] is True
    assert "T=49 time steps (pixels), F=16 features" in format_inspection(info)


def test_article_readout_and_text() -> None:
    model = build_model(ModelConfig(readout="last", softmax_output=True, hidden=16))
    info = inspect_model(model, batch(4, normalize=False))
    assert by_name(info)["readout == output[:, -1, :]"]["equal"] is True
    text = format_inspection(info)
    assert "output[:, -1, :] is NOT the final state" in text
    assert "backward half has read\nonly the last row" in text
    assert "readout: output[:, -1, :], the article's readout" in text
    assert "applies softmax" in text


def printed_diff(text: str, relation: str) -> tuple[str, float]:
    """The verdict and max |diff| `seqmnist inspect` printed for one relation."""
    match = re.search(re.escape(relation) + r"\s+(holds|FALSE)\s+max \|diff\| = (\S+)", text)
    assert match, f"{relation!r} not in output:\n{text}"
    return match.group(1), float(match.group(2))


def test_cli_inspect_trained_run_prints_true_numbers(
    tiny_run: Path, synthetic_data_dir: Path, capsys
) -> None:
    rc = main(
        [
            "inspect",
            str(tiny_run),
            "--batch-size",
            "5",
            "--data-dir",
            str(synthetic_data_dir),
            "--no-download",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert (
        "output      (5, 28, 32)" in text
        and "h_n         (2, 5, 16)" in text
        and "c_n         (2, 5, 16)" in text
    )
    assert printed_diff(text, "output[:, -1, :H] == h_n[-2]") == ("holds", 0.0)
    assert printed_diff(text, "output[:, 0, H:] == h_n[-1]") == ("holds", 0.0)
    verdict, diff = printed_diff(text, "output[:, -1, H:] == h_n[-1]")
    assert verdict == "FALSE" and diff > 1e-3

    # Recompute from the checkpoint and the same batch: the printed number is that tensor's.
    model = model_from_checkpoint(load_checkpoint(tiny_run))
    x = to_model_input(load_mnist(synthetic_data_dir, train=False, download=False).images[:5], True)
    with torch.no_grad():
        output, (h_n, _) = model.rnn(x)
    H = model.config.hidden
    assert diff == pytest.approx(float((output[:, -1, H:] - h_n[-1]).abs().max()), rel=1e-2)


def test_cli_inspect_without_model(synthetic_data_dir: Path, capsys) -> None:
    assert main(["inspect", "--data-dir", str(synthetic_data_dir), "--no-download"]) == 0
    text = capsys.readouterr().out
    assert "random weights" in text and "output      (8, 28, 128)" in text
    assert printed_diff(text, "output[:, -1, H:] == h_n[-1]")[0] == "FALSE"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["nowhere/run"], "no such run directory or checkpoint: nowhere/run"),
        (["--batch-size", "0"], "--batch-size must be an integer from 1 to 10000"),
    ],
)
def test_cli_inspect_bad_input(args, needle, synthetic_data_dir: Path, capsys) -> None:
    rc = main(["inspect", *args, "--data-dir", str(synthetic_data_dir), "--no-download"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("seqmnist: error: ") and err.strip().count("\n") == 0
    assert needle in err and "Traceback" not in err


def test_cli_inspect_missing_data(tmp_path: Path, capsys) -> None:
    rc = main(["inspect", "--data-dir", str(tmp_path), "--no-download"])
    err = capsys.readouterr().err
    assert rc == 1 and err.strip().count("\n") == 0 and "MNIST not found" in err
