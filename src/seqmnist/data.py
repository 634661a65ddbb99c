"""MNIST as uint8 tensors, a seeded validation split, and batches sliced from resident tensors.

Why tensors and not a DataLoader: MNIST is 47 MB as uint8. Converting one PIL image at a time
(the article's recipe) makes Python the bottleneck; here the whole split lives in one tensor on the
training device and a batch is an index slice of it, normalised on the fly.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import DataError

DATA_ENV_VAR = "SEQMNIST_DATA"
MNIST_MEAN = 0.1307  # mean pixel of the 60,000 training images, in [0, 1]
MNIST_STD = 0.3081

# file name -> (IDX magic number, shape of the stored array)
RAW_FILES = {
    "train-images-idx3-ubyte": (2051, (60_000, 28, 28)),
    "train-labels-idx1-ubyte": (2049, (60_000,)),
    "t10k-images-idx3-ubyte": (2051, (10_000, 28, 28)),
    "t10k-labels-idx1-ubyte": (2049, (10_000,)),
}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The ``--data-dir`` flag, else ``$SEQMNIST_DATA``, else ``./data``.

    The folder has torchvision's root layout.
    """
    if data_dir:
        return Path(data_dir)
    env = os.environ.get(DATA_ENV_VAR)
    return Path(env) if env else Path("data")


def raw_folder(root: Path) -> Path:
    return root / "MNIST" / "raw"


@dataclass
class Split:
    """One split of MNIST: ``images`` (N, 28, 28) uint8 and ``labels`` (N,) int64, same device."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def shard(self, rank: int, world_size: int) -> Split:
        """Every world_size-th image starting at rank.

        The shards are disjoint parts that together cover the split.
        """
        return Split(self.images[rank::world_size], self.labels[rank::world_size])


def _missing_message(root: Path, missing: list[str], reason: str, download_was_on: bool) -> str:
    retry = (
        "check the network and try again"
        if download_was_on
        else "allow downloading (drop --no-download)"
    )
    return (
        f"MNIST not found in {raw_folder(root)} ({reason}); missing {', '.join(missing)}. "
        f"Put the four files {', '.join(RAW_FILES)} there, or point --data-dir / ${DATA_ENV_VAR} "
        f"at a folder that holds MNIST/raw/, or {retry}"
    )


def _one_line(exc: BaseException) -> str:
    """An exception's text folded onto one line (torchvision's download errors span several)."""
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else text or type(exc).__name__


def _check_idx_file(path: Path, magic: int, shape: tuple[int, ...], expect_count: bool) -> None:
    """Refuse a truncated or corrupt IDX file with a message naming it (before torchvision reads
    it): the header's magic number and dimensions, then the file size they imply."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            header = f.read(4 + 4 * len(shape))
    except OSError as exc:
        raise DataError(f"cannot read MNIST file {path}: {exc.strerror or exc}") from None
    fix = "delete it so it is downloaded again, or replace it with the original file"
    if len(header) < 4 + 4 * len(shape):
        raise DataError(f"MNIST file {path} is truncated ({size} bytes): {fix}")
    found_magic, *dims = struct.unpack(f">{1 + len(shape)}i", header)
    count_ok = dims[0] >= 0 and (not expect_count or dims[0] == shape[0])
    if found_magic != magic or tuple(dims[1:]) != shape[1:] or not count_ok:
        raise DataError(
            f"MNIST file {path} is corrupt (header magic {found_magic}, dims {dims}; "
            f"expected magic {magic}, dims {list(shape)}): {fix}"
        )
    expected = len(header) + dims[0] * (1 if len(shape) == 1 else shape[1] * shape[2])
    if size != expected:
        raise DataError(
            f"MNIST file {path} is truncated or padded ({size} bytes, expected {expected}): {fix}"
        )


def load_mnist(
    data_dir: str | os.PathLike | None = None, *, train: bool, download: bool = True
) -> Split:
    """Read MNIST's training (60,000) or test (10,000) images through torchvision.

    Downloads only when files are missing and ``download`` is true. Errors are ``DataError``s
    naming the folder or file; the data directory is never written unless downloading.
    """
    from torchvision.datasets import MNIST  # heavy import, only when data is needed

    root = resolve_data_dir(data_dir)
    prefix = "train" if train else "t10k"
    names = [n for n in RAW_FILES if n.startswith(prefix)]
    # torchvision's MNIST refuses to read either split unless all four files are present.
    missing = [n for n in RAW_FILES if not (raw_folder(root) / n).is_file()]
    if missing:
        if not download:
            reason = "downloading is off"
            raise DataError(_missing_message(root, missing, reason, download_was_on=False))
        try:
            MNIST(root=str(root), train=train, download=True)
        except Exception as exc:  # network errors come in many types; all mean the same here
            reason = f"download failed: {_one_line(exc)}"
            raise DataError(_missing_message(root, missing, reason, download_was_on=True)) from None
    for name in names:
        magic, shape = RAW_FILES[name]
        # Synthetic test files may hold fewer images; only the real file sizes are fixed.
        _check_idx_file(raw_folder(root) / name, magic, shape, expect_count=False)
    try:
        dataset = MNIST(root=str(root), train=train, download=False)
    except Exception as exc:
        raise DataError(f"cannot read MNIST from {raw_folder(root)}: {_one_line(exc)}") from None
    images = dataset.data.to(torch.uint8).contiguous()  # (N, 28, 28)
    labels = dataset.targets.to(torch.int64).contiguous()  # (N,)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"MNIST files in {raw_folder(root)} disagree: {images.shape[0]} images but "
            f"{labels.shape[0]} labels for the {'training' if train else 'test'} split"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"MNIST labels in {raw_folder(root)} are corrupt: values outside 0-9")
    return Split(images, labels)


def split_train_val(full: Split, val_size: int, seed: int) -> tuple[Split, Split]:
    """Hold ``val_size`` images out of the training set by a seeded permutation."""
    n = len(full)
    if val_size >= n:
        raise DataError(
            f"--val-size {val_size} leaves no training images (the training set has {n})"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    return (
        Split(full.images[train_idx], full.labels[train_idx]),
        Split(full.images[val_idx], full.labels[val_idx]),
    )


def train_subset(train: Split, size: int, seed: int) -> Split:
    """A seeded random subset of ``size`` images of ``train`` (``--train-size``), in the order
    the permutation draws them; ``size`` 0 or at least ``len(train)`` keeps all of it.

    The permutation depends only on ``seed`` (its own stream, not the validation split's), so a
    resumed run trains on exactly the images it started with.
    """
    if size <= 0 or size >= len(train):
        return train
    generator = torch.Generator().manual_seed(derived_seed(seed, 0, stream=2))
    keep = torch.randperm(len(train), generator=generator)[:size]
    return Split(train.images[keep], train.labels[keep])


def to_model_input(images_uint8: torch.Tensor, normalize: bool) -> torch.Tensor:
    """(B, 28, 28) uint8 -> (B, 28, 28) float32: scaled to [0, 1], then standardised if asked."""
    x = images_uint8.float().div_(255.0)
    if normalize:
        x.sub_(MNIST_MEAN).div_(MNIST_STD)
    return x


def derived_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A seed for one (run seed, epoch, stream) triple: distinct triples give distinct seeds in
    practice (unlike ``seed + epoch``, where seed 1 epoch 1 equals seed 0 epoch 2), and the result
    fits the 64 bits ``torch.Generator.manual_seed`` takes even for --seed near 2**63."""
    return (seed * 1_000_003 + epoch * 1009 + stream) % 2**63


def epoch_permutation(
    n: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """This rank's sample order for one epoch, with ``DistributedSampler`` semantics.

    The permutation depends only on (seed, epoch), so a resumed run shuffles exactly as an
    uninterrupted one. Under DDP the list is padded by wrapping to a multiple of ``world_size``
    and rank r takes every world_size-th index starting at r: disjoint shards of equal length.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, epoch)))
    if world_size > 1:
        total = -(-n // world_size) * world_size
        if total > n:
            perm = perm.repeat(-(-total // n))[:total]  # wraps more than once if n < world_size / 2
        perm = perm[rank:total:world_size]
    return perm


def iterate_batches(
    split: Split, batch_size: int, *, order: torch.Tensor | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images uint8 (B, 28, 28), labels (B,)) slices of a resident split.

    ``order`` is a permutation (on the CPU) for training; None reads in order (evaluation).
    The last batch may be smaller.
    """
    n = len(split) if order is None else int(order.numel())
    if order is not None:
        order = order.to(split.images.device)
    for start in range(0, n, batch_size):
        if order is None:
            yield split.images[start : start + batch_size], split.labels[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield split.images[idx], split.labels[idx]


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by its own random (dy, dx) in [-max_shift, max_shift], filling with 0.

    (B, 28, 28) uint8 -> (B, 28, 28) uint8. A cheap augmentation done on the training device by
    gathering from a zero-padded copy; ``generator`` (CPU) makes it reproducible per epoch.
    """
    if max_shift <= 0:
        return images
    b, h, w = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4)  # (B, H+2s, W+2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).to(images.device)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)  # (B, W)
    # One gather along each flattened padded image: 3x faster on the CPU than indexing with
    # three broadcast index tensors, and the same pixels.
    flat = rows[:, :, None] * padded.shape[2] + cols[:, None, :]  # (B, H, W)
    return padded.view(b, -1).gather(1, flat.view(b, -1)).view(b, h, w)


def sampling_grid(matrices: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``affine_grid`` for linear maps about the centre (no translation), as one matmul.

    (B, 2, 2) -> (B, H, W, 2): for each output pixel centre (x, y) in [-1, 1] coordinates
    (``align_corners=False``), the point ``matrices @ (x, y)`` that ``grid_sample`` reads. On the
    CPU, ``affine_grid`` runs one small matmul per image and took 0.9-1.4 ms for a batch of 192;
    this takes under 0.1 ms and agrees to float rounding.
    """
    xs = (torch.arange(w, device=matrices.device, dtype=matrices.dtype) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=matrices.device, dtype=matrices.dtype) * 2 + 1) / h - 1
    centres = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)], dim=-1)  # (H, W, 2)
    return torch.einsum("hwk,bjk->bhwj", centres, matrices)  # (B, H, W, 2)


def random_affine(
    images: torch.Tensor,
    max_degrees: float,
    max_zoom: float,
    generator: torch.Generator,
    max_shear: float = 0.0,
    elastic: float = 0.0,
) -> torch.Tensor:
    """Rotate each image about its centre by its own random angle in [-max_degrees, max_degrees],
    zoom it by its own factor in [1 - max_zoom, 1 + max_zoom], shear it by an angle in
    [-max_shear, max_shear] degrees (slanted handwriting, italic print) and distort it
    elastically (a smooth random displacement of about ``elastic`` pixels, as Simard et al.
    2003), bilinear, filling with 0.

    (B, 28, 28) uint8 -> (B, 28, 28) uint8, on the images' device; ``generator`` (CPU) makes it
    reproducible per epoch, like ``random_shift``. Shear and elastic draws come after the
    rotation's and zoom's, and only when on, so recipes without them draw what they always drew.
    """
    if max_degrees <= 0 and max_zoom <= 0 and max_shear <= 0 and elastic <= 0:
        return images
    b, h, w = images.shape
    draws = torch.rand((2, b), generator=generator, dtype=torch.float64) * 2 - 1  # (2, B)
    angle = torch.deg2rad(draws[0] * max_degrees)
    zoom = 1 + draws[1] * max_zoom
    # The grid maps each output pixel to where it reads in the input: the inverse of the
    # transform, i.e. rotate by -angle and scale by 1 / zoom.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    inverse = torch.stack([torch.stack([cos, -sin], dim=1), torch.stack([sin, cos], dim=1)], dim=1)
    if max_shear > 0:  # x reads from x - tan(shear) * y: rows slide sideways by their height
        shear = torch.rand(b, generator=generator, dtype=torch.float64) * 2 - 1
        slant = torch.eye(2, dtype=torch.float64).repeat(b, 1, 1)  # (B, 2, 2)
        slant[:, 0, 1] = -torch.tan(torch.deg2rad(shear * max_shear))
        inverse = inverse @ slant
    grid = sampling_grid(inverse.to(device=images.device, dtype=torch.float32), h, w)
    if elastic > 0:
        grid = grid + _elastic_field(b, h, w, elastic, generator).to(images.device)
    moved = torch.nn.functional.grid_sample(
        images[:, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (B, 1, H, W) float
    return moved[:, 0].round().clamp(0, 255).to(torch.uint8)


ELASTIC_KNOTS = 4  # the displacement is drawn on a 4 x 4 lattice and smoothly interpolated


@functools.cache
def _knot_profiles(size: int) -> torch.Tensor:
    """(ELASTIC_KNOTS, size): how much each lattice knot moves each pixel along one axis
    (bicubic, corners aligned). A 2-D field is then two small matmuls, far cheaper on the CPU
    than ``interpolate(mode="bicubic")`` on every image."""
    deltas = torch.eye(ELASTIC_KNOTS).view(ELASTIC_KNOTS, 1, ELASTIC_KNOTS, 1)
    deltas = deltas.expand(ELASTIC_KNOTS, 1, ELASTIC_KNOTS, 2)  # constant along the other axis
    out = torch.nn.functional.interpolate(
        deltas, size=(size, 2), mode="bicubic", align_corners=True
    )
    return out[:, 0, :, 0]


def _elastic_field(
    b: int, h: int, w: int, pixels: float, generator: torch.Generator
) -> torch.Tensor:
    """A smooth random displacement (B, H, W, 2) in grid units, about ``pixels`` px (its
    standard deviation at the knots): normal draws on a coarse lattice, interpolated."""
    knots = torch.randn((b, 2, ELASTIC_KNOTS, ELASTIC_KNOTS), generator=generator)
    field = torch.einsum("bcij,ih,jw->bhwc", knots, _knot_profiles(h), _knot_profiles(w))
    return field * (torch.tensor([2.0 / w, 2.0 / h]) * pixels)  # px -> grid units (x, y)


def _dilate3(x: torch.Tensor) -> torch.Tensor:
    """3 x 3 grey dilation of (B, H, W), separable: the maximum over each pixel's row
    neighbours, then over column neighbours (zero padding). 15x faster than ``max_pool2d`` on
    the CPU here."""
    p = torch.nn.functional.pad(x, (1, 1, 1, 1))  # (B, H + 2, W + 2)
    rows = torch.maximum(torch.maximum(p[:, :-2], p[:, 1:-1]), p[:, 2:])  # (B, H, W + 2)
    return torch.maximum(torch.maximum(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:])


def random_stroke(images: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Thicken or thin each image's strokes by its own fraction in [-amount, amount] of a 3 x 3
    grey dilation (positive) or erosion (negative): pens and fonts draw lines of many widths.

    (B, 28, 28) uint8 -> (B, 28, 28) uint8; blending towards the dilated or eroded image moves
    a stroke's edge by up to about ``amount`` px on each side. Both are separable (rows, then
    columns); the erosion is the dilation of the negative.
    """
    if amount <= 0:
        return images
    t = (torch.rand(images.shape[0], generator=generator) * 2 - 1) * amount
    t = t.to(images.device).view(-1, 1, 1)  # (B, 1, 1)
    dilated = _dilate3(images).float()  # (B, H, W)
    eroded = 255 - _dilate3(255 - images).float()
    x = images.float()
    target = torch.where(t > 0, dilated, eroded)
    return (x + t.abs() * (target - x)).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class Augmentation:
    """The training-time augmentation of a recipe: affine (and elastic) warp first, then the
    stroke width, then the shift."""

    shift: int = 0  # pixels
    rotate: float = 0.0  # degrees
    scale: float = 0.0  # zoom factor in [1 - scale, 1 + scale]
    shear: float = 0.0  # degrees
    elastic: float = 0.0  # pixels of smooth displacement
    stroke: float = 0.0  # fraction of a 3 x 3 dilation / erosion

    @classmethod
    def of(cls, config: Any) -> Augmentation:
        """The augmentation a ``TrainConfig`` asks for (its ``augment_*`` fields)."""
        return cls(
            shift=config.augment_shift,
            rotate=config.augment_rotate,
            scale=config.augment_scale,
            shear=config.augment_shear,
            elastic=config.augment_elastic,
            stroke=config.augment_stroke,
        )

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, 28, 28) uint8 -> (B, 28, 28) uint8; the same generator state gives the same batch."""
        images = random_affine(images, self.rotate, self.scale, generator, self.shear, self.elastic)
        images = random_stroke(images, self.stroke, generator)
        return random_shift(images, self.shift, generator)

    @property
    def enabled(self) -> bool:
        return bool(
            self.shift or self.rotate or self.scale or self.shear or self.elastic or self.stroke
        )
