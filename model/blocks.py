"""Building blocks shared by the U-Net family: convolution pairs, down and up steps, and the
option both declare."""

import argparse
import math
from argparse import Namespace
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.cli import positive_int
from utils.registry import lookup


def add_block_options(group: argparse._ArgumentGroup) -> None:
    """``--base_width`` and ``--norm``, read by UNet and UNet++."""
    group.add_argument(
        "--base_width", type=positive_int, default=32, help="channels of the first conv block"
    )
    group.add_argument(
        "--norm",
        default="batch",
        choices=sorted(NORMS),
        help="normalisation after each conv: BatchNorm (evaluated with the mean statistics of "
        "the last epoch's batches), or GroupNorm over groups of 8 channels within each image "
        "(the same in training and evaluation)",
    )


def block_norm(opt: Namespace) -> str:
    """``--norm``; runs from before it existed used BatchNorm."""
    return getattr(opt, "norm", "batch")


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over groups of channels (8 groups where they divide the channels)."""
    return nn.GroupNorm(math.gcd(8, channels), channels)


class EpochBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose running statistics are a plain average of the batches' since the last
    ``reset_running_stats()``, which the trainer calls at each epoch's start: evaluation uses
    the mean over the last epoch.

    The usual exponential average starts from mean 0 and variance 1 and, with a few steps an
    epoch, is still far from the data after several epochs (a Dice of 0 in the first epochs
    on 48 Carvana images); the epoch's mean is right after the first. PyTorch's own
    ``momentum=None`` computes that mean with ``1 / float(num_batches_tracked)``, a read of a
    device scalar in every layer and step: a wait for a GPU, and a break in a compiled graph.
    Here the count stays on the device: the kernel writes the batch's statistics into scratch
    buffers (momentum 1), and the running ones move toward them by ``1 / count``. The
    checkpoint keys are BatchNorm2d's.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, momentum=None)
        self.register_buffer("batch_mean", torch.zeros(channels), persistent=False)
        self.register_buffer("batch_var", torch.zeros(channels), persistent=False)

    def reset_running_stats(self) -> None:
        super().reset_running_stats()
        if hasattr(self, "batch_var"):  # BatchNorm's __init__ calls this before they exist
            self.batch_mean.zero_()  # momentum 1 keeps 0 x the old value: never let it be inf
            self.batch_var.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)  # the running statistics, no read of the count
        self.num_batches_tracked.add_(1)
        out = F.batch_norm(
            x, self.batch_mean, self.batch_var, self.weight, self.bias, True, 1.0, self.eps
        )
        weight = 1 / self.num_batches_tracked
        self.running_mean.lerp_(self.batch_mean, weight)
        self.running_var.lerp_(self.batch_var, weight)
        return out


# The normalisation layers --norm names, each built from its number of channels.
NORMS: dict[str, Callable[[int], nn.Module]] = {"batch": EpochBatchNorm2d, "group": group_norm}


class DoubleConv(nn.Sequential):
    """``(3x3 conv -> norm -> ReLU) x 2`` keeping the spatial size.

    The convolutions have no bias because the normalisation right after them adds one.
    """

    def __init__(
        self, in_ch: int, out_ch: int, mid_ch: int | None = None, norm: str = "batch"
    ) -> None:
        mid_ch = out_ch if mid_ch is None else mid_ch
        layer = lookup(NORMS, norm, "norm")
        super().__init__(
            nn.Conv2d(in_ch, mid_ch, kernel_size=3, padding=1, bias=False),
            layer(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1, bias=False),
            layer(out_ch),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """One encoder step: halve the resolution with ``MaxPool2d(2)`` (floor), then DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "batch") -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_ch, out_ch, norm=norm))


def match_size(x: Tensor, ref: Tensor) -> Tensor:
    """Zero-pad or center-crop ``x`` to the height and width of ``ref``.

    Floor pooling drops the last row or column of an odd size, so a map upsampled by 2 can be
    smaller than the skip connection it joins; this makes every input size line up.
    """
    dh = ref.shape[-2] - x.shape[-2]
    dw = ref.shape[-1] - x.shape[-1]
    if dh == 0 and dw == 0:
        return x
    # Negative padding crops, so one call handles growing and shrinking on each axis.
    return F.pad(x, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))


class Up(nn.Module):
    """Decoder step: upsample ``x`` by 2, align to ``skip``, concat ``[skip, up]``, DoubleConv.

    Bilinear upsampling has no weights and keeps ``in_ch`` channels; the transposed convolution
    learns the upsampling and halves the channels. The first convolution narrows to the skip's
    width, the width of the level being decoded.
    """

    def __init__(
        self, in_ch: int, skip_ch: int, out_ch: int, bilinear: bool = True, norm: str = "batch"
    ) -> None:
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            up_ch = in_ch
        else:
            self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
            up_ch = in_ch // 2
        self.conv = DoubleConv(skip_ch + up_ch, out_ch, mid_ch=skip_ch, norm=norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        up = match_size(self.up(x), skip)
        return self.conv(torch.cat([skip, up], dim=1))


def through_skips(x: Tensor, encoder: nn.ModuleList, decoder: nn.ModuleList) -> Tensor:
    """A U-Net's pass: each encoder stage keeps its output, and each decoder step joins the
    output of the stage that mirrors it, deepest first."""
    skips = []
    for stage in encoder:
        x = stage(x)
        skips.append(x)
    x = skips.pop()
    for up in decoder:
        x = up(x, skips.pop())
    return x
