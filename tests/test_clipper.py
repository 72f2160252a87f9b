"""Tests for utils.loop.clipper.GradClipper."""

import math

import pytest
import torch
from torch import nn

from utils.loop.clipper import GradClipper


def _params_with_grads(scale=10.0, seed=0):
    """Three parameters with large random gradients, plus one without a gradient."""
    gen = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.zeros(shape)) for shape in [(4, 3), (3,), (2, 2, 2)]]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * scale
    no_grad = nn.Parameter(torch.zeros(5))
    return params, no_grad


def _global_norm(grads):
    return math.sqrt(sum(float(x) ** 2 for g in grads for x in g.flatten()))


def test_disabled_clipper_leaves_grads_unchanged():
    params, no_grad = _params_with_grads()
    before = [p.grad.clone() for p in params]
    clipper = GradClipper()
    assert not clipper.enabled
    assert clipper([*params, no_grad]) is None
    for p, g in zip(params, before, strict=True):
        assert torch.equal(p.grad, g)
    assert no_grad.grad is None


@pytest.mark.parametrize(("max_norm", "max_value"), [(1.0, None), (None, 1.0), (1.0, 1.0)])
def test_enabled_when_either_limit_is_set(max_norm, max_value):
    assert GradClipper(max_norm=max_norm, max_value=max_value).enabled


def test_value_clipping_bounds_every_element():
    params, no_grad = _params_with_grads()
    before = [p.grad.clone() for p in params]
    result = GradClipper(max_value=0.5)([*params, no_grad])
    assert result is None  # no norm measured without norm clipping
    for p, g in zip(params, before, strict=True):
        assert p.grad.abs().max() <= 0.5
        expected = torch.tensor([min(max(float(x), -0.5), 0.5) for x in g.flatten()])
        assert torch.equal(p.grad.flatten(), expected)
    assert no_grad.grad is None


def test_norm_clipping_rescales_to_max_norm_and_returns_pre_clip_norm():
    params, no_grad = _params_with_grads(scale=10.0)
    before = [p.grad.clone() for p in params]
    pre_norm = _global_norm(before)
    assert pre_norm > 1.0
    result = GradClipper(max_norm=1.0)([*params, no_grad])
    assert float(result) == pytest.approx(pre_norm, rel=1e-5)
    assert _global_norm([p.grad for p in params]) <= 1.0 + 1e-6
    # all gradients are scaled by one common factor, so directions are kept
    for p, g in zip(params, before, strict=True):
        assert torch.allclose(p.grad, g * (1.0 / pre_norm), rtol=1e-4, atol=1e-7)
    assert no_grad.grad is None


def test_norm_clipping_below_limit_changes_nothing():
    params, _ = _params_with_grads(scale=0.01)
    before = [p.grad.clone() for p in params]
    result = GradClipper(max_norm=100.0)(params)
    assert float(result) == pytest.approx(_global_norm(before), rel=1e-5)
    for p, g in zip(params, before, strict=True):
        assert torch.allclose(p.grad, g)


def test_value_clipping_runs_before_norm_clipping():
    params, _ = _params_with_grads(scale=10.0)
    clipped = [g.clamp(-0.1, 0.1) for g in (p.grad for p in params)]
    result = GradClipper(max_norm=0.2, max_value=0.1)(params)
    assert float(result) == pytest.approx(_global_norm(clipped), rel=1e-5)
    assert _global_norm([p.grad for p in params]) <= 0.2 + 1e-6


def test_accepts_a_generator_such_as_model_parameters():
    model = nn.Linear(3, 2)
    model.weight.grad = torch.full((2, 3), 10.0)  # bias has no grad
    result = GradClipper(max_norm=1.0)(model.parameters())
    assert float(result) == pytest.approx(math.sqrt(6 * 100.0), rel=1e-6)
    assert model.bias.grad is None
    assert _global_norm([model.weight.grad]) <= 1.0 + 1e-6
