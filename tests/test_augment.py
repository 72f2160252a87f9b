"""Tests for data.augment: batch flips, and image + mask augmentation seeded per sample."""

import dataclasses
from argparse import Namespace

import pytest
import torch

from data.augment import (
    AUGMENT_PRESETS,
    PairAugment,
    augment_from_options,
    random_hflip,
    sample_seed,
    seeded,
)
from utils.errors import UsageError


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


def picture(height: int = 64, width: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 RGB image of two bright blocks on black, and its mask: where the image is bright."""
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    image[:, 10:40, 12:50] = 255
    image[:, 30:56, 60:90] = 200
    return image, (image[:1] > 127).to(torch.uint8)


@pytest.mark.parametrize(
    "augment",
    [
        PairAugment(hflip=1.0),
        PairAugment(shift=0.2),
        PairAugment(scale_min=1.3, scale_max=1.3),
        PairAugment(rotate=30.0),
        PairAugment(hflip=0.5, shift=0.06, scale_min=0.91, scale_max=1.21, rotate=10.0),
    ],
    ids=["flip", "shift", "scale", "rotate", "carvana-geometry"],
)
def test_geometric_changes_move_the_mask_with_its_image(augment):
    image, mask = picture()
    for seed in range(5):
        with seeded(seed):
            out_image, out_mask = augment(image, mask)
        drawn = (out_image[:1] > 127).to(torch.uint8)  # the mask read off the moved image
        # Bilinear image, nearest mask: they may differ on the blocks' outlines, nowhere else.
        assert (drawn != out_mask).float().mean() < 0.02
        assert out_mask.dtype == torch.uint8 and set(out_mask.unique().tolist()) <= {0, 1}
    assert not torch.equal(out_mask, mask)  # it did move


def test_photometric_changes_leave_the_mask_alone():
    augment = PairAugment(brightness=0.5, contrast=0.5, saturation=0.3, hue=0.1, grayscale=1.0)
    image, mask = picture()
    image[0] = 90  # some colour, so that saturation, hue and grayscale have work to do
    with seeded(0):
        out_image, out_mask = augment(image, mask)
    assert torch.equal(out_mask, mask)
    assert not torch.equal(out_image, image)
    assert torch.equal(out_image[0], out_image[1])  # grayscale with probability 1


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_recolouring_changes_the_moved_object_alone(dtype):
    image, mask = picture()
    image = image if dtype == torch.uint8 else image / 255
    moved, recoloured = PairAugment(hflip=1.0), PairAugment(hflip=1.0, recolor=1.0)
    for seed in range(3):
        with seeded(seed):
            plain, plain_mask = moved(image, mask)
        with seeded(seed):
            out, out_mask = recoloured(image, mask)
        assert out.dtype == dtype and torch.equal(out_mask, plain_mask)
        inside = out_mask.bool().expand_as(out)
        assert torch.equal(out[~inside], plain[~inside])  # the background stays as it was
        assert (out[inside] != plain[inside]).float().mean() > 0.5  # the object does not
        # One colour blended into the whole object: each of its two shades becomes one colour,
        # and they stay apart (its shading is kept).
        values = plain[0][out_mask[0].bool()].unique()  # the two blocks' grey levels
        shades = [out[:, plain[0] == value].unique(dim=1) for value in values]
        assert [shade.shape[1] for shade in shades] == [1, 1]
        assert not torch.equal(shades[0], shades[1])
    assert torch.equal(PairAugment(hflip=1.0, recolor=0.0)(image, mask)[0], plain)


def test_draws_depend_on_the_seed_alone_and_leave_the_global_rng_alone():
    augment = AUGMENT_PRESETS["carvana"]
    image, mask = picture()
    before = torch.get_rng_state()
    with seeded(sample_seed(42, 3, 7)):
        first = augment(image, mask)
    torch.rand(5)  # whatever else happens in between
    with seeded(sample_seed(42, 3, 7)):
        again = augment(image, mask)
    with seeded(sample_seed(42, 4, 7)):
        next_epoch = augment(image, mask)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], next_epoch[0])
    torch.set_rng_state(before)
    with seeded(1):
        torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)


def test_sample_seeds_differ_by_seed_epoch_and_index():
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(3) for i in range(50)}
    assert len(seeds) == 3 * 3 * 50
    assert all(0 <= seed < 2**63 for seed in seeds)


def options(augment: str, **strengths) -> Namespace:
    names = [f"aug_{field.name}" for field in dataclasses.fields(PairAugment)]
    return Namespace(augment=augment, **{**dict.fromkeys(names), **strengths})


def test_options_take_the_preset_and_replace_the_strengths_given():
    assert augment_from_options(options("carvana")) == AUGMENT_PRESETS["carvana"]
    changed = augment_from_options(options("carvana", aug_rotate=3.0, aug_grayscale=0.0))
    assert changed.rotate == 3.0 and changed.grayscale == 0.0
    assert changed.brightness == AUGMENT_PRESETS["carvana"].brightness
    assert augment_from_options(options("none")) is None
    assert augment_from_options(options("none", aug_hflip=0.5)) == PairAugment(hflip=0.5)
    with pytest.raises(UsageError, match="unknown augment 'kaggle'; known: carvana, flip, none"):
        augment_from_options(options("kaggle"))
    with pytest.raises(UsageError, match=r"--aug_scale_min 1\.3 is above --aug_scale_max 1\.21"):
        augment_from_options(options("carvana", aug_scale_min=1.3))


def test_a_crop_is_a_window_of_the_image_and_its_mask():
    image, mask = picture()
    corners = set()
    for seed in range(6):
        with seeded(seed):
            out_image, out_mask = PairAugment(crop=(40, 50))(image, mask)
        assert out_image.shape == (3, 40, 50) and out_mask.shape == (1, 40, 50)
        found = [
            (top, left)
            for top in range(64 - 40 + 1)
            for left in range(96 - 50 + 1)
            if torch.equal(mask[:, top : top + 40, left : left + 50], out_mask)
            and torch.equal(image[:, top : top + 40, left : left + 50], out_image)
        ]
        assert found
        corners.add(found[0])
    assert len(corners) > 1  # drawn, not fixed
    with seeded(0):
        flipped, flipped_mask = PairAugment(hflip=1.0, crop=(64, 96))(image, mask)
    assert torch.equal(flipped, image.flip(-1)) and torch.equal(flipped_mask, mask.flip(-1))


def test_aug_crop_is_read_as_height_and_width():
    given = {f"aug_{field.name}": None for field in dataclasses.fields(PairAugment)}
    opt = Namespace(augment="flip", **{**given, "aug_crop": "24x32"})
    assert augment_from_options(opt) == PairAugment(hflip=0.5, crop=(24, 32))
