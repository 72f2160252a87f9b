"""Optimizer factory selected by ``--optimizer``.

On a GPU, Adam and AdamW run fused: one kernel updates every parameter, where the default
implementation launches a few per parameter tensor (the same update, in a different order of
float operations).
"""

from argparse import Namespace
from collections.abc import Callable

import torch
from torch import nn

from utils.registry import lookup

OptimizerFactory = Callable[[list[nn.Parameter], Namespace, bool], torch.optim.Optimizer]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "sgd": lambda params, opt, fused: torch.optim.SGD(
        params,
        lr=opt.lr,
        momentum=opt.momentum,
        weight_decay=opt.weight_decay,
        nesterov=opt.momentum > 0,  # torch refuses Nesterov without momentum
    ),
    "adam": lambda params, opt, fused: torch.optim.Adam(
        params, lr=opt.lr, weight_decay=opt.weight_decay, fused=fused or None
    ),
    "adamw": lambda params, opt, fused: torch.optim.AdamW(
        params, lr=opt.lr, weight_decay=opt.weight_decay, fused=fused or None
    ),
}


def build_optimizer(model: nn.Module, opt: Namespace) -> torch.optim.Optimizer:
    """Build the optimizer named by ``opt.optimizer`` over the model's trainable parameters,
    fused where they all live on a GPU."""
    factory = lookup(OPTIMIZERS, opt.optimizer, "optimizer")
    params = [p for p in model.parameters() if p.requires_grad]
    return factory(params, opt, bool(params) and all(p.is_cuda for p in params))


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
