"""Same pixels, same answer through every surface: the Python API, `seqmnist predict` and
`POST /api/predict` all go through the one input contract, so the same MNIST test digits saved as
PNG, lossless WebP, GIF and 16-bit PNG files get exactly the labels the API gives the uint8
arrays, and JPEG and lossy WebP files nearly all of them (within their loss)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import seqmnist
from seqmnist.cli import main
from seqmnist.data import load_mnist

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from seqmnist.serve.app import create_app  # noqa: E402

COUNT = 100  # test digits per format
LOSSLESS = {
    "png": lambda d, p: Image.fromarray(d, "L").save(p),
    "lossless.webp": lambda d, p: Image.fromarray(d, "L").save(p, lossless=True),
    "gif": lambda d, p: Image.fromarray(d, "L").save(p),
    "16bit.png": lambda d, p: Image.fromarray(d.astype(np.uint16) * 257).save(p),
}
LOSSY = {
    "jpg": lambda d, p: Image.fromarray(d, "L").save(p, quality=90),
    "lossy.webp": lambda d, p: Image.fromarray(d, "L").save(p, quality=90),
}
MIN_LOSSY_AGREEMENT = 0.95  # measured: see the README's reliability table


@pytest.fixture(scope="module")
def digits_and_labels(real_data_dir: Path, real_run: Path):
    """(uint8 (COUNT, 28, 28) test digits, the labels the Python API gives them)."""
    split = load_mnist(real_data_dir, train=False, download=False)
    digits = split.images[:COUNT].numpy()
    labels = [p.label for p in seqmnist.load(real_run).predict(digits, errors="raise")]
    return digits, labels


@pytest.fixture(scope="module")
def files(digits_and_labels, tmp_path_factory) -> dict[str, list[Path]]:
    """format -> the COUNT digits saved as files of that format."""
    digits, _ = digits_and_labels
    folder = tmp_path_factory.mktemp("surfaces")
    saved: dict[str, list[Path]] = {}
    for fmt, save in {**LOSSLESS, **LOSSY}.items():
        saved[fmt] = []
        for n, digit in enumerate(digits):
            path = folder / f"d{n:03d}.{fmt}"
            save(digit, path)
            saved[fmt].append(path)
    return saved


def _agreement(got: list[int], want: list[int]) -> float:
    return float(np.mean(np.array(got) == np.array(want)))


def _cli_labels(run: Path, paths: list[Path], capsys) -> list[int]:
    assert main(["predict", str(run), *map(str, paths), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["source"] for r in results] == [str(p) for p in paths]
    return [r["label"] for r in results]


def _api_labels(client: TestClient, paths: list[Path]) -> list[int]:
    labels = []
    for path in paths:
        response = client.post("/api/predict", files={"file": (path.name, path.read_bytes())})
        assert response.status_code == 200, response.text
        labels.append(response.json()["label"])
    return labels


@pytest.mark.parametrize("fmt", list(LOSSLESS) + list(LOSSY))
def test_cli_and_api_give_the_python_api_answer(fmt, files, digits_and_labels, real_run, capsys):
    _, want = digits_and_labels
    paths = files[fmt]
    client = TestClient(create_app(seqmnist.load(real_run)))
    cli, api = _cli_labels(real_run, paths, capsys), _api_labels(client, paths)
    assert cli == api  # the two surfaces agree on every file, lossy or not
    if fmt in LOSSLESS:
        assert cli == want
    else:
        assert _agreement(cli, want) >= MIN_LOSSY_AGREEMENT, (fmt, _agreement(cli, want))


def test_warnings_reach_the_cli_the_json_and_the_api(digits_and_labels, real_run, tmp_path, capsys):
    """Two digits side by side ("73") still get an answer, and its warning is a stderr line in
    the CLI, a field in --json and in the API's answer."""
    from seqmnist.preprocess import SEVERAL_DIGITS

    digits, _ = digits_and_labels
    pair = np.concatenate([digits[0], np.zeros((28, 8), np.uint8), digits[1]], axis=1)
    path = tmp_path / "73.png"
    Image.fromarray(255 - pair).resize((pair.shape[1] * 4, 112)).save(path)
    assert main(["predict", str(real_run), str(path)]) == 0
    out, err = capsys.readouterr()
    warning = SEVERAL_DIGITS.format(2)
    assert out.startswith(f"{path}  ") and f"seqmnist: warning: {path}: {warning}" in err
    assert main(["predict", str(real_run), str(path), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert warning in result["warnings"]
    client = TestClient(create_app(seqmnist.load(real_run)))
    answer = client.post("/api/predict", files={"file": ("73.png", path.read_bytes())}).json()
    assert warning in answer["warnings"]
