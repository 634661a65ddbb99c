"""The web API's opt-in ``?reading=1``: how the prediction evolved as the model read the image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from seqmnist.config import ModelConfig, TrainConfig  # noqa: E402
from seqmnist.model import SeqClassifier  # noqa: E402
from seqmnist.predict import Classifier, load  # noqa: E402
from seqmnist.serve import create_app  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _digit_png() -> bytes:
    image = np.zeros((64, 64), dtype=np.uint8)
    image[10:54, 28:36] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _post(client: TestClient, query: str = ""):
    return client.post(
        f"/api/predict{query}", content=_digit_png(), headers={"Content-Type": "image/png"}
    )


def test_the_plain_request_has_no_reading_and_the_flag_adds_one(tiny_run):
    client = TestClient(create_app(load(tiny_run)))
    plain = _post(client).json()
    assert "reading" not in plain
    answer = _post(client, "?reading=1").json()
    reading = answer["reading"]
    assert reading["order"] == "rows" and reading["steps"] == list(range(1, 29))
    assert reading["every"] == 1 and reading["total_steps"] == 28
    assert np.array(reading["probabilities"]).shape == (28, 10)
    # the last prefix is the whole image: the same answer as the plain request
    np.testing.assert_allclose(reading["probabilities"][-1], plain["probabilities"], atol=1e-4)
    assert _post(client, "?reading=0").json().keys() == plain.keys()


def test_a_bad_flag_is_a_422(tiny_run):
    client = TestClient(create_app(load(tiny_run)))
    response = _post(client, "?reading=maybe")
    assert response.status_code == 422 and "reading" in response.json()["error"]


def test_long_orders_are_capped_at_28_prefixes():
    torch.manual_seed(0)
    model = SeqClassifier(ModelConfig(order="pixels", hidden=4, bidirectional=False))
    client = TestClient(create_app(Classifier(model, TrainConfig(), name="pixels")))
    reading = _post(client, "?reading=true").json()["reading"]
    assert reading["total_steps"] == 784 and reading["every"] == 28
    assert reading["steps"][0] == 28 and reading["steps"][-1] == 784 and len(reading["steps"]) == 28
