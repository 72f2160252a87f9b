"""UNet++ (Zhou et al. 2018): a U-Net whose skips are nested, densely connected decoders."""

import argparse
from argparse import Namespace

import torch
from torch import Tensor, nn

from model.blocks import DoubleConv, Down, add_block_options, block_norm, match_size
from model.model_entry import register_model
from utils.cli import str2bool


def add_options(group: argparse._ArgumentGroup) -> None:
    """UNet++'s own option; ``--base_width`` it shares with UNet (``model/blocks.py``)."""
    group.add_argument(
        "--deep_supervision",
        type=str2bool,
        default=False,
        help="UNetpp: train every nested decoder output, predict with their mean",
    )


class UNetPP(nn.Module):
    """UNet++ returning logits ``(N, out_channels, H, W)`` for any ``H, W >= 2**depth``.

    Node ``X[i][j]`` (level ``i``, width ``base_width * 2**i``) is a DoubleConv over the
    concatenation of ``X[i][0..j-1]`` and the bilinearly upsampled ``X[i+1][j-1]``; ``X[i][0]``
    is the encoder. Without ``deep_supervision`` the output is the 1x1 head on ``X[0][depth]``.
    With it, each of ``X[0][1..depth]`` has its own head: training returns the list of those
    ``depth`` logits so every one can be supervised, evaluation returns their mean. ``norm``
    names the normalisation after each convolution (``batch`` or ``group``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_width: int = 32,
        depth: int = 4,
        deep_supervision: bool = False,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self.deep_supervision = deep_supervision
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.encoder = nn.ModuleList([DoubleConv(in_channels, widths[0], norm=norm)])
        self.encoder.extend(Down(widths[i - 1], widths[i], norm) for i in range(1, depth + 1))
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        # nested[i][j - 1] is node X[i][j]: j earlier nodes of its level plus one from below.
        self.nested = nn.ModuleList(
            nn.ModuleList(
                DoubleConv(j * widths[i] + widths[i + 1], widths[i], norm=norm)
                for j in range(1, depth - i + 1)
            )
            for i in range(depth)
        )
        num_heads = depth if deep_supervision else 1
        self.heads = nn.ModuleList(
            nn.Conv2d(widths[0], out_channels, kernel_size=1) for _ in range(num_heads)
        )

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        rows: list[list[Tensor]] = []
        for stage in self.encoder:
            x = stage(x)
            rows.append([x])
        # Column by column, so X[i+1][j-1] and X[i][0..j-1] exist before X[i][j] needs them.
        for j in range(1, self.depth + 1):
            for i in range(self.depth - j + 1):
                below = match_size(self.up(rows[i + 1][j - 1]), rows[i][0])
                rows[i].append(self.nested[i][j - 1](torch.cat([*rows[i], below], dim=1)))
        if not self.deep_supervision:
            return self.heads[0](rows[0][self.depth])
        logits = [head(node) for head, node in zip(self.heads, rows[0][1:], strict=True)]
        if self.training:
            return logits
        return torch.stack(logits).mean(dim=0)


@register_model("UNetpp", options=(add_block_options, add_options), per_pixel=True)
def build_unetpp(opt: Namespace, input_shape: tuple[int, ...], num_outputs: int) -> UNetPP:
    """UNet++ for images of ``input_shape`` with ``num_outputs`` logits per pixel."""
    return UNetPP(
        input_shape[0],
        num_outputs,
        opt.base_width,
        deep_supervision=opt.deep_supervision,
        norm=block_norm(opt),
    )
