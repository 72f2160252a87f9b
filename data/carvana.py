"""Carvana car masks in Kaggle's layout: ``train/<car>_<view>.jpg``, ``train_masks/<id>_mask.gif``.

Decoding a 1918x1280 JPEG and GIF pair takes about 90 ms on a CPU, longer than a small UNet
needs for the pair. So every pair is decoded and resized once, checked, and stored as uint8
arrays under ``<cache_dir>/scale_<s>/``; later epochs and runs read those in about a
millisecond. A cached file remembers the size and mtime of its sources and is redone when they
change. With ``--in_memory True`` (the default) the training and validation pairs are then
held as uint8 tensors on the device, and training batches are augmented there
(``data/memory.py``); ``--in_memory False`` reads and augments each pair in DataLoader workers.
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

from data.image_files import cache_folder, open_image
from data.memory import TensorSplit
from data.splits import DataInfo, DataSplits, kfold_split, split_indices, subsample_indices
from utils.atomic import atomic_write
from utils.augment import PairAugment, augment_from_options, sample_seed, seeded
from utils.cli import fraction
from utils.errors import UsageError

IMAGE_DIR, MASK_DIR, MASK_SUFFIX = "train", "train_masks", "_mask.gif"


def add_options(group: argparse._ArgumentGroup) -> None:
    """The image scale of the segmentation datasets."""
    group.add_argument(
        "--img_scale", type=fraction, default=1.0, help="resize images by this factor"
    )


@dataclass(frozen=True)
class Pair:
    """One image and its mask; ``car`` is the id without the view number."""

    id: str
    image: Path
    mask: Path

    @property
    def car(self) -> str:
        return self.id.rsplit("_", 1)[0]


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
    return [Pair(name, images[name], masks[name]) for name in sorted(images)]


def split_by_car(
    pairs: list[Pair], val_ratio: float, test_ratio: float, seed: int
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train/val/test with all views of a car in one split, chosen by a seeded shuffle of cars."""
    cars = sorted({p.car for p in pairs})
    if len(cars) < 3:
        raise UsageError(f"need images of at least 3 cars for train/val/test, found {len(cars)}")
    random.Random(seed).shuffle(cars)
    n_test = max(1, round(len(cars) * test_ratio))
    n_val = max(1, round(len(cars) * val_ratio))
    n_val = min(n_val, len(cars) - n_test - 1)  # keep at least one car for training
    test, val = set(cars[:n_test]), set(cars[n_test : n_test + n_val])
    return (
        [p for p in pairs if p.car not in test | val],
        [p for p in pairs if p.car in val],
        [p for p in pairs if p.car in test],
    )


def fold_by_car(
    pairs: list[Pair], folds: int, fold: int, val_ratio: float, seed: int
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Train/val/test with fold ``fold`` of ``folds`` (all views of its cars) as the test.

    Validation never sees the test cars: it takes whole cars of the others when that leaves at
    least two cars to train on, else a ``val_ratio`` share of the training cars' views (with
    three cars, "train on two cars, test on the third").
    """
    rest, test = kfold_split([p.car for p in pairs], folds, fold, seed)
    n_val = max(1, round(len(rest) * val_ratio))
    if len(rest) - n_val >= 2:
        train_at, val_at = split_indices(list(range(len(rest))), n_val / len(rest), seed)
        val_cars = {rest[i] for i in val_at}
        train = [p for p in pairs if p.car in rest and p.car not in val_cars]
        val = [p for p in pairs if p.car in val_cars]
    else:
        kept = [p for p in pairs if p.car in rest]
        train_at, val_at = split_indices(list(range(len(kept))), val_ratio, seed)
        train, val = [kept[i] for i in train_at], [kept[i] for i in val_at]
    return train, val, [p for p in pairs if p.car in test]


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def scale_image(image: Image.Image, scale: float) -> np.ndarray:
    """``image`` in RGB, resized (bilinear) by ``scale``: the ``HxWx3`` uint8 array cached."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if scale != 1.0:
        image = image.resize(scaled_size(image.size, scale), Image.Resampling.BILINEAR)
    return np.array(image)  # a writable copy, as torch.from_numpy wants


def unit_float(image: Tensor) -> Tensor:
    """A uint8 ``[3, H, W]`` image as the model's input: float in [0, 1]."""
    return image.float().div_(255)


def image_tensor(image: np.ndarray) -> Tensor:
    """An ``HxWx3`` uint8 array as the model's input: float ``[3, H, W]`` in [0, 1]."""
    return unit_float(torch.from_numpy(image).permute(2, 0, 1))


def load_input(path: Path, opt: Namespace, info: DataInfo) -> Tensor:
    """One image file as the model's input, exactly as :class:`CarvanaDataset` gives it."""
    return image_tensor(scale_image(open_image(path), opt.img_scale))


def mask_labels(mask: Image.Image, path: Path) -> np.ndarray:
    """The ``HxW`` uint8 labels in {0, 1} of a decoded mask; values other than {0, 1} or
    {0, 255} are a UsageError naming ``path``."""
    labels = np.asarray(mask.convert("L") if mask.mode not in ("P", "L", "1") else mask)
    values = set(np.unique(labels).tolist())
    if not (values <= {0, 1} or values <= {0, 255}):
        found = sorted(values)[:6]
        raise UsageError(f"mask {path} has values {found}; expected {{0,1}} or {{0,255}}")
    return (labels > 0).astype(np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """The mask file at ``path`` as ``HxW`` uint8 labels in {0, 1}, at its own resolution."""
    return mask_labels(open_image(path), path)


def decode_pair(pair: Pair, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Decode, check and resize one pair: ``(HxWx3 uint8 image, HxW uint8 mask in {0,1})``.

    Images resize bilinear, masks nearest (interpolated labels would not be 0 or 1).
    """
    image, mask = open_image(pair.image), open_image(pair.mask)
    if mask.size != image.size:
        raise UsageError(
            f"mask {pair.mask} is {mask.size[0]}x{mask.size[1]} but its image is "
            f"{image.size[0]}x{image.size[1]}; expected the same size"
        )
    labels = mask_labels(mask, pair.mask)
    if scale != 1.0:
        size = scaled_size(image.size, scale)
        labels = np.array(Image.fromarray(labels).resize(size, Image.Resampling.NEAREST))
    return scale_image(image, scale), labels


def _signature(pair: Pair) -> np.ndarray:
    stats = [pair.image.stat(), pair.mask.stat()]
    return np.array([v for s in stats for v in (s.st_size, s.st_mtime_ns)], dtype=np.int64)


def cache_pair(pair: Pair, scale: float, cache_dir: Path) -> Path:
    """The cached arrays of ``pair`` at ``scale``, decoded now if absent or stale."""
    path = cache_dir / f"{pair.id}.npz"
    signature = _signature(pair)
    if path.is_file():
        try:
            with np.load(path) as cached:
                if np.array_equal(cached["signature"], signature):
                    return path
        except (OSError, ValueError, KeyError):
            pass  # unreadable cache entry: decode again below
    image, mask = decode_pair(pair, scale)
    buffer = io.BytesIO()
    np.savez(buffer, image=image, mask=mask, signature=signature)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


class CarvanaDataset(Dataset):
    """``(image float [3,H,W] in [0,1], mask float [1,H,W] in {0,1})`` for a list of pairs.

    With a ``cache_dir`` the pairs are decoded (two threads) and cached at construction, so a
    bad file fails before training starts; without one each access decodes the JPEG again.
    With ``augment``, each sample is augmented on its uint8 arrays by draws seeded from
    ``seed``, the epoch and its index, so the loader indexes it with ``(epoch, index)``.
    """

    def __init__(
        self,
        pairs: list[Pair],
        scale: float,
        cache_dir: Path | None,
        augment: PairAugment | None = None,
        seed: int = 0,
    ) -> None:
        self.pairs = pairs
        self.ids = [p.id for p in pairs]
        self.scale = scale
        self.augment = augment
        self.seed = seed
        self.files: list[Path] | None = None
        if cache_dir is not None:
            try:
                cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UsageError(
                    f"--cache_dir {cache_dir}: cannot create it ({err.strerror}); "
                    "expected a writable directory"
                ) from None
            with ThreadPoolExecutor(max_workers=2) as pool:  # PIL decodes without the GIL
                self.files = list(pool.map(lambda p: cache_pair(p, scale, cache_dir), pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def arrays(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.files is None:
            return decode_pair(self.pairs[index], self.scale)
        with np.load(self.files[index]) as cached:
            return cached["image"], cached["mask"]

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

    def original_mask(self, index: int) -> Tensor:
        """The mask of sample ``index`` at the data's own resolution, ``[1, H, W]`` uint8 in
        {0, 1}, read from its file: the resolution at which Carvana is scored."""
        return torch.from_numpy(read_mask(self.pairs[index].mask)).unsqueeze(0)


def in_memory_split(dataset: CarvanaDataset, augment: PairAugment | None) -> TensorSplit:
    """The pairs of ``dataset`` as one uint8 tensor of images and one of masks (read from the
    cache when there is one), for batches gathered and augmented on the device."""
    image, _ = dataset.arrays(0)
    height, width, channels = image.shape
    images = torch.empty(len(dataset), channels, height, width, dtype=torch.uint8)
    masks = torch.empty(len(dataset), 1, height, width, dtype=torch.uint8)
    for index, pair in enumerate(dataset.pairs):
        image, labels = dataset.arrays(index)
        if image.shape != (height, width, channels):
            raise UsageError(
                f"image {pair.image} is {image.shape[1]}x{image.shape[0]} at --img_scale "
                f"{dataset.scale:g}, but {dataset.pairs[0].image} is {width}x{height}; "
                "--in_memory True needs images of one size (or pass --in_memory False)"
            )
        images[index] = torch.from_numpy(image).permute(2, 0, 1)
        masks[index, 0] = torch.from_numpy(labels)
    return TensorSplit(images, masks, (0.0,) * channels, (1.0,) * channels, augment)


def build_carvana(opt: Namespace) -> DataSplits:
    """Splits by car id (``val_ratio``, ``test_ratio``; or k folds of cars with ``folds`` and
    ``fold``), resized by ``img_scale``, cached; the training split augmented by ``augment``;
    training and validation held as tensors with ``in_memory``."""
    root = Path(opt.data_dir)
    pairs = find_pairs(root)
    folds = getattr(opt, "folds", 0)  # runs from before k-fold existed had none
    if folds:
        train, val, test = fold_by_car(pairs, folds, opt.fold, opt.val_ratio, opt.seed)
    else:
        train, val, test = split_by_car(pairs, opt.val_ratio, opt.test_ratio, opt.seed)
    train_val_keep = opt.train_val_sample_rate
    train = [train[i] for i in subsample_indices(len(train), train_val_keep, opt.seed)]
    val = [val[i] for i in subsample_indices(len(val), train_val_keep, opt.seed)]
    test = [test[i] for i in subsample_indices(len(test), opt.test_sample_rate, opt.seed)]
    cache = cache_folder(opt, root, f"scale_{opt.img_scale:g}")
    augment = augment_from_options(opt)
    train_set = CarvanaDataset(train, opt.img_scale, cache, augment, opt.seed)
    val_set = CarvanaDataset(val, opt.img_scale, cache)
    height, width, channels = train_set.arrays(0)[0].shape
    if getattr(opt, "in_memory", True):  # the test split stays per sample: the evaluator
        train_set = in_memory_split(train_set, augment)  # adds each pair's original mask
        val_set = in_memory_split(val_set, None)
    return DataSplits(
        train=train_set,
        val=val_set,
        test=CarvanaDataset(test, opt.img_scale, cache),
        input_shape=(channels, height, width),
        num_classes=1,
        class_names=["car"],
    )
