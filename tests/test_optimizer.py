"""Tests for utils.loop.optimizer.build_optimizer."""

from argparse import Namespace

import pytest
import torch
from torch import nn

from utils.errors import UsageError
from utils.loop.optimizer import OPTIMIZERS, build_optimizer


def _opt(name, **overrides):
    values = {"optimizer": name, "lr": 0.03, "momentum": 0.8, "weight_decay": 0.0005}
    return Namespace(**{**values, **overrides})


def _model():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)],
)
def test_each_name_builds_its_class_with_lr_and_weight_decay(name, cls):
    model = _model()
    optimizer = build_optimizer(model, _opt(name))
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.03
    assert group["weight_decay"] == 0.0005
    assert {id(p) for p in group["params"]} == {id(p) for p in model.parameters()}


def test_sgd_uses_momentum_option():
    optimizer = build_optimizer(_model(), _opt("sgd", momentum=0.7))
    assert optimizer.param_groups[0]["momentum"] == 0.7


def test_sgd_with_zero_momentum_builds():
    """--momentum is a non_negative_float, so 0 is an accepted value and must work."""
    optimizer = build_optimizer(_model(), _opt("sgd", momentum=0.0))
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.param_groups[0]["momentum"] == 0.0


def test_unknown_name_lists_known_names():
    with pytest.raises(UsageError) as info:
        build_optimizer(_model(), _opt("rmsprop"))
    message = str(info.value)
    assert "rmsprop" in message
    assert message.endswith("known: " + ", ".join(sorted(OPTIMIZERS)))


def test_frozen_parameters_are_excluded():
    model = _model()
    for p in model[0].parameters():
        p.requires_grad_(False)
    optimizer = build_optimizer(model, _opt("adam"))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in params} == {id(model[2].weight), id(model[2].bias)}


def test_sgd_first_step_is_nesterov_with_the_given_lr():
    """Nesterov SGD's first step moves by lr * (1 + momentum) * grad (buffer = grad)."""
    model = nn.Linear(2, 1, bias=False)
    start = model.weight.detach().clone()
    model.weight.grad = torch.full_like(model.weight, 2.0)
    build_optimizer(model, _opt("sgd", momentum=0.9, weight_decay=0.0, lr=0.5)).step()
    assert torch.allclose(model.weight, start - 0.5 * (1 + 0.9) * 2.0)
