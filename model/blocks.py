"""Building blocks shared by the U-Net family: convolution pairs, down and up steps, and the
option both declare."""

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.cli import positive_int


def add_width_option(group: argparse._ArgumentGroup) -> None:
    """``--base_width``, read by UNet and UNet++."""
    group.add_argument(
        "--base_width", type=positive_int, default=32, help="channels of the first conv block"
    )


class DoubleConv(nn.Sequential):
    """``(3x3 conv -> BatchNorm -> ReLU) x 2`` keeping the spatial size.

    The convolutions have no bias because the BatchNorm right after them adds one.
    """

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int | None = None) -> None:
        mid_ch = out_ch if mid_ch is None else mid_ch
        super().__init__(
            nn.Conv2d(in_ch, mid_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """One encoder step: halve the resolution with ``MaxPool2d(2)`` (floor), then DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(in_ch, out_ch))


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

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, bilinear: bool = True) -> None:
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            up_ch = in_ch
        else:
            self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
            up_ch = in_ch // 2
        self.conv = DoubleConv(skip_ch + up_ch, out_ch, mid_ch=skip_ch)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        up = match_size(self.up(x), skip)
        return self.conv(torch.cat([skip, up], dim=1))
