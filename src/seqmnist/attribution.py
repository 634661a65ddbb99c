"""Integrated gradients (Captum) of one digit's output over the model's input, from a baseline
that is a blank image in the model's input space: (0 - 0.1307) / 0.3081 per pixel for a
normalising recipe, 0 for the article's ToTensor scaling. Captum is the ``notebook`` extra and is
imported inside ``integrated_gradients``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data import to_model_input
from .errors import ExplainError

# Integrated gradients: start with this many steps and double until the completeness gap
# (Captum's delta) is under IG_TOLERANCE of |F(image) - F(baseline)|, up to IG_MAX_STEPS.
IG_START_STEPS = 32
IG_MAX_STEPS = 1024
IG_TOLERANCE = 0.05
# Below this |gap| the output barely moves (an untrained model): 5 % of it would be float
# noise that no number of steps meets, so the tolerance is 5 % of this much instead.
IG_MIN_GAP = 1e-3


def blank_baseline(normalize: bool, device: Any = "cpu") -> torch.Tensor:
    """A blank (all-black) image in the model's input space, (1, 28, 28): the pixel value 0
    after the run's normalisation ((0 - 0.1307) / 0.3081 = -0.4242 when it standardises)."""
    return to_model_input(torch.zeros(1, 28, 28, dtype=torch.uint8, device=device), normalize)


@dataclass
class Attribution:
    """Integrated gradients of one digit's output over the model's input."""

    pixels: np.ndarray  # (28, 28): each pixel's share of output(image) - output(baseline)
    target: int  # the digit whose output is explained (the prediction by default)
    delta: float  # Captum's convergence delta: sum(pixels) - (output(image) - output(baseline))
    gap: float  # output(image) - output(baseline)
    n_steps: int  # integration steps used (doubled until |delta| < 5 % of |gap|)


def integrated_gradients(
    model: Any, image: torch.Tensor, target: int, normalize: bool
) -> Attribution:
    """Captum's IntegratedGradients of ``model``'s output ``target`` for one model-input image
    (1, 28, 28), from ``blank_baseline``. n_steps doubles from 32 until Captum's delta is under
    5 % of |output(image) - output(baseline)| (of 1e-3 when the gap is smaller), or 1024 steps:
    then the delta says how far."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        raise ExplainError(
            "pixel attributions need Captum: pip install 'seqmnist[notebook]'"
        ) from None
    baseline = blank_baseline(normalize, image.device)
    with torch.no_grad():
        outputs = model(torch.cat([image, baseline]))[:, target]  # (2,)
    gap = float(outputs[0] - outputs[1])
    ig = IntegratedGradients(model)
    n_steps = IG_START_STEPS
    with torch.enable_grad():
        while True:
            attr, delta = ig.attribute(
                image, baseline, target=target, n_steps=n_steps, return_convergence_delta=True
            )
            tolerance = IG_TOLERANCE * max(abs(gap), IG_MIN_GAP)
            done = abs(float(delta)) < tolerance or n_steps >= IG_MAX_STEPS
            if done:
                break
            n_steps *= 2
    pixels = attr[0].detach().cpu().numpy()  # (28, 28)
    return Attribution(pixels, int(target), float(delta), gap, n_steps)
