"""Optimizer factory selected by ``--optimizer``."""

from argparse import Namespace
from collections.abc import Callable, Iterable

import torch
from torch import nn

from utils.registry import lookup

OptimizerFactory = Callable[[Iterable[nn.Parameter], Namespace], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": lambda params, opt: torch.optim.SGD(
        params,
        lr=opt.lr,
        momentum=opt.momentum,
        weight_decay=opt.weight_decay,
        nesterov=opt.momentum > 0,  # torch refuses Nesterov without momentum
    ),
    "adam": lambda params, opt: torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay),
    "adamw": lambda params, opt: torch.optim.AdamW(
        params, lr=opt.lr, weight_decay=opt.weight_decay
    ),
}


def build_optimizer(model: nn.Module, opt: Namespace) -> torch.optim.Optimizer:
    """Build the optimizer named by ``opt.optimizer`` over the model's trainable parameters."""
    factory = lookup(OPTIMIZERS, opt.optimizer, "optimizer")
    return factory([p for p in model.parameters() if p.requires_grad], opt)
