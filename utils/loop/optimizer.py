"""Optimizer factory selected by ``--optimizer``.

On a GPU, Adam and AdamW run fused: one kernel updates every parameter, where the default
implementation launches a few per parameter tensor (the same update, in a different order of
float operations).
"""

from argparse import Namespace
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from utils.errors import UsageError
from utils.records.checkpoint import unwrap_model
from utils.registry import lookup

OptimizerFactory = Callable[[list[Any], Namespace, bool], torch.optim.Optimizer]

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
    fused where they all live on a GPU; in two groups, backbone and head, where
    ``--freeze_backbone`` or ``--backbone_lr_mult`` asks (see :func:`param_groups`)."""
    factory = lookup(OPTIMIZERS, opt.optimizer, "optimizer")
    params = [p for p in model.parameters() if p.requires_grad]
    fused = bool(params) and all(p.is_cuda for p in params)
    return factory(param_groups(model, opt, params), opt, fused)


def param_groups(model: nn.Module, opt: Namespace, params: list[nn.Parameter]) -> list[Any]:
    """``params`` as they are, or, for fine-tuning, a ``backbone`` group at ``--lr`` times
    ``--backbone_lr_mult`` (the scheduler holds it at 0 for ``--freeze_backbone`` epochs) and
    a ``head`` group: the parameters the model names in its ``head_names``."""
    freeze, mult = getattr(opt, "freeze_backbone", 0), getattr(opt, "backbone_lr_mult", 1.0)
    if not freeze and mult == 1.0:
        return params
    bare = unwrap_model(model)
    head = getattr(bare, "head_names", None)
    if head is None:
        raise UsageError(
            f"--freeze_backbone / --backbone_lr_mult: --model_type {opt.model_type} does not name "
            "its head (head_names), so its backbone is unknown; expected a model with a "
            "pretrained backbone, such as torchvision's (--model_type resnet18)"
        )
    trainable = {id(p) for p in params}
    named = [(name, p) for name, p in bare.named_parameters() if id(p) in trainable]
    return [
        {
            "params": [p for name, p in named if name not in head],
            "lr": opt.lr * mult,
            "name": "backbone",
        },
        {"params": [p for name, p in named if name in head], "name": "head"},
    ]


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
