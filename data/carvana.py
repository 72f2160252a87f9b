"""Carvana car masks in Kaggle's layout: ``train/<car>_<view>.jpg``, ``train_masks/<id>_mask.gif``.

The pairs are found here; decoding, the decode cache, the splits by car and the in-memory,
on-device path are those of every image/mask dataset (``data/pairs.py``).
"""

from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from data import memory, pairs
from data.augment import add_augment_options
from data.data_entry import register_dataset
from data.image_files import add_cache_options
from data.pairs import BINARY, Pair, build_pair_splits
from data.splits import DataSplits
from utils.errors import UsageError

IMAGE_DIR, MASK_DIR, MASK_SUFFIX = "train", "train_masks", "_mask.gif"


def find_pairs(root: Path) -> list[Pair]:
    """All image/mask pairs under ``root``; a missing or extra mask is a UsageError."""
    image_dir, mask_dir = root / IMAGE_DIR, root / MASK_DIR
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise UsageError(
                f"--data_dir {root}: no {folder.name}/ folder; expected Kaggle's Carvana layout "
                f"{IMAGE_DIR}/<car>_<view>.jpg and {MASK_DIR}/<car>_<view>{MASK_SUFFIX}"
            )
    images = {p.stem: p for p in image_dir.glob("*.jpg")}
    masks = {p.name.removesuffix(MASK_SUFFIX): p for p in mask_dir.glob(f"*{MASK_SUFFIX}")}
    if not images:
        raise UsageError(f"--data_dir {root}: no .jpg images in {image_dir}")
    if no_mask := sorted(images.keys() - masks.keys()):
        expected = mask_dir / (no_mask[0] + MASK_SUFFIX)
        raise UsageError(f"image {images[no_mask[0]]} has no mask: expected {expected}")
    if no_image := sorted(masks.keys() - images.keys()):
        expected = image_dir / (no_image[0] + ".jpg")
        raise UsageError(f"mask {masks[no_image[0]]} has no image: expected {expected}")
    # A car's views are <car>_01 .. <car>_16: all of them go to one split.
    return [
        Pair(name, images[name], masks[name], name.rsplit("_", 1)[0]) for name in sorted(images)
    ]


def write_example(folder: Path) -> dict[str, Any]:
    """Three cars of two views each in Kaggle's layout: 24x16 JPEGs of a bright box on a
    noisy ground, and its mask as a palette GIF of 0 and 1."""
    (folder / IMAGE_DIR).mkdir(parents=True)
    (folder / MASK_DIR).mkdir(parents=True)
    generator = np.random.default_rng(0)
    for car in ("0cafe", "1beef", "2f00d"):
        for view in (1, 2):
            mask = np.zeros((16, 24), dtype=np.uint8)
            mask[4 : 10 + view, 3 + 4 * view : 20] = 1
            pixels = generator.integers(0, 120, (16, 24, 3), dtype=np.uint8)
            pixels[mask == 1] = (230, 60 * view, 40)
            Image.fromarray(pixels).save(folder / IMAGE_DIR / f"{car}_{view:02d}.jpg")
            gif = Image.fromarray(mask, mode="P")
            gif.putpalette([0, 0, 0, 255, 255, 255])
            gif.save(folder / MASK_DIR / f"{car}_{view:02d}{MASK_SUFFIX}")
    return {"data_dir": str(folder), "img_scale": 0.5, "cache_dir": str(folder / "cache")}


@register_dataset(
    "Carvana",
    options=(pairs.add_options, add_cache_options, add_augment_options, memory.add_options),
    load_input=pairs.load_input,
    pixels=pairs.pixels,
    example=write_example,
)
def build_carvana(opt: Namespace) -> DataSplits:
    """Splits by car (``val_ratio``, ``test_ratio``; or k folds of cars with ``folds`` and
    ``fold``), resized by ``img_scale``, cached, augmented and held in memory as
    :func:`build_pair_splits` does for any image/mask pairs."""
    root = Path(opt.data_dir)
    return build_pair_splits(find_pairs(root), opt, root, BINARY, ["car"])
