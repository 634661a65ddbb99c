"""Turn MNIST digits into realistic "photos" of handwriting, to test preprocessing end to end.

A photo here is an MNIST digit inverted to dark ink, scaled up 4-10x (bicubic, like a pen stroke),
placed off-centre on a larger sheet of paper with a shading gradient and sensor noise, in one of
several forms: grey, coloured RGB, a JPEG round trip, RGBA with transparent surroundings, or light
chalk on a dark board.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

KINDS = ("grey", "rgb", "jpeg", "rgba-sheet", "rgba-strokes", "chalkboard")


def _sheet(digit: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A scaled, shifted digit on a sheet.

    Returns (ink coverage (H, W) in [0, 1], paper shading (H, W) in [0, 1]).
    """
    scale = int(rng.integers(4, 11))
    size = 28 * scale
    ink = (
        np.asarray(
            Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32
        )
        / 255
    )
    height, width = int(size * rng.uniform(1.2, 2.0)), int(size * rng.uniform(1.2, 2.0))
    top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    coverage = np.zeros((height, width), np.float32)
    coverage[top : top + size, left : left + size] = np.clip(ink, 0, 1)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx / width + np.sin(angle) * yy / height  # about -1..1 across the sheet
    shading = 1.0 + rng.uniform(0.05, 0.15) * ramp  # +-5-15% light falloff
    return coverage, shading


def make_photo(digit: np.ndarray, kind: str, rng: np.random.Generator) -> Image.Image:
    """One (28, 28) uint8 MNIST digit -> a PIL image of the given ``kind`` (see KINDS)."""
    coverage, shading = _sheet(digit, rng)
    noise = rng.normal(0, rng.uniform(3, 10), coverage.shape + (1,))
    if kind == "chalkboard":
        board = np.array([40, 60, 45], np.float32) * shading[..., None]
        chalk = np.array([235, 235, 225], np.float32)
        rgb = board * (1 - coverage[..., None]) + chalk * coverage[..., None] + noise
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")

    paper = rng.uniform(190, 245) * shading[..., None] * np.array([1.0, 0.98, 0.93], np.float32)
    pen = np.array([rng.uniform(10, 60), rng.uniform(10, 60), rng.uniform(20, 120)], np.float32)
    rgb = paper * (1 - coverage[..., None]) + pen * coverage[..., None] + noise  # (H, W, 3)
    rgb8 = np.clip(rgb, 0, 255).astype(np.uint8)

    if kind == "grey":
        return Image.fromarray(rgb8, "RGB").convert("L")
    if kind == "rgb":
        return Image.fromarray(rgb8, "RGB")
    if kind == "jpeg":
        buffer = io.BytesIO()
        Image.fromarray(rgb8, "RGB").save(buffer, "JPEG", quality=int(rng.integers(60, 90)))
        return Image.open(io.BytesIO(buffer.getvalue()))
    if kind == "rgba-sheet":
        # An opaque sheet in the middle, fully transparent (and black) all around it.
        alpha = np.zeros(coverage.shape, np.uint8)
        rows, cols = np.flatnonzero(coverage.any(1)), np.flatnonzero(coverage.any(0))
        margin = 10
        alpha[
            max(0, rows[0] - margin) : rows[-1] + margin,
            max(0, cols[0] - margin) : cols[-1] + margin,
        ] = 255
        rgba = np.dstack([rgb8 * (alpha[..., None] > 0), alpha])
        return Image.fromarray(rgba.astype(np.uint8), "RGBA")
    if kind == "rgba-strokes":
        # A drawing app's export: pen colour everywhere, the strokes only in the alpha channel.
        rgba = np.dstack([np.broadcast_to(pen, coverage.shape + (3,)), coverage * 255])
        return Image.fromarray(rgba.astype(np.uint8), "RGBA")
    raise ValueError(f"unknown photo kind {kind!r}")
