"""Pick a model by ``--model_type``, and describe it for the log.

Adding a model: write ``model/<name>.py`` and add one line to ``MODELS`` below; the factory
gets the options, the input shape of one sample and the number of classes.
"""

import math
from argparse import Namespace
from collections.abc import Callable

from torch import nn

from model.small_cnn import SmallCNN
from model.unet import UNet
from model.unetpp import UNetPP
from model.vanilla import Vanilla
from utils.registry import lookup

ModelFactory = Callable[[Namespace, tuple[int, ...], int], nn.Module]

MODELS: dict[str, ModelFactory] = {
    "Vanilla": lambda opt, shape, classes: Vanilla(math.prod(shape), classes),
    "SmallCNN": lambda opt, shape, classes: SmallCNN(shape[0], classes),
    "UNet": lambda opt, shape, classes: UNet(
        shape[0], classes, base_width=opt.base_width, bilinear=opt.bilinear
    ),
    "UNetpp": lambda opt, shape, classes: UNetPP(
        shape[0], classes, base_width=opt.base_width, deep_supervision=opt.deep_supervision
    ),
}


def build_model(opt: Namespace, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build ``opt.model_type`` for samples of ``input_shape``; unknown names list known ones."""
    return lookup(MODELS, opt.model_type, "model_type")(opt, input_shape, num_classes)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def describe_model(model: nn.Module) -> str:
    """The module tree followed by its parameter counts, for the start of the log."""
    total, trainable = count_parameters(model)
    return f"{model}\nparameters: {total:,} ({trainable:,} trainable)"
