"""Tests for utils.augment: batch flips that keep images and masks together."""

import pytest
import torch

from utils.augment import random_hflip


def test_flips_the_same_samples_of_every_batch():
    images = torch.randn(16, 3, 4, 5)
    masks = (images[:, :1] > 0).float()
    torch.manual_seed(0)
    out_images, out_masks = random_hflip(images, masks)
    flipped = [torch.equal(out_images[i], images[i].flip(-1)) for i in range(len(images))]
    for i, was_flipped in enumerate(flipped):
        assert torch.equal(out_images[i], images[i].flip(-1) if was_flipped else images[i])
        assert torch.equal(out_masks[i], masks[i].flip(-1) if was_flipped else masks[i])
    assert set(flipped) == {True, False}


def test_choice_comes_from_the_torch_rng():
    batch = torch.randn(64, 1, 2, 3)
    torch.manual_seed(7)
    (first,) = random_hflip(batch)
    torch.manual_seed(7)
    (second,) = random_hflip(batch)
    assert torch.equal(first, second)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_probability_bounds(p):
    batch = torch.randn(16, 3, 2, 5)
    (out,) = random_hflip(batch, p=p)
    assert torch.equal(out, batch.flip(-1) if p == 1.0 else batch)


def test_one_dimensional_width_axis_is_the_last():
    batch = torch.tensor([[1.0, 2.0, 3.0]])
    (out,) = random_hflip(batch, p=1.0)
    assert out.tolist() == [[3.0, 2.0, 1.0]]
