"""``--tta flip``: test-time augmentation by the mirror image, as the Carvana winners used it.

A prediction is the mean of the probabilities of the image and of its horizontal mirror; a
per-pixel output of the mirror is flipped back first, so each pixel averages with itself. The
mean is handed on as outputs (logits) whose activation gives it back (the log of a softmax's
mean, the logit of a sigmoid's), so everything that reads a model's outputs, metrics,
thresholds, upsampling and the prediction files, reads the averaged prediction unchanged.
"""

from collections.abc import Callable

import torch
from torch import Tensor

TTA_CHOICES = ("none", "flip")

# How a task's outputs become probabilities, and back. ``identity``: outputs that are not
# probabilities (regression) are averaged as they are.
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "identity": (lambda outputs: outputs, lambda mean: mean),
    "softmax": (
        lambda outputs: outputs.softmax(dim=1),
        lambda mean: mean.clamp_min(torch.finfo(mean.dtype).tiny).log(),
    ),
    # eps keeps a certain pixel finite: bilinear upsampling would turn an infinite logit
    # weighted by zero into NaN.
    "sigmoid": (torch.sigmoid, lambda mean: torch.logit(mean, eps=1e-7)),
}


def flip_average(
    run: Callable[[Tensor], Tensor], inputs: Tensor, activation: str, per_pixel: bool
) -> Tensor:
    """Outputs for ``inputs`` (N, C, H, W) whose ``activation`` is the mean of the
    probabilities ``run`` gives the images and their mirrors (per-pixel outputs flipped back)."""
    to_probabilities, to_outputs = ACTIVATIONS[activation]
    mirrored = run(inputs.flip(-1))
    if per_pixel:
        mirrored = mirrored.flip(-1)
    return to_outputs((to_probabilities(run(inputs)) + to_probabilities(mirrored)) / 2)
