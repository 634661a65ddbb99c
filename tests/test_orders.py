"""Every reading order end to end: the same image gets the same prediction through evaluate,
predict, the web API and the ONNX export; a short real-MNIST run in another order than rows."""

from __future__ import annotations

import base64
import io
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from PIL import Image

from seqmnist.checkpoint import save_checkpoint
from seqmnist.cli import main
from seqmnist.config import apply_overrides, preset_config
from seqmnist.data import load_mnist, to_model_input
from seqmnist.engine import evaluate
from seqmnist.model import build_model
from seqmnist.predict import load

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ORDERS = {
    "rows": {"order": "rows"},
    "columns": {"order": "columns"},
    "pixels-16": {"order": "pixels", "pixels_per_step": 16, "bidirectional": False},
    "permuted-28": {"order": "permuted", "pixels_per_step": 28},
}


def untrained_checkpoint(tmp_path: Path, overrides: dict) -> Path:
    """A checkpoint as `seqmnist train` writes it, with seeded random weights (enough to compare
    the paths a prediction takes: they must agree whatever the weights)."""
    config = apply_overrides(preset_config("default"), {"hidden": 8, **overrides})
    torch.manual_seed(0)
    model = build_model(config.model)
    payload = {
        "model_config": asdict(config.model),
        "train_config": config.to_dict(),
        "model_state": model.state_dict(),
        "epoch": 1,
    }
    path = tmp_path / "checkpoint_best.pt"
    save_checkpoint(path, payload)
    return path


@pytest.mark.parametrize("name", list(ORDERS))
def test_one_image_gets_one_prediction_everywhere(name, tmp_path, synthetic_data_dir):
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient

    from seqmnist.export import _run_onnx, export_model
    from seqmnist.serve import create_app

    path = untrained_checkpoint(tmp_path, ORDERS[name])
    test = load_mnist(synthetic_data_dir, train=False, download=False)
    images = test.images[:8]  # (8, 28, 28) uint8, already in MNIST form
    classifier = load(path)
    by_predict = classifier.predict_mnist(images)  # (8, 10) probabilities
    by_evaluate = evaluate(classifier.model, test, normalize=True, return_outputs=True)[
        "probabilities"
    ][:8]
    assert torch.allclose(by_predict, by_evaluate, atol=1e-5)

    client = TestClient(create_app(classifier))
    for n in range(3):
        buffer = io.BytesIO()
        Image.fromarray(images[n].numpy()).save(buffer, format="PNG")
        answer = client.post(
            "/api/predict", json={"image": base64.b64encode(buffer.getvalue()).decode()}
        )
        assert answer.status_code == 200, answer.text
        # the API preprocesses an upload exactly as predict does a file
        expected = classifier.predict(buffer.getvalue())[0]
        assert answer.json()["label"] == expected.label
        assert answer.json()["probabilities"] == pytest.approx(expected.probabilities, abs=1e-6)

    report = export_model(
        path,
        "onnx",
        out=tmp_path / "m.onnx",
        data_dir=synthetic_data_dir,
        download=False,
        samples=16,
    )
    assert report["agreement"] == 1.0
    logits = _run_onnx(tmp_path / "m.onnx", to_model_input(images, normalize=True))
    assert torch.allclose(logits.softmax(1), by_predict, atol=1e-5)


def test_a_permuted_model_keeps_its_permutation_through_a_checkpoint(tmp_path):
    path = untrained_checkpoint(tmp_path, {"order": "permuted", "permutation_seed": 7})
    model = load(path).model
    assert model.config.permutation_seed == 7
    rebuilt = build_model(model.config)
    assert torch.equal(model.reader.perm, rebuilt.reader.perm)


def test_cli_flags_reach_the_model_and_bad_values_are_one_line(tmp_path, capsys):
    assert (
        main(["train", "--order", "pixels", "--pixels-per-step", "5", "--out", str(tmp_path / "r")])
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "seqmnist: error: --pixels-per-step must divide 784: one of 1, 2, 4, 7, 8, 14, 16"
    )
    assert "\n" not in err and not (tmp_path / "r").exists()
    with pytest.raises(SystemExit):
        main(["train", "--order", "spiral"])
    assert "invalid choice: 'spiral'" in capsys.readouterr().err


@pytest.mark.slow
def test_real_mnist_columns_run(real_data_dir, tmp_path):
    """One short real run in another order: 3 epochs of columns on 10,000 images reach 90 %."""
    from seqmnist.train import fit

    config = apply_overrides(
        preset_config("default"),
        {"order": "columns", "epochs": 3, "val_size": 50_000, "threads": 1},
    )
    summary = fit(config, tmp_path / "columns", data_dir=real_data_dir, download=False, quiet=True)
    assert summary["order"] == "columns"
    assert summary["test_acc"] > 0.90
