"""U-Net with a torchvision encoder (``--model_type EncoderUNet --encoder resnet34``), from
scratch or from ImageNet weights (``--pretrained True``): the recipe of TernausNet (a VGG11
encoder) and of segmentation_models.pytorch.

The encoder is the classifier's feature stages; the decoder is the plain UNet's (bilinear
upsampling, skip connection, two conv-norm-ReLU layers, ``--base_width`` and ``--norm``
from ``model/blocks.py``), widening toward the encoder's deeper stages. Weights, grey
stems, the data's normalisation mapped to the weights' and ``head_names`` (here the
decoder, which ``--freeze_backbone`` and ``--backbone_lr_mult`` treat as the head) work as
for the torchvision classifiers (``model/torchvision_models.py``). The image is not resized:
masks are predicted at the input's own size, any size.
"""

import argparse
from argparse import Namespace

import torch.nn.functional as F
from torch import Tensor, nn

from model.blocks import DoubleConv, Up, add_block_options, block_norm, through_skips
from model.model_entry import register_model
from model.torchvision_models import (
    WeightsInput,
    construct,
    load_pretrained,
    pretrained_state,
    weights_input,
    with_channels,
)
from model.torchvision_models import add_options as add_weight_options
from utils.loop.export import Pixels

ENCODERS = ("resnet18", "resnet34", "resnet50", "vgg11")


def add_options(group: argparse._ArgumentGroup) -> None:
    """Which torchvision classifier's features encode."""
    group.add_argument(
        "--encoder",
        choices=ENCODERS,
        default="resnet34",
        help="EncoderUNet: the torchvision encoder (vgg11 is TernausNet's)",
    )


def out_channels(stage: nn.Module) -> int:
    """The channels a stage puts out: those of its last convolution or batch norm."""
    last = [m for m in stage.modules() if isinstance(m, nn.Conv2d | nn.BatchNorm2d)][-1]
    return last.out_channels if isinstance(last, nn.Conv2d) else last.num_features


def encoder_stages(name: str, net: nn.Module) -> tuple[list[nn.Module], int]:
    """The classifier's feature stages, each halving the resolution, and the reduction of the
    first: VGG's conv blocks (each after a pooling; the first at the image's size), or
    ResNet's stem (half the size) and its four layers."""
    if name.startswith("vgg"):
        stages, current = [], []
        for layer in net.features:
            if isinstance(layer, nn.MaxPool2d) and current:
                stages.append(nn.Sequential(*current))
                current = []
            current.append(layer)
        return stages, 1  # the last pooling, after the last block, is left out
    stem = nn.Sequential(net.conv1, net.bn1, net.relu)
    return [stem, nn.Sequential(net.maxpool, net.layer1), net.layer2, net.layer3, net.layer4], 2


class EncoderUNet(nn.Module):
    """Encoder stages of a torchvision classifier, a UNet decoder back up their skips, and a
    1x1 head: logits ``(N, num_outputs, H, W)`` at the input's size. Pretrained, ``input``
    maps the data's normalisation to the weights'. ``head_names``: everything but the
    encoder, for ``--freeze_backbone`` and ``--backbone_lr_mult``."""

    def __init__(
        self,
        stages: list[nn.Module],
        reduction: int,
        num_outputs: int,
        base_width: int,
        norm: str,
        weights: WeightsInput | None,
    ) -> None:
        super().__init__()
        self.input = weights if weights is not None else nn.Identity()
        self.encoder = nn.ModuleList(stages)
        widths = [out_channels(stage) for stage in stages]
        self.decoder = nn.ModuleList()
        below = widths[-1]
        for level in reversed(range(len(widths) - 1)):
            width = base_width * 2**level
            self.decoder.append(Up(below, widths[level], width, True, norm))
            below = width
        # ResNet's first stage is at half the size: one more block, at the input's size.
        self.full_size = DoubleConv(below, base_width, norm=norm) if reduction > 1 else None
        self.head = nn.Conv2d(base_width, num_outputs, kernel_size=1)
        self.head_names = frozenset(
            name for name, _ in self.named_parameters() if not name.startswith("encoder.")
        )

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        x = through_skips(self.input(x), self.encoder, self.decoder)
        if self.full_size is not None:
            x = self.full_size(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        return self.head(x)


@register_model(
    "EncoderUNet",
    options=(add_options, add_weight_options, add_block_options),
    per_pixel=True,
    pixels=True,
)
def build_encoder_unet(
    opt: Namespace, input_shape: tuple[int, ...], num_outputs: int, pixels: Pixels | None = None
) -> EncoderUNet:
    """A UNet on ``opt.encoder``'s features, pretrained where the options ask and ``pixels``
    (the data's preprocessing) is given; without it the weights come from a checkpoint."""
    name, channels = opt.encoder, input_shape[0]
    pretrained = bool(opt.pretrained or opt.weights)
    net = construct(name, 1000, pretrained)
    with_channels(net, channels)
    weights = None
    if pretrained:
        if pixels is not None:  # training: start from the weights (ImageNet's classes fit)
            load_pretrained(net, *pretrained_state(name, opt), head=set())
        weights = weights_input(name, channels, pixels, size=False)
    stages, reduction = encoder_stages(name, net)
    return EncoderUNet(stages, reduction, num_outputs, opt.base_width, block_norm(opt), weights)
