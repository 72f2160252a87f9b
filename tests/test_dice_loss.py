"""Tests for loss.dice_loss against per-image loops and torch's own BCE."""

import math

import pytest
import torch
from torch import nn

from loss.dice_loss import (
    BCEDiceLoss,
    CEDiceLoss,
    DiceLoss,
    soft_dice_loss,
    soft_dice_loss_over_classes,
)


def _random_batch(seed: int, n: int = 4, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, size, size, generator=gen) * 3
    targets = (torch.rand(n, 1, size, size, generator=gen) > 0.6).float()
    return logits, targets


def _loop_dice_loss(logits: torch.Tensor, targets: torch.Tensor, smooth: float) -> float:
    scores = []
    for logit, target in zip(logits, targets, strict=True):
        probs = [1 / (1 + math.exp(-v)) for v in logit.flatten().tolist()]
        truth = target.flatten().tolist()
        overlap = sum(p * t for p, t in zip(probs, truth, strict=True))
        scores.append((2 * overlap + smooth) / (sum(probs) + sum(truth) + smooth))
    return 1 - sum(scores) / len(scores)


def test_perfect_prediction_has_zero_loss():
    _, targets = _random_batch(0)
    logits = torch.where(targets > 0, 20.0, -20.0)
    assert soft_dice_loss(logits, targets).item() < 1e-6


def test_inverted_prediction_has_loss_near_one():
    _, targets = _random_batch(1, size=32)
    logits = torch.where(targets > 0, -20.0, 20.0)
    assert soft_dice_loss(logits, targets).item() > 0.99


def test_empty_mask_with_empty_prediction_is_finite_and_zero():
    targets = torch.zeros(3, 1, 8, 8)
    loss = soft_dice_loss(torch.full_like(targets, -20.0), targets)
    assert math.isfinite(loss.item())
    assert loss.item() < 1e-6


def test_empty_mask_with_positive_prediction_is_finite_and_penalised():
    targets = torch.zeros(3, 1, 8, 8)
    loss = soft_dice_loss(torch.full_like(targets, 5.0), targets)
    assert math.isfinite(loss.item())
    assert loss.item() > 0.9


@pytest.mark.parametrize("smooth", [1.0, 1e-3])
def test_matches_per_image_loop(smooth):
    logits, targets = _random_batch(2)
    expected = _loop_dice_loss(logits, targets, smooth)
    assert soft_dice_loss(logits, targets, smooth).item() == pytest.approx(expected, rel=1e-5)


def test_images_are_scored_separately():
    small, _ = _random_batch(3, n=1)
    small_target = torch.zeros_like(small)
    small_target[..., :2, :2] = 1
    big, big_target = _random_batch(4, n=1)
    pair = soft_dice_loss(torch.cat([small, big]), torch.cat([small_target, big_target]))
    alone = (soft_dice_loss(small, small_target) + soft_dice_loss(big, big_target)) / 2
    assert pair.item() == pytest.approx(alone.item(), rel=1e-6)


@pytest.mark.parametrize("empty", [False, True])
def test_gradient_flows(empty):
    logits, targets = _random_batch(5)
    if empty:
        targets = torch.zeros_like(targets)
    logits.requires_grad_(True)
    soft_dice_loss(logits, targets).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum().item() > 0


def test_dice_module_matches_function():
    logits, targets = _random_batch(6)
    assert torch.equal(DiceLoss(smooth=0.5)(logits, targets), soft_dice_loss(logits, targets, 0.5))


def test_rejects_mismatched_shapes_and_non_positive_smooth():
    logits, targets = _random_batch(7)
    with pytest.raises(ValueError, match="differ"):
        soft_dice_loss(logits, targets[:, 0])
    with pytest.raises(ValueError, match="smooth"):
        soft_dice_loss(logits, targets, smooth=0.0)


@pytest.mark.parametrize(("bce_weight", "dice_weight"), [(1.0, 1.0), (0.3, 2.5), (0.0, 1.0)])
def test_bce_dice_is_weighted_sum(bce_weight, dice_weight):
    logits, targets = _random_batch(8)
    expected = bce_weight * nn.functional.binary_cross_entropy_with_logits(
        logits, targets
    ) + dice_weight * torch.tensor(_loop_dice_loss(logits, targets, 0.7))
    loss = BCEDiceLoss(bce_weight, dice_weight, smooth=0.7)(logits, targets)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_bce_dice_gradient_flows():
    logits, targets = _random_batch(9)
    logits.requires_grad_(True)
    BCEDiceLoss(0.5, 1.5)(logits, targets).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum().item() > 0


def test_dice_over_classes_is_the_mean_of_each_class_scored_alone():
    """Each class against the rest, as its own soft Dice: the loss is one minus their mean."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 6, generator=generator)
    targets = torch.randint(0, 4, (3, 5, 6), generator=generator)
    probs = torch.softmax(logits, dim=1)
    per_class = []
    for k in range(4):
        truth = (targets == k).float().flatten(1)
        p = probs[:, k].flatten(1)
        per_class.append((2 * (p * truth).sum(1) + 1) / (p.sum(1) + truth.sum(1) + 1))
    expected = 1 - torch.stack(per_class).mean()
    torch.testing.assert_close(soft_dice_loss_over_classes(logits, targets), expected)


def test_dice_over_classes_of_a_confident_right_answer_is_zero():
    targets = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(1))
    logits = 50 * torch.nn.functional.one_hot(targets, 3).permute(0, 3, 1, 2).float()
    assert soft_dice_loss_over_classes(logits, targets).item() == pytest.approx(0, abs=1e-6)


def test_ce_dice_is_cross_entropy_plus_dice_of_the_masks_class_indices():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 4, 4, generator=generator, requires_grad=True)
    classes = torch.randint(0, 3, (2, 4, 4), generator=generator)
    loss = CEDiceLoss(ce_weight=0.5, dice_weight=2.0)(logits, classes[:, None].float())
    expected = 0.5 * nn.functional.cross_entropy(logits, classes) + 2.0 * (
        soft_dice_loss_over_classes(logits, classes)
    )
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
