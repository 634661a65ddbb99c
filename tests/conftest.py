"""Shared fixtures: small synthetic MNIST-format files, the real MNIST folder, a tiny trained run.

Every file a test writes goes under pytest's tmp_path; the real data directory is only read.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from seqmnist.config import apply_overrides, preset_config
from seqmnist.data import DATA_ENV_VAR, RAW_FILES


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """IDX3: magic 2051, count, rows, cols, then uint8 pixels."""
    n, rows, cols = images.shape
    path.write_bytes(struct.pack(">iiii", 2051, n, rows, cols) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """IDX1: magic 2049, count, then uint8 labels."""
    path.write_bytes(struct.pack(">ii", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 28, 28) uint8 images whose class is easy to learn from rows: class c draws a bright
    vertical bar at column 3 + 2c and a horizontal bar at row 3 + 2c, over faint noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 4:24, 3 + 2 * c] = 255
        images[i, 3 + 2 * c, 4:24] = 200
    return images, labels


def make_synthetic_mnist(root: Path, n_train: int = 600, n_test: int = 200) -> Path:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    tr_x, tr_y = synthetic_digits(n_train, seed=1)
    te_x, te_y = synthetic_digits(n_test, seed=2)
    write_idx_images(raw / "train-images-idx3-ubyte", tr_x)
    write_idx_labels(raw / "train-labels-idx1-ubyte", tr_y)
    write_idx_images(raw / "t10k-images-idx3-ubyte", te_x)
    write_idx_labels(raw / "t10k-labels-idx1-ubyte", te_y)
    return root


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with MNIST/raw/ holding 600 training and 200 test synthetic images."""
    return make_synthetic_mnist(tmp_path_factory.mktemp("synthetic-data"))


@pytest.fixture()
def fresh_synthetic_data_dir(tmp_path: Path) -> Path:
    """A private copy a test may damage (truncate, corrupt, delete files)."""
    return make_synthetic_mnist(tmp_path / "data")


def tiny_config(**overrides):
    """A small, fast config for tests: 600 synthetic images train in about a second."""
    # No shift augmentation: the synthetic classes are coded by bar position, 2 px apart.
    # A short weight-average horizon: a tiny run takes only ~10 steps per epoch. No printed digits:
    # 2,700 of them would outnumber the 500 synthetic training images.
    base = dict(
        epochs=2,
        batch_size=50,
        val_size=100,
        hidden=16,
        threads=1,
        lr=1e-2,
        augment_shift=0,
        ema_decay=0.5,
        printed_digits=0,
    )
    base.update(overrides)
    return apply_overrides(preset_config("default"), base)


def cli_train(data_dir: Path, out: Path, *extra: str, epochs: int = 2) -> int:
    """`seqmnist train` in process on the synthetic data: a tiny model, quietly; ``extra`` flags
    go last (e.g. --no-plots). Returns the exit code. No printed digits (see tiny_config)."""
    from seqmnist.cli import main

    return main(
        ["train", "--data-dir", str(data_dir), "--no-download", "--out", str(out)]
        + ["--epochs", str(epochs), "--hidden", "8", "--batch-size", "50", "--val-size", "100"]
        + ["--threads", "1", "--printed-digits", "0", "--quiet", *extra]
    )


@pytest.fixture(scope="session")
def tiny_run(synthetic_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run directory trained on the synthetic data (do not modify it)."""
    from seqmnist.train import fit

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    fit(tiny_config(epochs=3), run_dir, data_dir=synthetic_data_dir, download=False, quiet=True)
    return run_dir


@pytest.fixture(scope="session")
def reference_run(synthetic_data_dir, tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run with dropout and two layers."""
    run_dir = tmp_path_factory.mktemp("train") / "reference"
    import torch

    from resume_helpers import RESUME_OVERRIDES, fit_tiny

    before = torch.get_num_threads()
    fit_tiny(synthetic_data_dir, tiny_config(**RESUME_OVERRIDES), run_dir)
    torch.set_num_threads(before)
    return run_dir


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The real MNIST root from $SEQMNIST_DATA.

    Missing data fails under CI=true, skips elsewhere.
    """
    root = os.environ.get(DATA_ENV_VAR)
    raw = Path(root) / "MNIST" / "raw" if root else None
    if raw is None or not all((raw / name).is_file() for name in RAW_FILES):
        message = (
            f"real MNIST not found: set ${DATA_ENV_VAR} to a folder holding MNIST/raw/ "
            f"(got {root!r})"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return Path(root)


@pytest.fixture(scope="session")
def real_run(real_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default-architecture model briefly trained on real MNIST (2 epochs, ~98 % test accuracy,
    ~15 s on 2 cores). Shared by every test that needs a real model; do not modify it."""
    from seqmnist.train import fit

    run_dir = tmp_path_factory.mktemp("runs") / "real"
    # One thread outside CI: on a shared 2-core machine, two processes with 2 OpenMP threads each
    # slow each other down many times over. CI runs tests one at a time and uses every core.
    threads = 0 if os.environ.get("CI") == "true" else 1
    config = apply_overrides(
        preset_config("default"), {"epochs": 2, "batch_size": 256, "threads": threads}
    )
    fit(config, run_dir, data_dir=real_data_dir, download=False, quiet=True)
    return run_dir


@pytest.fixture()
def torch_one_thread():
    """Run a test with one PyTorch thread (tiny tensors on a shared machine: far faster)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
