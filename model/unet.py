"""U-Net (Ronneberger et al. 2015) for per-pixel prediction."""

import argparse
from argparse import Namespace

from torch import Tensor, nn

from model.blocks import DoubleConv, Down, Up, add_block_options, block_norm, through_skips
from model.model_entry import register_model
from utils.cli import positive_int, str2bool


def add_options(group: argparse._ArgumentGroup) -> None:
    """UNet's own options; ``--base_width`` it shares with UNet++ (``model/blocks.py``)."""
    group.add_argument(
        "--bilinear", type=str2bool, default=True, help="UNet: bilinear upsampling, else ConvT"
    )
    group.add_argument(
        "--depth",
        type=positive_int,
        default=4,
        help="UNet: poolings; each one more doubles the context a pixel's prediction sees",
    )


class UNet(nn.Module):
    """Encoder-decoder with skip connections, returning logits ``(N, out_channels, H, W)``.

    The encoder has widths ``base_width * 2**i`` for ``i = 0..depth`` with ``depth`` poolings;
    any ``H, W >= 2**depth`` works, odd sizes included. With ``bilinear`` the upsampling has no
    weights, so the bottleneck and each decoder step emit half their level's width: the
    upsampled map is then as wide as the skip it joins, which keeps the net lighter. ``norm``
    names the normalisation after each convolution (``batch`` or ``group``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_width: int = 64,
        depth: int = 4,
        bilinear: bool = True,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        widths = [base_width * 2**i for i in range(depth + 1)]
        factor = 2 if bilinear else 1
        self.encoder = nn.ModuleList([DoubleConv(in_channels, widths[0], norm=norm)])
        self.encoder.extend(Down(widths[i - 1], widths[i], norm) for i in range(1, depth))
        self.encoder.append(Down(widths[depth - 1], widths[depth] // factor, norm))
        self.decoder = nn.ModuleList()
        in_ch = widths[depth] // factor
        for i in reversed(range(depth)):
            out_ch = widths[i] // factor if i > 0 else widths[0]
            self.decoder.append(Up(in_ch, widths[i], out_ch, bilinear, norm))
            in_ch = out_ch
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        x = through_skips(x, self.encoder, self.decoder)
        return self.head(x)


@register_model("UNet", options=(add_block_options, add_options), per_pixel=True)
def build_unet(opt: Namespace, input_shape: tuple[int, ...], num_outputs: int) -> UNet:
    """UNet for images of ``input_shape`` with ``num_outputs`` logits per pixel."""
    return UNet(
        input_shape[0],
        num_outputs,
        opt.base_width,
        depth=opt.depth,
        bilinear=opt.bilinear,
        norm=block_norm(opt),
    )
