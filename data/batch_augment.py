"""The strengths of a :class:`PairAugment` applied to whole batches of images and masks, on
the device that holds them.

Per-sample augmentation in a ``Dataset`` costs a Python call, a few torchvision transforms and
a colour conversion per image, in DataLoader workers that a fast GPU outruns. Here a batch is
changed with a handful of ops whatever its size: each sample's flip, shift, zoom, rotation
and crop make one affine matrix, so one ``grid_sample`` moves every image (bilinear) and,
along the same grid, its mask (nearest, so it stays a mask), at the crop's size; each
sample's brightness, contrast, saturation and grayscale make one colour matrix, applied to
the images alone and clamped once. The order is fixed (geometric, recolour, hue, then the
colour matrix), one of the orders ``ColorJitter`` draws from. The parameters are drawn per
sample on the CPU from a generator the caller seeds (the trainer: with the seed, epoch, batch
and rank), so a resumed run draws the same numbers on any device.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from data.augment import PairAugment

# ITU-R 601 luma, the weights of torchvision's rgb_to_grayscale.
GRAY = (0.2989, 0.587, 0.114)


def batch_seed(seed: int, epoch: int, batch: int, rank: int = 0) -> int:
    """A seed for the draws of batch ``batch`` (0-based) of ``epoch`` on DDP rank ``rank``."""
    state = np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def uniform(generator: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return torch.empty(n, dtype=torch.float64).uniform_(low, high, generator=generator)


def chosen(generator: torch.Generator, n: int, p: float) -> Tensor:
    """Which of ``n`` samples a change with probability ``p`` applies to."""
    return torch.rand(n, dtype=torch.float64, generator=generator) < p


@dataclass(frozen=True)
class Draws:
    """Every random parameter of ``n`` samples, float64 on the CPU, one entry per sample.

    All are drawn whatever the strengths, in one order, so the flips of a sample (say) do not
    change when another change is switched off: ablations compare like with like.
    """

    flip: Tensor
    angle: Tensor  # radians
    scale: Tensor
    shift: Tensor  # [n, 2]: x and y, in normalised units (2 = the width or height)
    recolour: Tensor
    colour: Tensor  # [n, 3]: the colour a recoloured object blends toward
    kept: Tensor  # the share of its own colour a recoloured object keeps
    hue: Tensor
    brightness: Tensor
    contrast: Tensor
    saturation: Tensor
    gray: Tensor
    corner: Tensor  # [n, 2]: x and y of a crop's corner, as a share of the room for it

    @classmethod
    def draw(cls, aug: PairAugment, n: int, generator: torch.Generator) -> "Draws":
        """The ranges of torchvision's ``RandomHorizontalFlip``, ``RandomAffine``,
        ``ColorJitter`` and ``RandomGrayscale`` for ``aug``'s strengths."""

        def around_one(strength: float) -> Tensor:
            return uniform(generator, n, max(0.0, 1 - strength), 1 + strength)

        return cls(
            flip=chosen(generator, n, aug.hflip),
            angle=uniform(generator, n, -aug.rotate, aug.rotate) * (math.pi / 180),
            scale=uniform(generator, n, aug.scale_min, aug.scale_max),
            shift=torch.stack([uniform(generator, n, -aug.shift, aug.shift) * 2 for _ in "xy"], 1),
            recolour=chosen(generator, n, aug.recolor),
            colour=torch.rand(n, 3, dtype=torch.float64, generator=generator),
            kept=uniform(generator, n, 0.3, 0.8),
            hue=uniform(generator, n, -aug.hue, aug.hue),
            brightness=around_one(aug.brightness),
            contrast=around_one(aug.contrast),
            saturation=around_one(aug.saturation),
            gray=chosen(generator, n, aug.grayscale),
            corner=torch.rand(n, 2, dtype=torch.float64, generator=generator),
        )


def crop_windows(
    draws: Draws, crop: tuple[int, int], height: int, width: int
) -> tuple[Tensor, Tensor]:
    """Where each sample's ``crop`` (height, width) lies in its ``height x width`` image, in
    the image's normalised coordinates: the scale ``[2]`` and the centres ``[n, 2]``, x then y.
    Corners fall on whole pixels, so a crop with no other change copies pixels."""
    size = torch.tensor([crop[1], crop[0]], dtype=torch.float64)
    whole = torch.tensor([width, height], dtype=torch.float64)
    corner = (draws.corner * (whole - size + 1)).floor().minimum(whole - size)
    return size / whole, (2 * corner + size) / whole - 1


def affine_matrices(
    draws: Draws, height: int, width: int, crop: tuple[int, int] | None = None
) -> Tensor:
    """``[n, 2, 3]`` matrices for ``affine_grid``: where each output pixel samples its input.

    A sample is flipped, then rotated about its centre, zoomed and shifted, then cropped to
    ``crop`` (height, width). Coordinates are normalised to [-1, 1] on each axis, so the
    rotation is conjugated by the aspect ratio to stay a rotation in pixels.
    """
    n = len(draws.angle)
    cos, sin = draws.angle.cos(), draws.angle.sin()
    aspect = width / height
    # Output -> input: the inverse of "rotate, zoom, then shift", in normalised coordinates.
    rows = [torch.stack([cos, sin / aspect], dim=1), torch.stack([-sin * aspect, cos], dim=1)]
    inverse = torch.stack(rows, dim=1) / draws.scale.view(n, 1, 1)
    offset = -(inverse @ draws.shift.unsqueeze(2))
    theta = torch.cat([inverse, offset], dim=2)
    theta[draws.flip, 0] *= -1  # the input is read mirrored: x -> -x
    if crop is None:
        return theta
    # A crop's pixel u is the warped image's pixel scale * u + centre.
    scale, centre = crop_windows(draws, crop, height, width)
    linear, offset = theta[:, :, :2], theta[:, :, 2:]
    return torch.cat([linear * scale, linear @ centre.unsqueeze(2) + offset], dim=2)


@functools.cache
def pixel_centres(
    height: int, width: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """The x ``[1, 1, W]`` and y ``[1, H, 1]`` of the pixel centres in ``affine_grid``'s
    normalised coordinates (``align_corners=False``), taken from its identity grid."""
    identity = torch.eye(2, 3, device=device, dtype=dtype).unsqueeze(0)
    grid = F.affine_grid(identity, [1, 1, height, width], align_corners=False)
    return grid[0, 0, :, 0].view(1, 1, width), grid[0, :, 0, 1].view(1, height, 1)


def sampling_grid(theta: Tensor, height: int, width: int) -> Tensor:
    """``affine_grid(theta, [n, 1, height, width])``, made by broadcasting over the cached
    pixel centres: the same grid, where ``affine_grid`` multiplies each pixel's coordinates by
    its matrix with a batched matrix product of inner size 3, which took 30% of an augmented
    batch on a CPU."""
    x, y = pixel_centres(height, width, theta.device, theta.dtype)
    a, b, c, d, e, f = theta.view(-1, 6, 1, 1).unbind(1)  # each [n, 1, 1]
    grid = theta.new_empty(len(theta), height, width, 2)
    torch.add(a * x, b * y + c, out=grid[..., 0])
    torch.add(d * x, e * y + f, out=grid[..., 1])
    return grid


def colour_matrices(draws: Draws) -> tuple[Tensor, Tensor]:
    """Each image's colour change as a ``3x3`` matrix on RGB ``[n, 3, 3]`` and the factor of
    its mean gray level in the offset ``[n]``.

    Brightness ``b`` scales, contrast ``c`` blends with the image's mean gray level ``m``,
    saturation ``s`` blends with each pixel's gray, and grayscale replaces the colour with
    the gray: ``c b P S x + (1 - c) b m``, where ``S = s I + (1 - s) G`` and ``P`` is ``G``
    or ``I`` (``G`` maps a pixel to its gray on every channel).
    """
    n = len(draws.saturation)
    to_gray = torch.tensor(GRAY, dtype=torch.float64).expand(3, 3)
    blend = draws.saturation.view(n, 1, 1)
    matrix = blend * torch.eye(3, dtype=torch.float64) + (1 - blend) * to_gray
    matrix = torch.where(draws.gray.view(n, 1, 1), to_gray @ matrix, matrix)
    matrix = matrix * (draws.contrast * draws.brightness).view(n, 1, 1)
    return matrix, (1 - draws.contrast) * draws.brightness


def parameters_on(
    draws: Draws,
    height: int,
    width: int,
    device: torch.device,
    crop: tuple[int, int] | None = None,
) -> Tensor:
    """What the ops on the device need of each sample, ``[n, 21]`` float32 on ``device``: its
    affine matrix, ``crop`` included (columns 0-5), colour matrix (6-14), mean-gray factor
    (15), and whether it is recoloured (16), toward which colour (17-19), keeping how much
    (20). Made on the CPU and copied in one transfer, from pinned memory to a GPU, so the host
    does not wait for the device here."""
    n = len(draws.angle)
    matrix, factor = colour_matrices(draws)
    columns = [
        affine_matrices(draws, height, width, crop).reshape(n, 6),
        matrix.reshape(n, 9),
        factor.view(n, 1),
        draws.recolour.view(n, 1),
        draws.colour,
        draws.kept.view(n, 1),
    ]
    packed = torch.cat([column.to(torch.float64) for column in columns], dim=1).float()
    if device.type == "cuda":
        return packed.pin_memory().to(device, non_blocking=True)
    return packed.to(device)


@functools.cache
def gray_weights(device: torch.device, dtype: torch.dtype) -> Tensor:
    """The luma weights on ``device``, copied there once."""
    return torch.tensor(GRAY, dtype=dtype, device=device)


def augment_batch(
    aug: PairAugment, images: Tensor, masks: Tensor | None, generator: torch.Generator
) -> tuple[Tensor, Tensor | None]:
    """``aug`` on a float batch of ``images`` in [0, 1], ``[n, C, H, W]`` (RGB, or grey with
    ``C = 1``), and their float ``masks``, ``[n, 1, H, W]``, or None for a classifier's batch
    (whose labels no change touches), with per-sample parameters drawn from ``generator``.
    Both come back at ``aug.crop``'s size where it is set."""
    n, channels, height, width = images.shape
    draws = Draws.draw(aug, n, generator)
    params = parameters_on(draws, height, width, images.device, aug.crop).to(images.dtype)
    zoomed = (aug.scale_min, aug.scale_max) != (1, 1)
    if aug.crop is not None or aug.hflip or aug.shift or aug.rotate or zoomed:
        height, width = aug.crop or (height, width)
        grid = sampling_grid(params[:, :6].view(n, 2, 3), height, width)
        images = F.grid_sample(images, grid, mode="bilinear", align_corners=False)
        if masks is not None:
            masks = F.grid_sample(masks, grid, mode="nearest", align_corners=False)
    if aug.recolor:  # toward one random colour under the mask, keeping 30-80% of the pixel's
        if masks is None:
            raise ValueError("recolor needs masks: it recolours the masked object")
        recoloured = masks.bool() & (params[:, 16] > 0.5).view(n, 1, 1, 1)
        colour, kept = params[:, 17:20].view(n, 3, 1, 1), params[:, 20].view(n, 1, 1, 1)
        images = torch.where(recoloured, images * kept + colour * (1 - kept), images)
    if not (aug.hue or aug.brightness or aug.contrast or aug.saturation or aug.grayscale):
        return images, masks
    if channels == 1:  # a grey pixel is RGB (v, v, v): hue, saturation and gray keep it grey
        images = images.expand(n, 3, height, width)
    if aug.hue:
        from torchvision.transforms.v2 import functional as TF

        hues = draws.hue.tolist()
        images = torch.stack([TF.adjust_hue(x, h) for x, h in zip(images, hues, strict=True)])
    mean_gray = images.mean(dim=(2, 3)) @ gray_weights(images.device, images.dtype)
    pixels = torch.bmm(params[:, 6:15].view(n, 3, 3), images.reshape(n, 3, height * width))
    offset = (params[:, 15] * mean_gray).view(n, 1, 1)  # gray is linear: of the means
    images = pixels.add_(offset).clamp_(0, 1).view(n, 3, height, width)
    return (images[:, :1] if channels == 1 else images), masks
