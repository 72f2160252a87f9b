"""Pick a model by ``--model_type``, and describe it for the log.

Adding a model: write ``model/<name>.py`` and add one line to ``MODELS`` below; the factory
gets the options, the input shape of one sample and the number of classes. Options of the
model's own (``--bilinear``) are declared by an ``add_options(group)`` function beside it,
named in its line; the trainer's parser gathers them, so ``--help`` lists them and every
run's config.json records them.
"""

import argparse
import math
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from model import blocks, unet, unetpp
from model.small_cnn import SmallCNN
from model.unet import UNet
from model.unetpp import UNetPP
from model.vanilla import Vanilla
from utils.registry import OptionDeclarer, add_entry_options, lookup


def block_norm(opt: Namespace) -> str:
    """``--norm``; runs from before it existed used BatchNorm."""
    return getattr(opt, "norm", "batch")


ModelFactory = Callable[[Namespace, tuple[int, ...], int], nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A model's factory, and the declarers of the options it reads beyond the base ones."""

    build: ModelFactory
    options: tuple[OptionDeclarer, ...] = ()


MODELS: dict[str, ModelEntry] = {
    "Vanilla": ModelEntry(lambda opt, shape, classes: Vanilla(math.prod(shape), classes)),
    "SmallCNN": ModelEntry(lambda opt, shape, classes: SmallCNN(shape[0], classes)),
    "UNet": ModelEntry(
        lambda opt, shape, classes: UNet(
            shape[0],
            classes,
            opt.base_width,
            depth=opt.depth,
            bilinear=opt.bilinear,
            norm=block_norm(opt),
        ),
        (blocks.add_block_options, unet.add_options),
    ),
    "UNetpp": ModelEntry(
        lambda opt, shape, classes: UNetPP(
            shape[0],
            classes,
            opt.base_width,
            deep_supervision=opt.deep_supervision,
            norm=block_norm(opt),
        ),
        (blocks.add_block_options, unetpp.add_options),
    ),
}


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add every model's own options to ``parser``, one group per declarer."""
    add_entry_options(parser, "model", model_declarers())


def model_declarers() -> dict[str, tuple[OptionDeclarer, ...]]:
    """Each model's name -> the declarers of its own options."""
    return {name: entry.options for name, entry in MODELS.items()}


def build_model(opt: Namespace, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build ``opt.model_type`` for samples of ``input_shape``; unknown names list known ones."""
    return lookup(MODELS, opt.model_type, "model_type").build(opt, input_shape, num_classes)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def summarize_model(name: str, counts: tuple[int, int], input_shape: tuple[int, ...]) -> str:
    """One line for the terminal: the model's name, its :func:`count_parameters` and the
    input shape."""
    total, trainable = counts
    shape = "x".join(map(str, input_shape))
    return f"{name}: {total:,} parameters ({trainable:,} trainable), input {shape}"


def describe_model(model: nn.Module) -> str:
    """The module tree followed by its parameter counts, for the start of the log."""
    total, trainable = count_parameters(model)
    return f"{model}\nparameters: {total:,} ({trainable:,} trainable)"
