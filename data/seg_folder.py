"""Your own segmentation data with no code: ``DIR/images/*`` and ``DIR/masks/*``.

A mask is matched to its image by file stem, with ``--mask_suffix`` after it
(``images/a.jpg`` and ``masks/a_mask.png`` with ``--mask_suffix _mask``). Masks are binary
(``{0, 1}`` or ``{0, 255}``: one output channel, as Carvana) or hold class indices ``0..K-1``
(index or palette PNGs; 0 is the background): ``--num_classes K``, or read from the masks and
stated in the log. ``--group_pattern REGEX`` names the object each image shows by its first
group (``'^([^_]+)_'`` for Carvana's ``<car>_<view>``): all images of one object go to one
split and one fold; without it each image is its own group. Decoding, the cache, the splits
and the in-memory path are those of every image/mask dataset (``data/pairs.py``).
"""

import argparse
import logging
import re
from argparse import Namespace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from data import memory, pairs
from data.augment import add_augment_options
from data.data_entry import register_dataset
from data.image_files import add_cache_options, add_size_option, cache_folder, is_image_file
from data.pairs import (
    BINARY,
    Pair,
    Scale,
    build_pair_splits,
    cache_pairs,
    is_binary,
    sizing,
    sizing_name,
    values_present,
)
from data.splits import DataSplits
from utils.cli import non_negative_int
from utils.errors import UsageError

log = logging.getLogger(__name__)
IMAGE_DIR, MASK_DIR = "images", "masks"


def add_options(group: argparse._ArgumentGroup) -> None:
    """How masks pair with images, how images group, and the classes the masks hold."""
    group.add_argument(
        "--mask_suffix", default="", help="a mask's stem is its image's stem plus this (_mask)"
    )
    group.add_argument(
        "--group_pattern",
        default=None,
        help="regex whose first group names the object an image shows; its images stay in one "
        "split and fold (default: each image on its own)",
    )
    group.add_argument(
        "--num_classes",
        type=non_negative_int,
        default=0,
        help="classes in the masks, background included: 2 = binary, K > 2 = values 0..K-1; "
        "0 = read from the masks",
    )
    group.add_argument(
        "--class_names",
        nargs="+",
        default=None,
        help="names of the classes: one (the object) for binary masks, else K from background",
    )


def stems(folder: Path) -> dict[str, Path]:
    """The image files of ``folder`` by stem; two files of one stem are a UsageError."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if is_image_file(p)):
        if path.stem in found:
            raise UsageError(f"{found[path.stem]} and {path} share a name; expected one file each")
        found[path.stem] = path
    return found


def grouper(pattern: str | None) -> re.Pattern | None:
    """``--group_pattern`` compiled; a pattern that is no regex or has no group is refused."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise UsageError(f"--group_pattern {pattern!r}: not a regular expression ({err})") from None
    if compiled.groups < 1:
        raise UsageError(
            f"--group_pattern {pattern!r} has no (group); expected one, e.g. '^([^_]+)_'"
        )
    return compiled


def suffix_hint(image_stem: str, image_stems: set[str], mask_files: dict[str, Path]) -> str:
    """``; <mask> is there: pass --mask_suffix <suffix>`` where a mask's stem is the image's
    plus a suffix (of those, the suffix that pairs the most images), else ''."""
    candidates = {
        stem[len(image_stem) :]: path
        for stem, path in mask_files.items()
        if stem.startswith(image_stem) and stem != image_stem
    }
    if not candidates:
        return ""

    def paired(suffix: str) -> int:
        return sum(s.endswith(suffix) and s.removesuffix(suffix) in image_stems for s in mask_files)

    suffix = max(sorted(candidates), key=paired)
    return f"; {candidates[suffix]} is there: pass --mask_suffix {suffix}"


def find_pairs(root: Path, mask_suffix: str = "", group_pattern: str | None = None) -> list[Pair]:
    """Every image of ``root/images`` with its mask in ``root/masks``; an image without a mask,
    a mask without an image or a name the group pattern does not match is a UsageError."""
    image_dir, mask_dir = root / IMAGE_DIR, root / MASK_DIR
    for folder in (image_dir, mask_dir):
        if not folder.is_dir():
            raise UsageError(
                f"--data_dir {root}: no {folder.name}/ folder; expected {IMAGE_DIR}/<name>.<ext>"
                f" and {MASK_DIR}/<name>{mask_suffix}.png"
            )
    images, mask_files = stems(image_dir), stems(mask_dir)
    masks = {stem.removesuffix(mask_suffix): path for stem, path in mask_files.items()}
    if not images:
        raise UsageError(f"--data_dir {root}: no image files in {image_dir}")
    if no_mask := sorted(images.keys() - masks.keys()):
        expected = mask_dir / f"{no_mask[0]}{mask_suffix}.png"
        raise UsageError(
            f"image {images[no_mask[0]]} has no mask: expected {expected}"
            + suffix_hint(no_mask[0], set(images), mask_files)
        )
    if no_image := sorted(masks.keys() - images.keys()):
        expected = image_dir / f"{no_image[0]}.png"
        raise UsageError(f"mask {masks[no_image[0]]} has no image: expected {expected}")
    pattern = grouper(group_pattern)
    pairs = []
    for name in sorted(images):
        group = name
        if pattern is not None:
            if not (match := pattern.search(name)):
                raise UsageError(
                    f"image {images[name]}: --group_pattern {group_pattern!r} does not match "
                    "its name; expected a pattern that names the object of every image"
                )
            group = match.group(1)
        pairs.append(Pair(name, images[name], masks[name], group))
    return pairs


def classes_in_masks(pairs: list[Pair], scale: Scale, cache: Path | None) -> int:
    """The number of classes the masks hold: :data:`BINARY` for ``{0, 1}`` or ``{0, 255}``,
    else one more than the largest value. Reading them fills the decode cache too."""
    files = cache_pairs(pairs, scale, cache) if cache is not None else [None] * len(pairs)
    values = set().union(*(values_present(p, f) for p, f in zip(pairs, files, strict=True)))
    if is_binary(values):
        return BINARY
    if max(values) == 255:
        raise UsageError(
            f"the masks hold the values {sorted(values)[:6]}...; expected {{0,255}} (binary) or "
            "class indices 0..K-1, or pass --num_classes"
        )
    return max(values) + 1


def class_names_of(names: list[str] | None, num_classes: int) -> list[str]:
    """``--class_names``, checked against the classes; default names otherwise."""
    count = 1 if num_classes == BINARY else num_classes
    if names is None:
        return (
            ["object"]
            if num_classes == BINARY
            else ["background"] + [f"class_{k}" for k in range(1, num_classes)]
        )
    if len(names) != count:
        expected = "1 (the object) for binary masks" if num_classes == BINARY else str(count)
        raise UsageError(f"--class_names: got {len(names)} names; expected {expected}")
    return list(names)


def write_example(folder: Path) -> dict[str, Any]:
    """Six 20x12 PNG images of two boxes on a noisy ground under ``folder/images``, and their
    index masks (0 background, 1 and 2 the boxes) as ``folder/masks/<stem>_mask.png``."""
    (folder / IMAGE_DIR).mkdir(parents=True)
    (folder / MASK_DIR).mkdir(parents=True)
    generator = np.random.default_rng(0)
    for i in range(6):
        mask = np.zeros((12, 20), dtype=np.uint8)
        mask[2 : 6 + i % 3, 2:9] = 1
        mask[7:11, 10 : 14 + i % 4] = 2
        pixels = generator.integers(0, 100, (12, 20, 3), dtype=np.uint8)
        pixels[mask == 1], pixels[mask == 2] = (250, 200, 0), (0, 90, 250)
        Image.fromarray(pixels).save(folder / IMAGE_DIR / f"s{i}.png")
        Image.fromarray(mask).save(folder / MASK_DIR / f"s{i}_mask.png")
    return {
        "data_dir": str(folder),
        "mask_suffix": "_mask",
        "img_scale": 0.5,
        "cache_dir": str(folder / "cache"),
    }


@register_dataset(
    "SegFolder",
    options=(
        pairs.add_options,
        add_size_option,
        add_options,
        add_cache_options,
        add_augment_options,
        memory.add_options,
    ),
    load_input=pairs.load_input,
    pixels=pairs.pixels,
    example=write_example,
)
def build_seg_folder(opt: Namespace) -> DataSplits:
    """The pairs of ``opt.data_dir`` split by group, their classes given or read from the masks."""
    root = Path(opt.data_dir)
    pairs = find_pairs(root, opt.mask_suffix, opt.group_pattern)
    if opt.num_classes == 1:
        raise UsageError("--num_classes 1: expected 0 (read from the masks), 2 (binary) or more")
    if opt.num_classes:
        num_classes = BINARY if opt.num_classes == 2 else opt.num_classes
    else:
        scale = sizing(opt)
        cache = cache_folder(opt, root, sizing_name(scale))
        num_classes = classes_in_masks(pairs, scale, cache)
        kind = (
            "binary" if num_classes == BINARY else f"{num_classes} classes (0..{num_classes - 1})"
        )
        log.info("SegFolder: %d masks, %s, read from the masks (--num_classes)", len(pairs), kind)
    names = class_names_of(opt.class_names, num_classes)
    return build_pair_splits(pairs, opt, root, num_classes, names)
