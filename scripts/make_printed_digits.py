"""Render the printed digits that the default recipe adds to its training split.

    .venv/bin/python scripts/make_printed_digits.py
    # rewrites src/seqmnist/samples/printed_digits.npz

MNIST holds only handwriting, so a model trained on it alone reads a serif "1" as 2, a closed "4"
as 9 and a bold "8" as 0 -- and which of those it gets wrong changes from seed to seed (issue 19).
This script renders every digit in the faces matplotlib ships that are *not* DejaVu (STIX General
in four styles; Computer Modern roman, bold, sans, italic and typewriter), each many times with its
own size, weight, width, slant and turn, dark on white, and reads each drawing through
``preprocess.to_mnist``: the very path a user's photo of a printed digit takes. The result is a
fixed bank of 28 x 28 images (uint8, MNIST form) with labels, checked into the package so that a
run never depends on the fonts a machine happens to have.

The faces the foreign-digit benchmark reads (every face ``fc-list`` finds: DejaVu and Liberation
here) are different families; ``benchmarks/bench_foreign.py`` leaves out any face whose family name
the bank records, so a bank face is never scored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import matplotlib
import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFont

from seqmnist.preprocess import to_mnist

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
# Faces with the ten digits in their usual shapes (cmmi10 has old-style figures; the STIXNonUni and
# STIXSiz* files have no digits at those code points; cmex10 / cmsy10 are symbol fonts).
FACES = (
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
)
SEED = 19  # the bank's random draws: sizes, weights, widths, slants, turns
VARIANTS = 30  # drawings per face and digit: 9 faces x 10 digits x 30 = 2,700 images
OUT = Path(__file__).resolve().parent.parent / "src" / "seqmnist" / "samples" / "printed_digits.npz"


def draw(label: int, face: str, rng: np.random.Generator) -> Image.Image:
    """One digit, dark on white: its own size, weight (Pillow's stroke), width, slant and turn."""
    size = int(rng.integers(48, 121))
    font = ImageFont.truetype(str(FONT_DIR / face), size)
    weight = int(rng.integers(0, max(1, size // 18) + 1))  # 0 = the face's own weight
    canvas = Image.new("L", (size * 3, size * 3), 255)
    ImageDraw.Draw(canvas).text(
        (size, size // 2), str(label), fill=0, font=font, stroke_width=weight, stroke_fill=0
    )
    width, slant = rng.uniform(0.8, 1.25), rng.uniform(-0.2, 0.2)
    # x_src = (x - slant * y) / width about the centre: condense/extend and lean the glyph.
    c = canvas.width / 2
    coeffs = (1 / width, -slant / width, c - c / width + slant * c / width, 0, 1, 0)
    canvas = canvas.transform(canvas.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC,
                              fillcolor=255)  # fmt: skip
    return canvas.rotate(rng.uniform(-5, 5), Image.Resampling.BICUBIC, fillcolor=255)


def main() -> None:
    rng = np.random.default_rng(SEED)
    images, labels, faces = [], [], []
    for face_index, face in enumerate(FACES):
        for label in range(10):
            for _ in range(VARIANTS):
                images.append(to_mnist(draw(label, face, rng)))
                labels.append(label)
                faces.append(face_index)
    families = sorted({ImageFont.truetype(str(FONT_DIR / f), 20).getname()[0] for f in FACES})
    pixels = np.stack(images).astype(np.uint8)
    np.savez_compressed(
        OUT,
        images=pixels,
        labels=np.array(labels, np.int64),
        face=np.array(faces, np.int64),
        faces=np.array(FACES),
        families=np.array(families),
        made_with=np.array(f"matplotlib {matplotlib.__version__}, Pillow {PIL.__version__}"),
    )
    digest = hashlib.sha256(pixels.tobytes()).hexdigest()[:16]
    print(f"{OUT}: {len(labels)} images from {len(FACES)} faces, pixels sha256 {digest}")


if __name__ == "__main__":
    main()
