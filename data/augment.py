"""Augmentation whose random draws a checkpoint can replay.

Two places draw them. ``random_hflip`` works on a batch in the main process, from torch's CPU
generator that checkpoints save. ``PairAugment`` works on one image (and its mask) in a
``Dataset`` (so in DataLoader workers too), each sample under its own generator seeded from the
run's seed, the epoch and the sample's index (:func:`seeded`): whichever process draws them, a
resumed run draws the same numbers, and the global RNG is left as it was.
"""

import argparse
import contextlib
import dataclasses
import functools
from argparse import Namespace
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from data.image_files import height_width, image_size
from utils.cli import non_negative_float, number_type, positive_float, probability, zero_to_one
from utils.errors import UsageError
from utils.registry import lookup

if TYPE_CHECKING:
    from torchvision.transforms import v2


def random_hflip(*batches: Tensor, p: float = 0.5) -> tuple[Tensor, ...]:
    """Mirror the same randomly chosen samples of every batch along the last (width) axis.

    Pass an image batch and its masks together so each mask follows its image.
    """
    chosen = torch.rand(len(batches[0])) < p
    if batches[0].is_cuda:  # a copy from pinned memory: the host does not wait for the GPU
        chosen = chosen.pin_memory().to(batches[0].device, non_blocking=True)
    flipped = []
    for batch in batches:
        mask = chosen.to(batch.device).view(-1, *[1] * (batch.dim() - 1))
        flipped.append(torch.where(mask, batch.flip(-1), batch))
    return tuple(flipped)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A seed for the draws of sample ``index`` in ``epoch`` of a run seeded with ``seed``."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)
    return int(state[0]) >> 1  # a Python int: numpy 1.x cannot shift a uint64 by an int64


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside, torch's CPU generator is seeded with ``seed``; outside, its state is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


hue_shift = number_type(float, lambda v: 0 <= v <= 0.5, "a number in [0, 0.5]")


def strength(kind: Callable[[str], float], meaning: str, default: float = 0.0) -> Any:
    """A field of :class:`PairAugment`, with the type and help of its ``--aug_<name>`` flag."""
    return dataclasses.field(default=default, metadata={"type": kind, "help": meaning})


@dataclass(frozen=True)
class PairAugment:
    """Random changes to an image and its mask (or an image alone, for a classifier); a
    strength of 0 (a ``crop`` of None) switches one off.

    Geometric changes (flip, shift, zoom, rotation, then a crop) move the image and its mask
    together, the mask with nearest-neighbour sampling so it stays a mask; photometric ones
    (brightness, contrast, saturation, hue, grayscale) change the image alone. A crop makes
    the training images smaller than the validation and test images, which a fully
    convolutional segmentation model takes whole. Built on torchvision's transforms v2, which
    tell a ``tv_tensors.Mask`` from an image.
    """

    hflip: float = strength(probability, "probability of a horizontal flip")
    shift: float = strength(zero_to_one, "largest shift, as a share of the width and height")
    scale_min: float = strength(positive_float, "smallest zoom factor", 1.0)
    scale_max: float = strength(positive_float, "largest zoom factor", 1.0)
    rotate: float = strength(non_negative_float, "largest rotation, degrees either way")
    brightness: float = strength(non_negative_float, "brightness factor drawn from 1 -/+ this")
    contrast: float = strength(non_negative_float, "contrast factor drawn from 1 -/+ this")
    saturation: float = strength(non_negative_float, "saturation factor drawn from 1 -/+ this")
    hue: float = strength(hue_shift, "largest hue shift, in turns of the colour wheel")
    grayscale: float = strength(probability, "probability of turning the image gray")
    recolor: float = strength(
        probability, "probability of blending the masked object toward a random colour"
    )
    crop: tuple[int, int] | None = dataclasses.field(
        default=None,
        metadata={
            "type": image_size,
            "help": "N (NxN) or HxW: train on a random crop of this size of each image (a mask "
            "with its image), segmentation only; validation, test and prediction see it whole",
        },
    )

    def geometric(self) -> list["v2.Transform"]:
        """The torchvision transforms that move the image and its mask together."""
        from torchvision.transforms import v2  # imported by the datasets that augment only

        chosen: list[v2.Transform] = []
        if self.hflip:
            chosen.append(v2.RandomHorizontalFlip(self.hflip))
        scale = (self.scale_min, self.scale_max)
        if self.shift or self.rotate or scale != (1.0, 1.0):
            shift = (self.shift, self.shift)
            chosen.append(v2.RandomAffine(self.rotate, translate=shift, scale=scale))
        if self.crop is not None:
            chosen.append(v2.RandomCrop(self.crop))
        return chosen

    def photometric(self) -> list["v2.Transform"]:
        """The torchvision transforms of the whole image's colours; they leave masks alone."""
        from torchvision.transforms import v2

        chosen: list[v2.Transform] = []
        jitter = (self.brightness, self.contrast, self.saturation, self.hue)
        if any(jitter):
            chosen.append(v2.ColorJitter(*jitter))
        if self.grayscale:
            chosen.append(v2.RandomGrayscale(self.grayscale))
        return chosen

    @functools.cached_property
    def stages(self) -> tuple["v2.Compose", "v2.Compose"]:
        """The geometric and the photometric transforms, each as one (possibly empty) step."""
        from torchvision.transforms import v2

        stages = (self.geometric(), self.photometric())
        return tuple(v2.Compose(stage or [v2.Identity()]) for stage in stages)

    def __call__(self, image: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Augment a ``[C, H, W]`` image (uint8 is fastest) and its ``[1, H, W]`` mask, or
        None for a classifier's image.

        The object is recoloured after it has moved, so its new colour follows the moved mask,
        and before the photometric changes, which then apply to it as to the rest.
        """
        from torchvision import tv_tensors

        geometric, photometric = self.stages
        if mask is None:
            if self.recolor:
                raise ValueError("recolor needs masks: it recolours the masked object")
            image = geometric(tv_tensors.Image(image)).as_subclass(Tensor)
        else:
            image, mask = geometric(tv_tensors.Image(image), tv_tensors.Mask(mask))
            image, mask = image.as_subclass(Tensor), mask.as_subclass(Tensor)
            if self.recolor and torch.rand(()) < self.recolor:
                image = recolor_object(image, mask)
        return photometric(tv_tensors.Image(image)).as_subclass(Tensor), mask


def recolor_object(image: Tensor, mask: Tensor) -> Tensor:
    """Blend the pixels under ``mask`` toward one random colour, keeping 30-80% of their own.

    The object keeps its shading and outline but not its colour, so that colour alone cannot
    tell it from the background when the training objects are few and alike (Carvana's folds
    train on two dark cars; there it did not raise the Dice on a silver one, see the README).
    There is no torchvision transform for it because it needs the mask to recolour the image.
    """
    top = 1.0 if image.is_floating_point() else 255.0
    colour = torch.rand(image.shape[0], 1, 1) * top
    kept = torch.empty(()).uniform_(0.3, 0.8)
    blended = image * kept + colour * (1 - kept)
    if not image.is_floating_point():
        blended = blended.round().to(image.dtype)
    return torch.where(mask.bool(), blended, image)


# Named sets of strengths for --augment. "carvana" is the fixed set of the Carvana Kaggle
# winners: a flip; shift +-6%, scale 0.91-1.21, rotation +-10 degrees; brightness and contrast
# +-0.5, saturation +-0.3; grayscale one time in four.
AUGMENT_PRESETS: dict[str, PairAugment] = {
    "none": PairAugment(),
    "flip": PairAugment(hflip=0.5),
    "carvana": PairAugment(
        hflip=0.5,
        shift=0.06,
        scale_min=0.91,
        scale_max=1.21,
        rotate=10.0,
        brightness=0.5,
        contrast=0.5,
        saturation=0.3,
        grayscale=0.25,
    ),
}


def add_augment_options(group: argparse._ArgumentGroup) -> None:
    """``--augment PRESET`` and an ``--aug_<name>`` flag for each strength of
    :class:`PairAugment`, for a dataset that augments its training images (and masks) with it."""
    group.add_argument(
        "--augment",
        default="none",
        choices=sorted(AUGMENT_PRESETS),
        help="augmentation of the training split (a mask moves with its image); carvana: the "
        "Kaggle winners' set",
    )
    for field in dataclasses.fields(PairAugment):
        group.add_argument(
            f"--aug_{field.name}",
            type=field.metadata["type"],
            default=None,
            help=f"{field.metadata['help']}; default: the --augment preset's",
        )


def augment_from_options(opt: Namespace) -> PairAugment | None:
    """``--augment``'s preset with each strength given as ``--aug_<name>`` in its place; None
    when every strength is zero."""
    # Options a run from before they existed lacks count as not given.
    chosen = lookup(AUGMENT_PRESETS, getattr(opt, "augment", "none"), "augment")
    given = {
        field.name: getattr(opt, f"aug_{field.name}", None)
        for field in dataclasses.fields(PairAugment)
    }
    given = {name: value for name, value in given.items() if value is not None}
    if "crop" in given:  # given as --aug_crop's "HxW"
        given["crop"] = height_width(given["crop"])
    chosen = dataclasses.replace(chosen, **given)
    if chosen.scale_min > chosen.scale_max:
        raise UsageError(
            f"--aug_scale_min {chosen.scale_min} is above --aug_scale_max {chosen.scale_max}; "
            "expected a zoom range from the smaller factor to the larger"
        )
    return None if chosen == PairAugment() else chosen
