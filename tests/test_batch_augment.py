"""Tests for data.batch_augment: PairAugment on whole batches, per-sample parameters, masks
that follow their images, and the same draws as torchvision's transforms would make."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from data.augment import AUGMENT_PRESETS, PairAugment
from data.batch_augment import Draws, augment_batch, batch_seed, sampling_grid
from data.memory import MemoryLoader, TensorSplit
from data.sampler import ResumableSampler

CARVANA = AUGMENT_PRESETS["carvana"]
GEOMETRIC = PairAugment(hflip=0.5, shift=0.1, scale_min=0.8, scale_max=1.25, rotate=20)
PHOTOMETRIC = PairAugment(brightness=0.5, contrast=0.5, saturation=0.3, grayscale=0.25)


def blocks(n: int = 6, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    """RGB images of large flat blocks (8x8 blocks of 6x8 pixels), in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=generator)
    return F.interpolate(coarse, size=(height, width), mode="nearest")


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "aug",
    [
        PairAugment(shift=0.1),
        PairAugment(scale_min=0.8, scale_max=1.25),
        PairAugment(rotate=20),
        GEOMETRIC,
        dataclasses.replace(CARVANA, brightness=0, contrast=0, saturation=0, grayscale=0),
    ],
    ids=["shift", "zoom", "rotate", "all", "carvana-geometry"],
)
def test_a_mask_drawn_from_its_image_still_matches_after_the_warp(aug):
    """The mask is the image's red channel above 0.5; after the warp, the warped mask equals
    the warped image's red channel above 0.5, except where bilinear sampling blends two
    blocks at an edge, or a block with the zeros outside the image."""
    images = blocks()
    masks = (images[:, :1] > 0.5).float()
    warped, warped_masks = augment_batch(aug, images, masks, generator())
    redrawn = (warped[:, :1] > 0.5).float()
    edges = F.max_pool2d(warped_masks, 3, 1, 1) != -F.max_pool2d(-warped_masks, 3, 1, 1)
    ones, _ = augment_batch(aug, torch.ones_like(images), masks, generator())  # the same warps
    inside = -F.max_pool2d(-ones[:, :1], 3, 1, 1) > 1 - 1e-6
    checked = inside & ~edges
    checked[..., [0, -1], :] = checked[..., :, [0, -1]] = False  # edges may lie just outside
    assert torch.equal(redrawn[checked], warped_masks[checked])
    assert checked.float().mean() > 0.5  # the check covers most of the pixels
    assert set(warped_masks.unique().tolist()) <= {0.0, 1.0}  # nearest: still a mask
    moved = (warped_masks != masks).float().mean(dim=(1, 2, 3))
    assert (moved > 0.02).sum() >= len(moved) / 2  # the warps really moved the masks


@pytest.mark.parametrize(("height", "width"), [(48, 64), (7, 3)])
def test_the_sampling_grid_is_affine_grids(height, width):
    theta = torch.randn(5, 2, 3, generator=generator())
    expected = F.affine_grid(theta, [5, 1, height, width], align_corners=False)
    torch.testing.assert_close(sampling_grid(theta, height, width), expected, rtol=0, atol=1e-6)


def test_a_flip_mirrors_image_and_mask_exactly():
    images = blocks()
    masks = (images[:, :1] > 0.5).float()
    flipped, flipped_masks = augment_batch(PairAugment(hflip=1.0), images, masks, generator())
    torch.testing.assert_close(flipped, images.flip(-1), rtol=0, atol=1e-5)
    assert torch.equal(flipped_masks, masks.flip(-1))


def test_colour_changes_leave_the_masks_alone():
    images = blocks()
    masks = (images[:, :1] > 0.5).float()
    changed, same_masks = augment_batch(PHOTOMETRIC, images, masks, generator())
    assert same_masks is masks
    assert not torch.allclose(changed, images, atol=0.01)
    assert changed.min() >= 0 and changed.max() <= 1


@pytest.mark.parametrize("aug", [CARVANA, GEOMETRIC, PHOTOMETRIC], ids=["carvana", "geo", "colour"])
def test_each_sample_draws_its_own_parameters(aug):
    images = blocks(n=1).expand(8, -1, -1, -1).contiguous()
    masks = (images[:, :1] > 0.5).float()
    changed, _ = augment_batch(aug, images, masks, generator())
    flat = changed.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j]) for i in range(8) for j in range(i))


def test_the_same_seed_draws_the_same_and_another_seed_not():
    images = blocks()
    masks = (images[:, :1] > 0.5).float()
    first = augment_batch(CARVANA, images, masks, generator(1))
    again = augment_batch(CARVANA, images, masks, generator(1))
    other = augment_batch(CARVANA, images, masks, generator(2))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_switching_one_change_off_keeps_the_others_draws():
    a = Draws.draw(CARVANA, 5, generator())
    b = Draws.draw(dataclasses.replace(CARVANA, rotate=0), 5, generator())
    assert torch.equal(a.flip, b.flip) and torch.equal(a.brightness, b.brightness)
    assert (b.angle == 0).all() and not (a.angle == 0).all()


def test_the_warp_is_torchvisions_affine_with_each_samples_parameters():
    images = blocks(n=4)
    aug = dataclasses.replace(GEOMETRIC, hflip=0)
    warped, _ = augment_batch(aug, images, images[:, :1], generator())
    draws = Draws.draw(aug, 4, generator())
    height, width = images.shape[2:]
    for i in range(4):
        expected = TF.affine(
            images[i],
            angle=math.degrees(draws.angle[i]),
            translate=[draws.shift[i, 0].item() * width / 2, draws.shift[i, 1].item() * height / 2],
            scale=draws.scale[i].item(),
            shear=[0.0, 0.0],
            interpolation=TF.InterpolationMode.BILINEAR,
        )
        torch.testing.assert_close(warped[i], expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("aug", "reference"),
    [
        (PairAugment(brightness=0.5), lambda x, d, i: TF.adjust_brightness(x, d.brightness[i])),
        (PairAugment(contrast=0.5), lambda x, d, i: TF.adjust_contrast(x, d.contrast[i])),
        (PairAugment(saturation=0.3), lambda x, d, i: TF.adjust_saturation(x, d.saturation[i])),
        (
            PairAugment(grayscale=0.5),
            lambda x, d, i: TF.rgb_to_grayscale(x, 3) if d.gray[i] else x,
        ),
    ],
    ids=["brightness", "contrast", "saturation", "grayscale"],
)
def test_each_colour_change_is_torchvisions_with_each_samples_factor(aug, reference):
    images = blocks(n=6) * 0.6 + 0.2  # away from 0 and 1, where only the final clamp acts
    changed, _ = augment_batch(aug, images, images[:, :1], generator())
    draws = Draws.draw(aug, 6, generator())
    for i in range(6):
        expected = reference(images[i], draws, i).clamp(0, 1)
        torch.testing.assert_close(changed[i], expected, rtol=0, atol=1e-5)
    if aug.grayscale:
        assert 0 < draws.gray.sum() < 6  # both kinds of sample were checked


def masked_split(n: int = 10, augment: PairAugment | None = CARVANA) -> TensorSplit:
    images = (blocks(n=n, height=12, width=16) * 255).to(torch.uint8)
    masks = (images[:, :1] > 127).to(torch.uint8)
    return TensorSplit(images, masks, (0.0,) * 3, (1.0,) * 3, augment)


def test_a_loader_resumed_mid_epoch_draws_what_the_whole_epoch_drew():
    split = masked_split()
    loader = MemoryLoader(split, 3, ResumableSampler(10, seed=5), torch.device("cpu"))
    loader.sampler.set_epoch(2)
    whole = list(loader)
    loader.sampler.set_epoch(2, start=6)
    resumed = list(loader)
    assert len(whole) == 4 and len(resumed) == 2
    for (x, y), (x_resumed, y_resumed) in zip(whole[2:], resumed, strict=True):
        assert torch.equal(x, x_resumed) and torch.equal(y, y_resumed)
    loader.sampler.set_epoch(3)
    assert not torch.equal(next(iter(loader))[0], whole[0][0])


def test_batch_seeds_differ_by_seed_epoch_batch_and_rank():
    seeds = {
        batch_seed(s, e, b, r)
        for s in range(2)
        for e in range(3)
        for b in range(4)
        for r in range(2)
    }
    assert len(seeds) == 2 * 3 * 4 * 2


def test_a_split_without_augmentation_gives_masks_as_float():
    split = masked_split(augment=None)
    loader = MemoryLoader(
        split, 4, ResumableSampler(10, seed=0, shuffle=False), torch.device("cpu")
    )
    images, masks = next(iter(loader))
    assert masks.dtype == torch.float32 and torch.equal(masks, split.targets[:4].float())
    torch.testing.assert_close(images, split.images[:4].float() / 255, rtol=0, atol=1e-6)
    _, mask = split[0]
    assert torch.equal(mask, split.targets[0].float())


def test_a_labelled_split_augments_its_images_and_leaves_the_labels():
    """A classifier's split: every image is mirrored (hflip 1), every label is what it was."""
    images = (blocks(n=4, height=6, width=8) * 255).round().to(torch.uint8)
    labels = torch.tensor([3, 1, 2, 0])
    split = TensorSplit(images, labels, (0.0,) * 3, (1.0,) * 3, PairAugment(hflip=1.0))
    loader = MemoryLoader(split, 4, ResumableSampler(4, seed=0, shuffle=False), torch.device("cpu"))
    inputs, targets = next(iter(loader))
    assert torch.equal(targets, labels)
    torch.testing.assert_close(inputs, images.flip(-1).float() / 255, rtol=0, atol=1e-6)


def test_recolouring_labels_is_refused():
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    with pytest.raises(ValueError, match="recolor needs masks"):
        TensorSplit(
            images,
            torch.arange(4),
            (0.0,) * 3,
            (1.0,) * 3,
            dataclasses.replace(CARVANA, recolor=0.5),
        )
    with pytest.raises(ValueError, match="recolor needs masks"):
        augment_batch(PairAugment(recolor=0.5), blocks(n=2), None, generator())


def test_grey_images_take_brightness_and_contrast_and_stay_one_channel():
    """A grey batch changes as its RGB copy would, and saturation, hue and grayscale, which
    leave a grey pixel grey, change nothing more."""
    grey = blocks(n=5)[:, :1]
    aug = PairAugment(brightness=0.5, contrast=0.5, saturation=0.3, hue=0.2, grayscale=0.5)
    changed, masks = augment_batch(aug, grey, None, generator())
    assert changed.shape == grey.shape and masks is None
    draws = Draws.draw(aug, 5, generator())
    factor = (draws.contrast * draws.brightness).float().view(5, 1, 1, 1)
    mean = grey.mean(dim=(1, 2, 3), keepdim=True)
    shift = ((1 - draws.contrast) * draws.brightness).float().view(5, 1, 1, 1) * mean
    expected = (grey * factor + shift).clamp(0, 1)
    torch.testing.assert_close(changed, expected, rtol=0, atol=2e-3)
    assert not torch.allclose(changed, grey, atol=1e-2)


def test_recolouring_changes_the_masked_pixels_alone_toward_one_colour_each():
    images = blocks(n=4) * 0.6 + 0.2
    masks = (images[:, :1] > 0.5).float()
    aug = PairAugment(recolor=1.0)
    changed, same_masks = augment_batch(aug, images, masks, generator())
    inside = masks.bool().expand_as(images)
    assert torch.equal(changed[~inside], images[~inside]) and torch.equal(same_masks, masks)
    draws = Draws.draw(aug, 4, generator())
    for i in range(4):
        kept, colour = draws.kept[i].item(), draws.colour[i].view(3, 1, 1).float()
        expected = torch.where(inside[i], images[i] * kept + colour * (1 - kept), images[i])
        torch.testing.assert_close(changed[i], expected, rtol=0, atol=1e-5)


def test_a_hue_shift_is_torchvisions_with_each_samples_shift():
    images = blocks(n=3)
    aug = PairAugment(hue=0.2)
    changed, _ = augment_batch(aug, images, images[:, :1], generator())
    draws = Draws.draw(aug, 3, generator())
    for i in range(3):
        expected = TF.adjust_hue(images[i], draws.hue[i].item())
        torch.testing.assert_close(changed[i], expected, rtol=0, atol=1e-5)
    assert len(set(draws.hue.tolist())) == 3


def crop_corners(aug: PairAugment, n: int, height: int, width: int) -> list[tuple[int, int]]:
    """The (top, left) of each sample's crop, from the draws: floor(share * room)."""
    draws = Draws.draw(aug, n, generator())
    crop_height, crop_width = aug.crop
    tops = (draws.corner[:, 1] * (height - crop_height + 1)).floor().long().tolist()
    lefts = (draws.corner[:, 0] * (width - crop_width + 1)).floor().long().tolist()
    return list(zip(tops, lefts, strict=True))


def test_a_crop_alone_copies_a_window_of_each_image_and_its_mask():
    images = torch.rand(8, 3, 30, 41, generator=generator(1))
    masks = (images[:, :1] > 0.5).float()
    aug = PairAugment(crop=(17, 23))
    cropped, cropped_masks = augment_batch(aug, images, masks, generator())
    assert cropped.shape == (8, 3, 17, 23) and cropped_masks.shape == (8, 1, 17, 23)
    corners = crop_corners(aug, 8, 30, 41)
    for i, (top, left) in enumerate(corners):
        window = (..., slice(top, top + 17), slice(left, left + 23))
        torch.testing.assert_close(cropped[i], images[i][window], rtol=0, atol=1e-5)
        assert torch.equal(cropped_masks[i], masks[i][window])
    assert len(set(corners)) > 4  # each sample draws its own window


def test_a_crop_after_the_warp_is_a_window_of_the_whole_warp():
    """The crop is composed into the warp's grid: the same draws give the window of the
    uncropped result, colour changes included, and a crop of the whole size changes nothing."""
    images, aug = blocks(n=6), dataclasses.replace(CARVANA, hue=0.1)
    masks = (images[:, :1] > 0.5).float()
    whole, whole_masks = augment_batch(aug, images, masks, generator())
    same, same_masks = augment_batch(
        dataclasses.replace(aug, crop=(48, 64)), images, masks, generator()
    )
    torch.testing.assert_close(same, whole, rtol=0, atol=1e-5)
    assert torch.equal(same_masks, whole_masks)
    cropped_aug = dataclasses.replace(aug, crop=(32, 40))
    cropped, cropped_masks = augment_batch(cropped_aug, images, masks, generator())
    for i, (top, left) in enumerate(crop_corners(cropped_aug, 6, 48, 64)):
        window = (..., slice(top, top + 32), slice(left, left + 40))
        # The colour matrices subtract the image's mean gray, which a crop changes: compare
        # the geometry alone on the masks, and the images through the same warp uncoloured.
        assert (cropped_masks[i] != whole_masks[i][window]).float().mean() < 1e-3
    geometric = dataclasses.replace(aug, brightness=0, contrast=0, saturation=0, hue=0, grayscale=0)
    warped, _ = augment_batch(geometric, images, masks, generator())
    warped_crops, _ = augment_batch(
        dataclasses.replace(geometric, crop=(32, 40)), images, masks, generator()
    )
    for i, (top, left) in enumerate(crop_corners(cropped_aug, 6, 48, 64)):
        window = (..., slice(top, top + 32), slice(left, left + 40))
        torch.testing.assert_close(warped_crops[i], warped[i][window], rtol=0, atol=1e-4)
    assert cropped.shape == (6, 3, 32, 40)


def test_a_loader_with_a_crop_gives_crops_and_its_unaugmented_split_whole_images():
    split = masked_split(augment=PairAugment(crop=(8, 10)))
    loader = MemoryLoader(split, 4, ResumableSampler(10, seed=0), torch.device("cpu"))
    images, masks = next(iter(loader))
    assert images.shape == (4, 3, 8, 10) and masks.shape == (4, 1, 8, 10)
    image, mask = split[0]
    assert image.shape == (3, 12, 16) and mask.shape == (1, 12, 16)
