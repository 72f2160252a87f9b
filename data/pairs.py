"""Images and their masks: what every segmentation dataset shares, whatever its file layout.

A dataset finds its :class:`Pair` s (``data/carvana.py``: Kaggle's layout; ``data/seg_folder.py``:
``images/`` + ``masks/``) and :func:`build_pair_splits` does the rest. Decoding a large JPEG
and its mask takes longer than a small UNet needs for the pair, so every pair is decoded and
resized once, checked, and stored as uint8 arrays under the cache folder; later epochs and runs
read those in about a millisecond. A cached file remembers the size and mtime of its sources
and is redone when they change. With ``--in_memory True`` (the default) the training and
validation pairs are then held as uint8 tensors on the device, and training batches are
augmented there (``data/memory.py``); ``--in_memory False`` reads and augments each pair in
DataLoader workers.

Masks hold class indices: binary masks (``num_classes == 1``, one output channel) are
``{0, 1}`` or ``{0, 255}`` and are read as ``{0, 1}``; masks of ``K > 1`` classes hold the
values ``0..K-1`` (0 is the background), as index or palette PNGs do.
"""

import argparse
import io
import random
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from data.augment import PairAugment, augment_from_options, sample_seed, seeded
from data.image_files import cache_folder, header_size, height_width, open_image
from data.memory import TensorSplit
from data.splits import DataInfo, DataSplits, kfold_split, split_indices, subsample_indices
from utils.atomic import atomic_write
from utils.cli import fraction
from utils.errors import UsageError
from utils.loop.export import Pixels

BINARY = 1  # num_classes of a binary mask: one output channel, foreground or not


def add_options(group: argparse._ArgumentGroup) -> None:
    """The scale of the segmentation datasets (one size for all: ``--img_size``, shared)."""
    group.add_argument(
        "--img_scale", type=fraction, default=1.0, help="resize images by this factor"
    )


# How pairs are resized: --img_scale's factor, or --img_size's (height, width).
Scale = float | tuple[int, int]


def sizing(opt: Namespace) -> Scale:
    """``--img_size`` as ``(height, width)`` where given (older runs have none), else
    ``--img_scale``."""
    size = getattr(opt, "img_size", None)
    return opt.img_scale if size is None else height_width(size)


def sizing_option(scale: Scale) -> str:
    """The option that set ``scale``, as a message names it: ``--img_scale 0.25``."""
    return (
        f"--img_size {scale[0]}x{scale[1]}"
        if isinstance(scale, tuple)
        else f"--img_scale {scale:g}"
    )


def sizing_name(scale: Scale) -> str:
    """The cache folder of pairs resized by ``scale``, and how the log names it."""
    return f"size_{scale[0]}x{scale[1]}" if isinstance(scale, tuple) else f"scale_{scale:g}"


@dataclass(frozen=True)
class Pair:
    """One image and its mask; ``group`` names the object it shows (a car), whose images all
    go to one split."""

    id: str
    image: Path
    mask: Path
    group: str


def split_by_group(
    pairs: list[Pair], val_ratio: float, test_ratio: float, seed: int
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train/val/test with all images of a group in one split, chosen by a seeded shuffle of
    the groups."""
    groups = sorted({p.group for p in pairs})
    if len(groups) < 3:
        raise UsageError(
            f"need images of at least 3 objects (groups) for train/val/test, found {len(groups)}"
        )
    random.Random(seed).shuffle(groups)
    n_test = max(1, round(len(groups) * test_ratio))
    n_val = max(1, round(len(groups) * val_ratio))
    n_val = min(n_val, len(groups) - n_test - 1)  # keep at least one group for training
    test, val = set(groups[:n_test]), set(groups[n_test : n_test + n_val])
    return (
        [p for p in pairs if p.group not in test | val],
        [p for p in pairs if p.group in val],
        [p for p in pairs if p.group in test],
    )


def fold_by_group(
    pairs: list[Pair], folds: int, fold: int, val_ratio: float, seed: int
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train/val/test with fold ``fold`` of ``folds`` (all images of its groups) as the test.

    Validation never sees the test groups: it takes whole groups of the others when that leaves
    at least two groups to train on, else a ``val_ratio`` share of the training groups' images
    (with three cars, "train on two cars, test on the third").
    """
    rest, test = kfold_split([p.group for p in pairs], folds, fold, seed)
    n_val = max(1, round(len(rest) * val_ratio))
    if len(rest) - n_val >= 2:
        train_at, val_at = split_indices(list(range(len(rest))), n_val / len(rest), seed)
        val_groups = {rest[i] for i in val_at}
        train = [p for p in pairs if p.group in rest and p.group not in val_groups]
        val = [p for p in pairs if p.group in val_groups]
    else:
        kept = [p for p in pairs if p.group in rest]
        train_at, val_at = split_indices(list(range(len(kept))), val_ratio, seed)
        train, val = [kept[i] for i in train_at], [kept[i] for i in val_at]
    return train, val, [p for p in pairs if p.group in test]


def scaled_size(size: tuple[int, int], scale: Scale) -> tuple[int, int]:
    """PIL's ``(width, height)`` of an image of ``size`` resized by ``scale``."""
    if isinstance(scale, tuple):
        return scale[1], scale[0]
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def scale_image(image: Image.Image, scale: Scale) -> np.ndarray:
    """``image`` in RGB, resized (bilinear) by ``scale``: the ``HxWx3`` uint8 array cached."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if (size := scaled_size(image.size, scale)) != image.size:
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.array(image)  # a writable copy, as torch.from_numpy wants


def unit_float(image: Tensor) -> Tensor:
    """A uint8 ``[3, H, W]`` image as the model's input: float in [0, 1]."""
    return image.float().div_(255)


def image_tensor(image: np.ndarray) -> Tensor:
    """An ``HxWx3`` uint8 array as the model's input: float ``[3, H, W]`` in [0, 1]."""
    return unit_float(torch.from_numpy(image).permute(2, 0, 1))


def load_input(path: Path, opt: Namespace, info: DataInfo) -> Tensor:
    """One image file as the model's input, exactly as :class:`PairDataset` gives it."""
    return image_tensor(scale_image(open_image(path), sizing(opt)))


def pixels(opt: Namespace, info: DataInfo) -> Pixels:
    """What :func:`load_input` does, in tensor terms: the trained size, scaled to [0, 1]."""
    channels = info.input_shape[0]
    return Pixels(info.input_shape[1:], (0.0,) * channels, (1.0,) * channels)


def mask_values(mask: Image.Image) -> np.ndarray:
    """The ``HxW`` uint8 values of a decoded mask: a palette's indices as they are, anything
    else as grey levels."""
    return np.array(mask.convert("L") if mask.mode not in ("P", "L", "1") else mask, np.uint8)


def is_binary(values: set[int]) -> bool:
    return values <= {0, 1} or values <= {0, 255}


def check_values(values: set[int], num_classes: int, path: Path) -> None:
    """Refuse, naming ``path``, mask values that are not classes of ``num_classes``."""
    if num_classes == BINARY:
        if not is_binary(values):
            found = sorted(values)[:6]
            raise UsageError(f"mask {path} has values {found}; expected {{0,1}} or {{0,255}}")
    elif max(values) >= num_classes:
        raise UsageError(
            f"mask {path} has the value {max(values)}; expected class indices 0..{num_classes - 1}"
            f" (--num_classes {num_classes})"
        )


def mask_classes(values: np.ndarray, num_classes: int) -> np.ndarray:
    """Checked mask values as class indices: ``{0, 1}`` for a binary mask, else as they are."""
    return (values > 0).astype(np.uint8) if num_classes == BINARY else values


def read_mask(path: Path, num_classes: int) -> np.ndarray:
    """The mask file at ``path`` as ``HxW`` uint8 class indices, at its own resolution."""
    values = mask_values(open_image(path))
    check_values(set(present_values(values).tolist()), num_classes, path)
    return mask_classes(values, num_classes)


def present_values(values: np.ndarray) -> np.ndarray:
    """The distinct values of a uint8 mask, in order (a count per value: faster than a sort)."""
    return np.flatnonzero(np.bincount(values.ravel(), minlength=256)).astype(np.uint8)


def decode_pair(pair: Pair, scale: Scale) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode and resize one pair: ``(HxWx3 uint8 image, HxW uint8 mask values, the values
    present at full resolution)``.

    Images resize bilinear, masks nearest (interpolated labels would be no class); a mask has
    its image's size (:func:`check_sizes`).
    """
    image, mask = open_image(pair.image), open_image(pair.mask)
    values = mask_values(mask)
    present = present_values(values)
    if (size := scaled_size(image.size, scale)) != image.size:
        values = np.array(Image.fromarray(values).resize(size, Image.Resampling.NEAREST))
    return scale_image(image, scale), values, present


def check_sizes(pairs: list[Pair], scale: Scale) -> None:
    """Refuse, in one line naming the file, a mask whose size is not its image's, or an image
    that does not come to the first one's size at ``scale``: a batch stacks them. Read from the
    files' headers alone."""

    def sizes(pair: Pair) -> tuple[tuple[int, int], tuple[int, int]]:
        return header_size(pair.image), header_size(pair.mask)

    with ThreadPoolExecutor(max_workers=8) as pool:  # opening files may wait on a disk
        found = list(pool.map(sizes, pairs))
    first = scaled_size(found[0][0], scale)
    for pair, (image, mask) in zip(pairs, found, strict=True):
        if mask != image:
            raise UsageError(
                f"mask {pair.mask} is {mask[0]}x{mask[1]} but its image is "
                f"{image[0]}x{image[1]}; expected the same size"
            )
        if (size := scaled_size(image, scale)) != first:
            raise UsageError(
                f"image {pair.image} is {size[0]}x{size[1]} at {sizing_option(scale)}, but "
                f"{pairs[0].image} is {first[0]}x{first[1]}; expected images of one size "
                "(a batch stacks them), or --img_size HxW to resize each to one"
            )


def check_crop(augment: PairAugment | None, height: int, width: int, scale: Scale) -> None:
    """Refuse, in one line, an ``--aug_crop`` larger than the training images."""
    if augment is None or augment.crop is None:
        return
    crop_height, crop_width = augment.crop
    if crop_height > height or crop_width > width:
        raise UsageError(
            f"--aug_crop {crop_height}x{crop_width} does not fit in the training images, "
            f"{height}x{width} at {sizing_option(scale)}; expected a crop of at most "
            f"{height}x{width}"
        )


def _signature(pair: Pair) -> np.ndarray:
    stats = [pair.image.stat(), pair.mask.stat()]
    return np.array([v for s in stats for v in (s.st_size, s.st_mtime_ns)], dtype=np.int64)


def cache_pair(pair: Pair, scale: Scale, cache_dir: Path) -> Path:
    """The cached arrays of ``pair`` at ``scale``, decoded now if absent or stale: the image,
    the mask values and the set of values (``present``) the mask holds at full resolution."""
    path = cache_dir / f"{pair.id}.npz"
    signature = _signature(pair)
    if path.is_file():
        try:
            with np.load(path) as cached:
                if np.array_equal(cached["signature"], signature) and "present" in cached:
                    return path
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: decode again below
    image, values, present = decode_pair(pair, scale)
    buffer = io.BytesIO()
    np.savez(buffer, image=image, mask=values, present=present, signature=signature)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def cache_pairs(pairs: list[Pair], scale: Scale, cache_dir: Path) -> list[Path]:
    """The cached arrays of every pair, decoded now where absent or stale, on two threads
    (PIL decodes without the GIL)."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"--cache_dir {cache_dir}: cannot create it ({err.strerror}); "
            "expected a writable directory"
        ) from None
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda pair: cache_pair(pair, scale, cache_dir), pairs))


def values_present(pair: Pair, cached: Path | None) -> set[int]:
    """The values of ``pair``'s mask, from its cache entry or, without one, its file."""
    if cached is None:
        return set(present_values(mask_values(open_image(pair.mask))).tolist())
    with np.load(cached) as arrays:
        return set(arrays["present"].tolist())


class PairDataset(Dataset):
    """``(image float [3,H,W] in [0,1], mask float [1,H,W] of class indices)`` for pairs.

    With a ``cache_dir`` the pairs are decoded (two threads) and cached at construction, so a
    bad file fails before training starts; without one each access decodes the image again.
    With ``augment``, each sample is augmented on its uint8 arrays by draws seeded from
    ``seed``, the epoch and its index, so the loader indexes it with ``(epoch, index)``.
    """

    def __init__(
        self,
        pairs: list[Pair],
        scale: Scale,
        cache_dir: Path | None,
        augment: PairAugment | None = None,
        seed: int = 0,
        num_classes: int = BINARY,
    ) -> None:
        self.pairs = pairs
        self.ids = [p.id for p in pairs]
        self.scale = scale
        self.augment = augment
        self.seed = seed
        self.num_classes = num_classes
        self.files: list[Path] | None = None
        if cache_dir is not None:
            self.files = cache_pairs(pairs, scale, cache_dir)
            for pair, file in zip(pairs, self.files, strict=True):
                check_values(values_present(pair, file), num_classes, pair.mask)

    def __len__(self) -> int:
        return len(self.pairs)

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` as uint8 arrays: ``HxWx3`` image, ``HxW`` class indices."""
        if self.files is None:
            image, values, present = decode_pair(self.pairs[index], self.scale)
            check_values(set(present.tolist()), self.num_classes, self.pairs[index].mask)
        else:
            with np.load(self.files[index]) as cached:
                image, values = cached["image"], cached["mask"]
        return image, mask_classes(values, self.num_classes)

    @property
    def epoch_keyed(self) -> bool:
        """Whether samples depend on the epoch (augmented), so keys are ``(epoch, index)``."""
        return self.augment is not None

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, labels = self.arrays(index)
        image, mask = torch.from_numpy(image).permute(2, 0, 1), torch.from_numpy(labels)[None]
        if self.augment is not None:
            with seeded(sample_seed(self.seed, epoch, index)):
                image, mask = self.augment(image, mask)
        return unit_float(image), mask.float()

    @property
    def targets(self) -> Tensor:
        """Every mask at the training scale, before augmentation: ``[N, 1, H, W]`` uint8 class
        indices (``--class_weights`` counts them). Reads each sample (from the cache)."""
        return torch.stack([torch.from_numpy(self.arrays(i)[1])[None] for i in range(len(self))])

    def original_mask(self, index: int) -> Tensor:
        """The mask of sample ``index`` at the data's own resolution, ``[1, H, W]`` uint8 class
        indices, read from its file: the resolution at which masks are scored."""
        mask = read_mask(self.pairs[index].mask, self.num_classes)
        return torch.from_numpy(mask).unsqueeze(0)


def in_memory_split(dataset: PairDataset, augment: PairAugment | None) -> TensorSplit:
    """The pairs of ``dataset`` as one uint8 tensor of images and one of masks (read from the
    cache when there is one), for batches gathered and augmented on the device."""
    image, _ = dataset.arrays(0)
    height, width, channels = image.shape
    images = torch.empty(len(dataset), channels, height, width, dtype=torch.uint8)
    masks = torch.empty(len(dataset), 1, height, width, dtype=torch.uint8)
    for index in range(len(dataset)):  # one size: checked by check_sizes
        image, labels = dataset.arrays(index)
        images[index] = torch.from_numpy(image).permute(2, 0, 1)
        masks[index, 0] = torch.from_numpy(labels)
    return TensorSplit(images, masks, (0.0,) * channels, (1.0,) * channels, augment)


def build_pair_splits(
    pairs: list[Pair], opt: Namespace, root: Path, num_classes: int, class_names: list[str]
) -> DataSplits:
    """Splits by group (``val_ratio``, ``test_ratio``; or k folds of groups with ``folds`` and
    ``fold``), resized by ``img_scale``, cached under ``root``; the training split augmented by
    ``augment``; training and validation held as tensors with ``in_memory``."""
    scale = sizing(opt)
    check_sizes(pairs, scale)
    folds = getattr(opt, "folds", 0)  # runs from before k-fold existed had none
    if folds:
        train, val, test = fold_by_group(pairs, folds, opt.fold, opt.val_ratio, opt.split_seed)
    else:
        train, val, test = split_by_group(pairs, opt.val_ratio, opt.test_ratio, opt.split_seed)
    train_val_keep = opt.train_val_sample_rate
    train = [train[i] for i in subsample_indices(len(train), train_val_keep, opt.split_seed)]
    val = [val[i] for i in subsample_indices(len(val), train_val_keep, opt.split_seed)]
    test = [test[i] for i in subsample_indices(len(test), opt.test_sample_rate, opt.split_seed)]
    cache = cache_folder(opt, root, sizing_name(scale))
    augment = augment_from_options(opt)
    train_set = PairDataset(train, scale, cache, augment, opt.seed, num_classes)
    val_set = PairDataset(val, scale, cache, num_classes=num_classes)
    height, width, channels = train_set.arrays(0)[0].shape
    check_crop(augment, height, width, scale)
    if getattr(opt, "in_memory", True):  # the test split stays per sample: the evaluator
        train_set = in_memory_split(train_set, augment)  # adds each pair's original mask
        val_set = in_memory_split(val_set, None)
    return DataSplits(
        train=train_set,
        val=val_set,
        test=PairDataset(test, scale, cache, num_classes=num_classes),
        input_shape=(channels, height, width),
        num_outputs=num_classes,
        class_names=class_names,
        groups={
            name: sorted({p.group for p in split})
            for name, split in (("train", train), ("val", val), ("test", test))
        },
    )
