"""Reading orders: each order's sequence against a hand-built one, the fixed pMNIST permutation,
and export of every order to ONNX / TorchScript with the same numbers."""

from __future__ import annotations

import io
import subprocess
import sys
import warnings
from dataclasses import asdict

import numpy as np
import pytest
import torch

from seqmnist.config import ModelConfig
from seqmnist.errors import ConfigError
from seqmnist.model import build_model
from seqmnist.sequence import SequenceReader, pixel_permutation

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# One image whose pixel at row r, column c holds 28 * r + c: every value says where it came from.
IMAGE = torch.arange(784, dtype=torch.float32).reshape(1, 28, 28)
PMNIST = np.random.RandomState(92916).permutation(784)  # the literature's permutation

ORDERS = [  # (order, pixels_per_step, T, F)
    ("rows", 0, 28, 28),
    ("rows", 28, 28, 28),
    ("columns", 0, 28, 28),
    ("pixels", 0, 784, 1),
    ("pixels", 4, 196, 4),
    ("pixels", 16, 49, 16),
    ("permuted", 0, 784, 1),
    ("permuted", 16, 49, 16),
]


def read(order: str, k: int = 0, seed: int = 92916, images: torch.Tensor = IMAGE) -> torch.Tensor:
    config = ModelConfig(order=order, pixels_per_step=k, permutation_seed=seed)
    return SequenceReader(config)(images)


def test_rows_are_the_image_itself():
    assert torch.equal(read("rows"), IMAGE)


def test_columns_are_the_transpose_left_to_right():
    seq = read("columns")  # (1, 28, 28)
    assert torch.equal(seq[0], IMAGE[0].T)
    assert seq[0, 5].tolist() == [28 * r + 5 for r in range(28)]  # step 5 = column 5, top down


@pytest.mark.parametrize("k", [1, 4, 16, 28, 784])
def test_pixels_are_the_raster_in_chunks(k):
    seq = read("pixels", k)  # (1, 784/k, k)
    expected = [[t * k + j for j in range(k)] for t in range(784 // k)]
    assert seq.shape == (1, 784 // k, k)
    assert seq[0].tolist() == expected


@pytest.mark.parametrize("k", [1, 4, 16])
def test_permuted_is_the_permuted_raster_in_chunks(k):
    seq = read("permuted", k)  # (1, 784/k, k)
    assert seq.shape == (1, 784 // k, k)
    assert seq[0].flatten().tolist() == PMNIST.tolist()  # step i reads raster pixel perm[i]
    assert torch.equal(seq, IMAGE.flatten()[torch.from_numpy(PMNIST)].reshape(1, -1, k))


def test_every_order_keeps_the_batch_apart():
    images = torch.randn(3, 28, 28)
    for order, k, t, f in ORDERS:
        seq = read(order, k, images=images)
        assert seq.shape == (3, t, f)
        for b in range(3):
            assert torch.equal(seq[b : b + 1], read(order, k, images=images[b : b + 1]))


def test_an_empty_batch_reads_to_an_empty_sequence():
    for order, k, t, f in ORDERS:
        assert read(order, k, images=torch.zeros(0, 28, 28)).shape == (0, t, f)


def test_default_permutation_is_the_literatures():
    perm = pixel_permutation(92916)
    assert perm.dtype == torch.int64 and perm.shape == (784,)
    assert perm.tolist() == PMNIST.tolist()
    assert sorted(perm.tolist()) == list(range(784))
    assert ModelConfig().permutation_seed == 92916
    assert not torch.equal(pixel_permutation(1), perm)


def test_permutation_ignores_global_rng_state():
    torch.manual_seed(1)
    np.random.seed(1)
    a = build_model(ModelConfig(order="permuted", hidden=4)).reader.perm
    torch.manual_seed(2)
    np.random.seed(2)
    np.random.rand(5)
    b = build_model(ModelConfig(order="permuted", hidden=4)).reader.perm
    assert torch.equal(a, b) and a.tolist() == PMNIST.tolist()


def test_permutation_is_the_same_in_another_process():
    code = (
        "from seqmnist.config import ModelConfig; from seqmnist.sequence import SequenceReader; "
        "print(SequenceReader(ModelConfig(order='permuted', permutation_seed=7)).perm.tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(pixel_permutation(7).tolist())


def test_permutation_is_not_saved_but_survives_a_state_dict_round_trip():
    config = ModelConfig(order="permuted", pixels_per_step=16, permutation_seed=5, hidden=4)
    model = build_model(config).eval()
    state = model.state_dict()
    assert not any("perm" in key for key in state)  # non-persistent: rebuilt from the config
    clone = build_model(ModelConfig.from_dict(asdict(config))).eval()
    clone.load_state_dict(state, strict=True)
    assert torch.equal(clone.reader.perm, pixel_permutation(5))
    x = torch.randn(2, 28, 28)
    assert torch.equal(clone(x), model(x))


def test_permutation_follows_the_model_and_stays_integer():
    model = build_model(ModelConfig(order="permuted", hidden=4)).double()
    assert model.reader.perm.dtype == torch.int64
    assert model(torch.randn(2, 28, 28, dtype=torch.float64)).dtype == torch.float64


def test_permutation_seed_changes_the_output():
    torch.manual_seed(0)
    a = build_model(ModelConfig(order="permuted", pixels_per_step=16, hidden=8)).eval()
    b = build_model(ModelConfig(order="permuted", pixels_per_step=16, hidden=8, permutation_seed=1))
    b.load_state_dict(a.state_dict())  # same weights, another permutation
    x = torch.randn(2, 28, 28)
    assert not torch.allclose(a(x), b.eval()(x), atol=1e-4)


@pytest.mark.parametrize(
    ("fields", "needles"),
    [
        (
            {"pixels_per_step": 5, "order": "pixels"},
            ["--pixels-per-step", "1, 2, 4, 7, 8", "got 5"],
        ),
        ({"order": "spiral"}, ["--order", "rows, columns, pixels, permuted", "'spiral'"]),
        ({"order": "rows", "pixels_per_step": 4}, ["--order rows", "--pixels-per-step 4"]),
        ({"order": "permuted", "permutation_seed": -1}, ["--permutation-seed", "0 to", "got -1"]),
        ({"cell": "transformer"}, ["--cell", "lstm, gru, rnn, irnn"]),
    ],
)
def test_bad_values_raise_one_line_config_errors(fields, needles):
    with pytest.raises(ConfigError) as info:
        build_model(ModelConfig(**fields))
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


# ---- export: the reader is part of forward, so every exported model takes images (B, 28, 28).

EXPORT_CASES = [  # (order, pixels_per_step, cell): every order, every cell, short sequences
    ("rows", 0, "lstm"),
    ("columns", 0, "gru"),
    ("pixels", 16, "irnn"),
    ("permuted", 16, "lstm"),
    ("permuted", 1, "rnn"),
]


def small_model(order: str, k: int, cell: str) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(order=order, pixels_per_step=k, cell=cell, hidden=6, permutation_seed=3)
    model = build_model(config).eval()
    with torch.no_grad():  # weights of a size that makes every step matter (irnn's are tiny)
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model


def run_onnx(model: bytes | str, x: torch.Tensor) -> torch.Tensor:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


@pytest.mark.parametrize(("order", "k", "cell"), EXPORT_CASES)
def test_onnx_export_matches_pytorch(order, k, cell):
    pytest.importorskip("onnx")
    model = small_model(order, k, cell)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(2, 28, 28),), buffer, dynamo=False, opset_version=17,
            input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )  # fmt: skip
    x = torch.randn(5, 28, 28)  # another batch size than the example's
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(run_onnx(buffer.getvalue(), x), expected, atol=1e-5, rtol=0)


@pytest.mark.slow  # the dynamo exporter takes ~7 s per model here (it unrolls the recurrence)
def test_onnx_dynamo_export_of_the_permutation_matches_pytorch(tmp_path):
    pytest.importorskip("onnxscript")
    model = small_model("permuted", 28, "lstm")  # 28 steps: the gather, without a long unroll
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(2, 28, 28),), str(path), dynamo=True, verbose=False,
            input_names=["images"], dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
        )  # fmt: skip
    x = torch.randn(5, 28, 28)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(run_onnx(str(path), x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("order", "k", "cell"), EXPORT_CASES)
def test_torchscript_matches_pytorch(order, k, cell):
    model = small_model(order, k, cell)
    x = torch.randn(5, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, torch.zeros(2, 28, 28))  # as export.py does
        scripted_reader = torch.jit.script(model.reader)
    with torch.no_grad():
        assert torch.allclose(traced(x), model(x), atol=1e-6, rtol=0)
        assert torch.equal(scripted_reader(x), model.read(x))
