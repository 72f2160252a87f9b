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


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Restore the per-parameter state (momenta, Adam moments) saved in a checkpoint, keeping
    the hyperparameters (lr, weight decay, momentum, betas...) that ``optimizer`` was built with.

    ``Optimizer.load_state_dict`` would put the saved hyperparameters back, so a run resumed
    with another ``--lr`` or ``--weight_decay`` would silently train with the old ones.
    """
    current = [
        {k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups
    ]
    optimizer.load_state_dict(state)
    for group, values in zip(optimizer.param_groups, current, strict=True):
        group.update(values)
