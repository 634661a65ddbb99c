"""MNIST loading, the seeded validation split, DistributedSampler-like shards, clear data errors."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import cli_train, write_idx_images, write_idx_labels
from seqmnist.cli import main
from seqmnist.data import (
    DATA_ENV_VAR,
    MNIST_MEAN,
    MNIST_STD,
    RAW_FILES,
    Augmentation,
    Split,
    epoch_permutation,
    iterate_batches,
    load_mnist,
    random_affine,
    random_shift,
    random_stroke,
    resolve_data_dir,
    sampling_grid,
    split_train_val,
    to_model_input,
)
from seqmnist.errors import DataError

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def raw(root: Path) -> Path:
    return root / "MNIST" / "raw"


# --- loading -----------------------------------------------------------------------------


def test_load_synthetic_files(synthetic_data_dir):
    train = load_mnist(synthetic_data_dir, train=True, download=False)
    test = load_mnist(synthetic_data_dir, train=False, download=False)
    assert train.images.shape == (600, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.shape == (600,) and train.labels.dtype == torch.int64
    assert len(train) == 600 and len(test) == 200
    assert set(train.labels.tolist()) == set(range(10))
    # the fixture's digit c has a bright vertical bar at column 3 + 2c
    c = int(train.labels[0])
    assert int(train.images[0, 10, 3 + 2 * c]) == 255


def test_load_never_writes_the_data_dir(synthetic_data_dir):
    before = sorted(p.relative_to(synthetic_data_dir) for p in synthetic_data_dir.rglob("*"))
    load_mnist(synthetic_data_dir, train=True, download=False)
    after = sorted(p.relative_to(synthetic_data_dir) for p in synthetic_data_dir.rglob("*"))
    assert before == after


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV_VAR, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv(DATA_ENV_VAR)
    assert resolve_data_dir(None) == Path("data")


def test_to_model_input_scaling():
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    assert torch.allclose(to_model_input(images, normalize=False), torch.tensor([[[0.0, 1.0]]]))
    expected = (torch.tensor([[[0.0, 1.0]]]) - MNIST_MEAN) / MNIST_STD
    assert torch.allclose(to_model_input(images, normalize=True), expected)
    assert images.tolist() == [[[0, 255]]]  # input untouched


# --- validation split ----------------------------------------------------------------------


def _split(n: int = 50) -> Split:
    return Split(
        torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(n, 28, 28).clone(),
        torch.arange(n) % 10,
    )


def test_split_sizes_disjoint_and_covering():
    full = _split(50)
    train, val = split_train_val(full, 12, seed=3)
    assert (len(train), len(val)) == (38, 12)
    ids_train = set(train.images[:, 0, 0].tolist())
    ids_val = set(val.images[:, 0, 0].tolist())
    assert not ids_train & ids_val
    assert ids_train | ids_val == set(range(50))
    # labels travel with their images
    assert torch.equal(train.labels, train.images[:, 0, 0].long() % 10)


def test_split_is_deterministic_and_seeded():
    full = _split(50)
    a = split_train_val(full, 12, seed=3)[1].images[:, 0, 0]
    b = split_train_val(full, 12, seed=3)[1].images[:, 0, 0]
    c = split_train_val(full, 12, seed=4)[1].images[:, 0, 0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_split_refuses_to_leave_no_training_data():
    with pytest.raises(DataError, match="--val-size 50"):
        split_train_val(_split(50), 50, seed=0)


# --- epoch permutation: DistributedSampler semantics ----------------------------------------


def test_single_process_permutation():
    p = epoch_permutation(10, seed=0, epoch=1)
    assert sorted(p.tolist()) == list(range(10))
    assert torch.equal(p, epoch_permutation(10, seed=0, epoch=1))
    assert not torch.equal(p, epoch_permutation(10, seed=0, epoch=2))
    assert not torch.equal(p, epoch_permutation(10, seed=1, epoch=1))


@pytest.mark.parametrize("n,world", [(10, 2), (11, 2), (10, 3), (7, 4), (3, 4), (1, 3), (2, 7)])
def test_shards_are_equal_disjoint_and_cover(n, world):
    shards = [epoch_permutation(n, seed=5, epoch=2, rank=r, world_size=world) for r in range(world)]
    per_rank = -(-n // world)
    assert all(s.numel() == per_rank for s in shards)
    together = torch.cat(shards).tolist()
    assert set(together) == set(range(n))  # every sample seen
    if n % world == 0:
        assert len(set(together)) == n  # disjoint when no padding is needed
    else:
        assert (
            len(together) - len(set(together)) == per_rank * world - n
        )  # only the padding repeats
    # interleaving the shards gives back the single-process permutation (then padding)
    full = epoch_permutation(n, seed=5, epoch=2)
    interleaved = torch.stack(shards, dim=1).reshape(-1)
    assert torch.equal(interleaved[:n], full)


def test_shards_depend_on_seed_and_epoch():
    a = epoch_permutation(100, seed=0, epoch=1, rank=1, world_size=2)
    assert torch.equal(a, epoch_permutation(100, seed=0, epoch=1, rank=1, world_size=2))
    assert not torch.equal(a, epoch_permutation(100, seed=0, epoch=2, rank=1, world_size=2))
    assert not torch.equal(a, epoch_permutation(100, seed=1, epoch=1, rank=1, world_size=2))


def test_iterate_batches():
    split = _split(10)
    batches = list(iterate_batches(split, 4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), split.labels)
    order = torch.tensor([9, 0, 5])
    ((images, labels),) = list(iterate_batches(split, 4, order=order))
    assert images[:, 0, 0].tolist() == [9, 0, 5] and labels.tolist() == [9, 0, 5]


# --- augmentation -------------------------------------------------------------------------


def test_random_shift_moves_each_image_within_the_limit():
    images = torch.zeros(64, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 12:16] = 200  # a block away from the borders
    shifted = random_shift(images, 3, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    assert torch.equal(
        shifted.sum(dim=(1, 2)), images.sum(dim=(1, 2))
    )  # nothing falls off the edge
    offsets = set()
    for img in shifted:
        rows, cols = img.nonzero(as_tuple=True)
        dy, dx = int(rows.min()) - 10, int(cols.min()) - 12
        assert abs(dy) <= 3 and abs(dx) <= 3
        assert torch.equal(img[10 + dy : 18 + dy, 12 + dx : 16 + dx], images[0, 10:18, 12:16])
        offsets.add((dy, dx))
    assert len(offsets) > 10  # each image draws its own shift
    again = random_shift(images, 3, torch.Generator().manual_seed(0))
    assert torch.equal(shifted, again)  # reproducible from the generator
    assert random_shift(images, 0, torch.Generator()) is images


def test_random_shift_crops_the_padded_image_at_the_drawn_offsets():
    """Each output is the 28x28 window of its zero-padded image at the (dy, dx) it drew."""
    images = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8, generator=torch.Generator())
    shifted = random_shift(images, 2, torch.Generator().manual_seed(7))
    offsets = torch.randint(0, 5, (2, 16), generator=torch.Generator().manual_seed(7))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i, (top, left) in enumerate(offsets.T.tolist()):
        assert torch.equal(shifted[i], padded[i, top : top + 28, left : left + 28])


@pytest.mark.parametrize("h,w", [(28, 28), (5, 7)])
def test_sampling_grid_is_affine_grid_without_translation(h, w):
    matrices = torch.randn(6, 2, 2, generator=torch.Generator().manual_seed(h))
    theta = torch.cat([matrices, torch.zeros(6, 2, 1)], dim=2)  # (B, 2, 3), no translation
    reference = torch.nn.functional.affine_grid(theta, [6, 1, h, w], align_corners=False)
    assert sampling_grid(matrices, h, w).shape == (6, h, w, 2)
    torch.testing.assert_close(sampling_grid(matrices, h, w), reference, rtol=0, atol=1e-5)


def _disc_and_bar() -> torch.Tensor:
    """(2, 28, 28) uint8: a centred disc (rotation leaves it as it is) and a horizontal bar."""
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disc = (((yy - 13.5) ** 2 + (xx - 13.5) ** 2) <= 36).to(torch.uint8) * 255
    bar = torch.zeros(28, 28, dtype=torch.uint8)
    bar[13:15, 4:24] = 255
    return torch.stack([disc, bar])


def test_random_affine_rotates_and_zooms_each_image_on_its_own():
    disc, bar = _disc_and_bar()
    generator = torch.Generator().manual_seed(0)
    rotated = random_affine(disc.expand(32, 28, 28), 30.0, 0.0, generator)
    assert rotated.shape == (32, 28, 28) and rotated.dtype == torch.uint8
    ink = rotated.float().sum(dim=(1, 2)) / disc.float().sum()
    assert ((ink - 1).abs() < 0.03).all()  # a disc turns into itself; no ink lost
    bars = random_affine(bar.expand(32, 28, 28), 30.0, 0.0, torch.Generator().manual_seed(0))
    rows_touched = (bars > 0).any(dim=2).sum(dim=1)  # a level bar covers 2 rows
    assert rows_touched.max() > 6 and len(set(rows_touched.tolist())) > 4  # each its own angle
    zoomed = random_affine(disc.expand(64, 28, 28), 0.0, 0.3, torch.Generator().manual_seed(0))
    ink = zoomed.float().sum(dim=(1, 2)) / disc.float().sum()
    assert ink.min() < 0.7 and ink.max() > 1.3 and (ink > 0.45).all() and (ink < 1.75).all()
    again = random_affine(disc.expand(64, 28, 28), 0.0, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(zoomed, again)  # reproducible from the generator
    images = disc[None]
    assert random_affine(images, 0.0, 0.0, torch.Generator()) is images


def test_augmentation_with_shifts_only_draws_exactly_what_random_shift_draws():
    """Recipes that only shift augment bit for bit as before rotations existed."""
    images = _disc_and_bar().repeat(8, 1, 1)
    shifted = random_shift(images, 2, torch.Generator().manual_seed(5))
    assert torch.equal(Augmentation(shift=2)(images, torch.Generator().manual_seed(5)), shifted)
    assert not Augmentation().enabled and Augmentation(rotate=5.0).enabled


def test_shear_slants_a_vertical_bar_by_its_own_angle():
    bar = torch.zeros(28, 28, dtype=torch.uint8)
    bar[4:24, 13:15] = 255  # vertical
    generator = torch.Generator().manual_seed(0)
    slanted = random_affine(bar.expand(32, 28, 28), 0.0, 0.0, generator, max_shear=30.0)
    cols_touched = (slanted > 0).any(dim=1).sum(dim=1)  # a vertical bar covers 2 columns
    assert cols_touched.max() > 8 and len(set(cols_touched.tolist())) > 4
    rows_touched = (slanted > 0).any(dim=2).sum(dim=1)
    assert (rows_touched >= 19).all()  # a shear keeps the height


def test_elastic_distortion_moves_ink_smoothly_and_reproducibly():
    disc, _ = _disc_and_bar()
    images = disc.expand(16, 28, 28)
    warped = random_affine(images, 0.0, 0.0, torch.Generator().manual_seed(1), elastic=1.5)
    again = random_affine(images, 0.0, 0.0, torch.Generator().manual_seed(1), elastic=1.5)
    assert torch.equal(warped, again)
    changed = (warped.int() - images.int()).abs().sum(dim=(1, 2))
    assert (changed > 0).all()  # every image its own field
    # A smooth field stretches and squeezes the disc (its area changes) but keeps it whole and
    # in place: it does not tear it or throw it across the image.
    ink = warped.float().sum(dim=(1, 2)) / disc.float().sum()
    assert ((ink > 0.4) & (ink < 1.8)).all()
    rows = torch.arange(28.0)[None, :, None]
    centre_y = (warped.float() * rows).sum(dim=(1, 2)) / warped.float().sum(dim=(1, 2))
    assert ((centre_y - 13.5).abs() < 3).all()


def test_stroke_width_thickens_and_thins_each_image_on_its_own():
    _, bar = _disc_and_bar()
    bar = bar.clone()
    bar[12:16, 4:24] = 255  # 4 px thick
    images = bar.expand(64, 28, 28)
    out = random_stroke(images, 1.0, torch.Generator().manual_seed(0))
    ink = out.float().sum(dim=(1, 2)) / bar.float().sum()
    assert ink.min() < 0.7 and ink.max() > 1.3  # some thinner, some thicker
    assert torch.equal(out, random_stroke(images, 1.0, torch.Generator().manual_seed(0)))
    assert random_stroke(images, 0.0, torch.Generator()) is images


def test_new_augmentations_off_draw_what_the_rotating_recipe_drew():
    """A config without shear, elastic or stroke (every existing one) augments bit for bit as
    before those fields existed."""
    images = _disc_and_bar().repeat(8, 1, 1)
    old = random_shift(
        random_affine(images, 10.0, 0.1, torch.Generator().manual_seed(5)),
        2,
        torch.Generator().manual_seed(5),
    )
    generator = torch.Generator().manual_seed(5)
    affine = random_affine(images, 10.0, 0.1, generator)
    expected = random_shift(affine, 2, generator)
    got = Augmentation(shift=2, rotate=10.0, scale=0.1)(images, torch.Generator().manual_seed(5))
    assert torch.equal(got, expected) and old.shape == got.shape
    assert Augmentation(stroke=0.3).enabled and Augmentation(shear=5.0).enabled


# --- bad data -----------------------------------------------------------------------------


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path / "nothing", train=True, download=False)
    msg = str(info.value)
    assert str(tmp_path / "nothing" / "MNIST" / "raw") in msg
    for name in RAW_FILES:
        assert name in msg
    assert "--data-dir" in msg and DATA_ENV_VAR in msg
    assert not (tmp_path / "nothing").exists()  # nothing created


def test_one_missing_file_is_named(fresh_synthetic_data_dir):
    (raw(fresh_synthetic_data_dir) / "t10k-labels-idx1-ubyte").unlink()
    for train in (False, True):  # torchvision needs all four files for either split
        with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
            load_mnist(fresh_synthetic_data_dir, train=train, download=False)


def test_truncated_images_file(fresh_synthetic_data_dir):
    path = raw(fresh_synthetic_data_dir) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated.*5000 bytes"):
        load_mnist(fresh_synthetic_data_dir, train=True, download=False)


def test_file_shorter_than_its_header(fresh_synthetic_data_dir):
    path = raw(fresh_synthetic_data_dir) / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:6])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is truncated"):
        load_mnist(fresh_synthetic_data_dir, train=False, download=False)


def test_empty_file(fresh_synthetic_data_dir):
    (raw(fresh_synthetic_data_dir) / "train-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte is truncated"):
        load_mnist(fresh_synthetic_data_dir, train=True, download=False)


def test_corrupt_magic(fresh_synthetic_data_dir):
    path = raw(fresh_synthetic_data_dir) / "train-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes(struct.pack(">i", 1234) + data[4:])
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte is corrupt.*magic 1234.*expected magic 2051"
    ):
        load_mnist(fresh_synthetic_data_dir, train=True, download=False)


def test_wrong_image_size(fresh_synthetic_data_dir):
    write_idx_images(
        raw(fresh_synthetic_data_dir) / "t10k-images-idx3-ubyte", np.zeros((5, 32, 32), np.uint8)
    )
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte is corrupt"):
        load_mnist(fresh_synthetic_data_dir, train=False, download=False)


def test_labels_and_images_disagree(fresh_synthetic_data_dir):
    write_idx_labels(raw(fresh_synthetic_data_dir) / "train-labels-idx1-ubyte", np.arange(590) % 10)
    with pytest.raises(DataError, match="600 images but 590 labels"):
        load_mnist(fresh_synthetic_data_dir, train=True, download=False)


def test_labels_out_of_range(fresh_synthetic_data_dir):
    write_idx_labels(raw(fresh_synthetic_data_dir) / "t10k-labels-idx1-ubyte", np.full(200, 12))
    with pytest.raises(DataError, match="outside 0-9"):
        load_mnist(fresh_synthetic_data_dir, train=False, download=False)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("seqmnist: error: ")
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "damage,expected",
    [
        ("missing", "t10k-images-idx3-ubyte"),
        ("truncated", "train-images-idx3-ubyte is truncated"),
        ("magic", "train-labels-idx1-ubyte is corrupt"),
        ("count", "600 images but 599 labels"),
    ],
)
def test_bad_data_through_the_cli(damage, expected, tmp_path, capsys):
    if damage == "missing":
        root = tmp_path / "empty"
        root.mkdir()
    else:
        from conftest import make_synthetic_mnist

        root = make_synthetic_mnist(tmp_path / "data")
        folder = raw(root)
        if damage == "truncated":
            p = folder / "train-images-idx3-ubyte"
            p.write_bytes(p.read_bytes()[:-100])
        elif damage == "magic":
            p = folder / "train-labels-idx1-ubyte"
            p.write_bytes(struct.pack(">i", 2051) + p.read_bytes()[4:])
        else:
            write_idx_labels(folder / "train-labels-idx1-ubyte", np.arange(599) % 10)
    code = cli_train(root, tmp_path / "run", "--no-plots", epochs=1)
    assert code == 1
    line = _one_error_line(capsys)
    assert expected in line
    if damage == "missing":
        assert str(raw(root)) in line
        for name in RAW_FILES:
            assert name in line


def test_failed_download_is_one_line_naming_the_folder(tmp_path, monkeypatch, capsys):
    """torchvision's download error spans several lines; the CLI still prints exactly one."""
    import torchvision.datasets

    class OfflineMNIST:
        def __init__(self, *args, **kwargs):
            raise RuntimeError(
                "Error downloading train-images-idx3-ubyte.gz:\nTried mirror 1\nTried mirror 2"
            )

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    code = main(
        [
            "train",
            "--data-dir",
            str(tmp_path / "empty"),
            "--out",
            str(tmp_path / "run"),
            "--epochs",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("seqmnist: error: MNIST not found in")
    assert str(tmp_path / "empty" / "MNIST" / "raw") in err
    assert (
        "download failed: Error downloading train-images-idx3-ubyte.gz: "
        "Tried mirror 1 Tried mirror 2" in err
    )
    assert "check the network" in err


def test_shards_are_disjoint_and_cover_the_split():
    from seqmnist.data import Split

    split = Split(torch.arange(7 * 4, dtype=torch.uint8).view(7, 2, 2), torch.arange(7))
    parts = [split.shard(rank, 3) for rank in range(3)]
    assert sorted(torch.cat([p.labels for p in parts]).tolist()) == list(range(7))
    assert [len(p) for p in parts] == [3, 2, 2]
    assert torch.equal(parts[1].images[0], split.images[1])
