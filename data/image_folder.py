"""Classification on your own images, one folder per class (torchvision's ImageFolder layout):
``DIR/<class>/<image>``, or ``DIR/train/<class>/<image>`` with optional ``DIR/val/<class>/``
and ``DIR/test/<class>/`` beside it.

The class names are the sorted folder names of the training images. A split without a folder
of its own is drawn from the training images class by class (``--val_ratio``,
``--test_ratio``), and ``--folds`` deals them into stratified folds. Every image is made one
shape (``--img_size``, ``--channels``; by default those of the data) by :func:`image_pixels`,
which prediction (:func:`load_input`) calls too, and normalised by the per-channel mean and std
measured on the training split, which the checkpoint keeps: prediction needs no data folder.
``--augment`` and ``--aug_<name>`` change the training images (flips, shifts, zooms,
rotations, colours), drawn per sample so a resumed run draws what it drew before.

A set whose pixels fit in :data:`IN_MEMORY_LIMIT` is decoded once (the uint8 arrays cached
under ``--cache_dir``) into one tensor per split, batched on the device (``data/memory.py``);
a larger one, or ``--in_memory False``, is read per sample in DataLoader workers. A file that
cannot be read is skipped with a warning, and the others train: found at the start (every
file's header; on the in-memory path, its pixels too) it is counted and left out; found later
by a worker (a JPEG cut short after its header), the next image stands in for it.
"""

import argparse
import hashlib
import logging
import math
import os
import time
import zipfile
from argparse import Namespace
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from data import memory
from data.augment import (
    PairAugment,
    add_augment_options,
    augment_from_options,
    sample_seed,
    seeded,
)
from data.data_entry import register_dataset
from data.image_files import (
    IMAGE_SUFFIXES,
    UNREADABLE,
    add_cache_options,
    add_size_option,
    cache_folder,
    height_width,
    open_image,
    unreadable,
)
from data.memory import TensorSplit, affine, normalize
from data.splits import (
    DataInfo,
    DataSplits,
    stratified_kfold,
    stratified_split,
    stratified_subsample,
    subsample_indices,
)
from utils.atomic import atomic_write
from utils.errors import UsageError
from utils.loop.export import Pixels

log = logging.getLogger(__name__)
T = TypeVar("T")

IN_MEMORY_LIMIT = 4 * 2**30  # bytes of uint8 pixels, all splits together, held in memory
STATS_IMAGES = 2000  # training images that measure the mean and std of a set read per sample
DECODE_THREADS = min(8, os.cpu_count() or 1)  # PIL decodes and resizes without the GIL
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
WIDE_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})  # 16-bit greys
LAYOUT = (
    "DIR/<class>/<image> (a folder per class), or DIR/train/<class>/<image> with optional "
    "val/ and test/ folders of the same classes beside it"
)


def add_options(group: argparse._ArgumentGroup) -> None:
    """The input channels every image is made (its size: ``--img_size``, shared)."""
    group.add_argument(
        "--channels",
        type=int,
        choices=(0, 1, 3),
        default=0,
        help="input channels, 1 (grey) or 3 (RGB); 0: 1 if every image is greyscale, else 3",
    )


class Sample(NamedTuple):
    """One image file and the index of its class."""

    path: Path
    label: int


class Header(NamedTuple):
    """What an image's header tells: its ``(height, width)`` and whether it is greyscale."""

    size: tuple[int, int]
    grey: bool


def class_folders(folder: Path) -> list[str]:
    """The sorted names of ``folder``'s subfolders; hidden ones (the cache) are not classes."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def images_under(folder: Path) -> list[Path]:
    """The image files in ``folder`` and its subfolders, sorted; hidden ones left out."""
    found = []
    for parent, folders, files in os.walk(folder, followlinks=True):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [
            os.path.join(parent, name)
            for name in files
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith(".")
        ]
    return [Path(path) for path in sorted(found)]


def samples_in(folder: Path, names: list[str], classes: list[str]) -> list[Sample]:
    """The images under ``folder/<name>`` (subfolders too, sorted), labelled by ``classes``."""
    if not names:
        raise UsageError(f"{folder}: no class folders; expected {folder}/<class>/<image>")
    samples = []
    for name in names:
        images = images_under(folder / name)
        if not images:
            raise UsageError(
                f"class folder {folder / name} holds no image; expected files ending in "
                f"{' '.join(IMAGE_SUFFIXES)}"
            )
        samples += [Sample(path, classes.index(name)) for path in images]
    return samples


def find_folders(root: Path) -> tuple[list[str], dict[str, Path], dict[str, list[Sample]]]:
    """The class names, and the folder and samples of ``train`` and, where they exist, of
    ``val`` and ``test``; anything not laid out as :data:`LAYOUT` is a UsageError."""
    if not root.is_dir():
        raise UsageError(f"--data_dir {root}: no such folder; expected {LAYOUT}")
    folders = {name: root / name for name in ("train", "val", "test") if (root / name).is_dir()}
    if folders and "train" not in folders:
        given = " and ".join(f"{name}/" for name in folders)
        raise UsageError(f"--data_dir {root}: {given} but no train/ folder; expected {LAYOUT}")
    folders.setdefault("train", root)
    classes = class_folders(folders["train"])
    if not classes:
        raise UsageError(
            f"--data_dir {root}: no class folders in {folders['train']}; expected {LAYOUT}"
        )
    if len(classes) < 2:
        raise UsageError(
            f"--data_dir {root}: one class folder ({folders['train'] / classes[0]}); expected "
            "at least 2 classes, a folder each"
        )
    samples = {"train": samples_in(folders["train"], classes, classes)}
    for split in ("val", "test"):
        if split not in folders:
            continue
        names = class_folders(folders[split])
        if extra := sorted(set(names) - set(classes)):
            raise UsageError(
                f"class folder {folders[split] / extra[0]} is not a class of "
                f"{folders['train']} ({', '.join(classes)}); expected the training classes"
            )
        samples[split] = samples_in(folders[split], names, classes)
    return classes, folders, samples


def read_header(path: Path) -> Header:
    """The size and mode of the image at ``path``, from its header; ``verify`` then checks
    the rest of the file where the format allows it (PNG's checksums) without decoding it."""
    try:
        with Image.open(path) as image:
            header = Header((image.height, image.width), image.mode in GREY_MODES)
            image.verify()
    except UNREADABLE as err:
        raise unreadable(path, err) from None
    return header


def in_threads(function: Callable[[Path], T], paths: Sequence[Path]) -> list[T | str]:
    """``function`` of each path in a pool of threads; a UsageError becomes its message."""

    def call(chunk: Sequence[Path]) -> list[T | str]:
        results: list[T | str] = []
        for path in chunk:
            try:
                results.append(function(path))
            except UsageError as err:
                results.append(str(err))
        return results

    size = max(1, math.ceil(len(paths) / (8 * DECODE_THREADS)))  # a future per chunk, not per file
    chunks = [paths[start : start + size] for start in range(0, len(paths), size)]
    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        return [result for results in pool.map(call, chunks) for result in results]


def warn_unreadable(errors: list[str], total: int) -> None:
    """One warning per file that could not be read, and their count."""
    for error in errors:
        log.warning("skipped: %s", error)
    if errors:
        log.warning("skipped %d unreadable image files of %d", len(errors), total)


def read_headers(
    samples: dict[str, list[Sample]],
) -> tuple[dict[str, list[Sample]], dict[Path, Header]]:
    """The samples whose files can be read, and their headers; the others are skipped."""
    paths = [s.path for split in samples.values() for s in split]
    headers = dict(zip(paths, in_threads(read_header, paths), strict=True))
    warn_unreadable([h for h in headers.values() if isinstance(h, str)], len(paths))
    readable = {path: h for path, h in headers.items() if isinstance(h, Header)}
    return {k: [s for s in v if s.path in readable] for k, v in samples.items()}, readable


def input_shape(opt: Namespace, first: Path, headers: dict[Path, Header]) -> tuple[int, int, int]:
    """``(C, H, W)`` of every input: ``--channels`` and ``--img_size``, or from the data: 1
    channel if every image is greyscale, else 3, and the size of ``first``."""
    channels = opt.channels
    if not channels:
        channels = 1 if all(h.grey for h in headers.values()) else 3
        why = "every image is greyscale" if channels == 1 else "some images are in colour"
        log.info("--channels 0: %d, as %s", channels, why)
    if opt.img_size:
        height, width = height_width(opt.img_size)
    else:
        height, width = headers[first].size
        log.info("--img_size not given: %dx%d, the size of %s", height, width, first)
    return channels, height, width


def image_pixels(image: Image.Image, shape: Sequence[int]) -> Tensor:
    """``image`` as uint8 ``[C, H, W]`` of ``shape``: grey or RGB (16-bit greys scaled to 8
    bits, which PIL's ``convert`` would clip), resized bilinear by PIL.

    Training data and prediction both go through it: a model sees its inputs made one way.
    """
    channels, height, width = shape
    if image.mode in WIDE_GREY_MODES:
        levels = np.rint(np.asarray(image, dtype=np.float64) / 257)
        image = Image.fromarray(np.clip(levels, 0, 255).astype(np.uint8))
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8))
    return pixels.unsqueeze(0) if channels == 1 else pixels.permute(2, 0, 1).contiguous()


def load_input(path: Path, opt: Namespace, info: DataInfo) -> Tensor:
    """One image file as the model's input, from the checkpoint's shape, mean and std alone:
    what the dataset gives for it."""
    return normalize(image_pixels(open_image(path), info.input_shape), *affine(info.mean, info.std))


def pixel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel mean and std (on the 0-1 scale, as ``Normalize`` takes them) of uint8
    images ``[N, C, H, W]``, exact from a count of each level; a constant channel gets std 1."""
    levels = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        mean = (counts * levels).sum() / counts.sum()
        std = ((counts * (levels - mean) ** 2).sum() / counts.sum()).sqrt().item()
        means.append(mean.item())
        stds.append(std if std > 0 else 1.0)
    return tuple(means), tuple(stds)


def decode(paths: list[Path], shape: tuple[int, int, int]) -> tuple[Tensor, list[str]]:
    """The images at ``paths`` as uint8 ``[N, C, H, W]``, decoded in threads, and for each
    file the error that kept it from being read ('' where none; its pixels stay zero)."""
    images = torch.zeros(len(paths), *shape, dtype=torch.uint8)
    decoded = in_threads(lambda path: image_pixels(open_image(path), shape), paths)
    for index, pixels in enumerate(decoded):
        if isinstance(pixels, Tensor):
            images[index] = pixels
    return images, [item if isinstance(item, str) else "" for item in decoded]


def cache_key(paths: list[Path], root: Path) -> tuple[str, np.ndarray]:
    """The files' paths under ``root`` (one per line) and their sizes and mtimes."""
    stats = [path.stat() for path in paths]
    names = "\n".join(str(path.relative_to(root)) for path in paths)
    return names, np.array([(s.st_size, s.st_mtime_ns) for s in stats], dtype=np.int64)


def read_cache(path: Path, names: str, signature: np.ndarray) -> tuple[Tensor, list[str]] | None:
    """The decoded images and errors cached at ``path``, or None if absent, stale or broken."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as cached:
            if str(cached["names"]) != names or not np.array_equal(cached["signature"], signature):
                return None
            return torch.from_numpy(cached["images"]), [str(e) for e in cached["errors"]]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a broken cache file: decoded again


def decode_cached(
    paths: list[Path], shape: tuple[int, int, int], root: Path, cache: Path | None
) -> tuple[Tensor, list[str]]:
    """:func:`decode`, kept under ``cache`` in a file named by the shape and the files' paths
    and redone when a file's size or mtime changed (or the cache file is unreadable)."""
    if cache is None:
        return decode(paths, shape)
    start = time.perf_counter()
    names, signature = cache_key(paths, root)
    digest = hashlib.sha1(names.encode()).hexdigest()[:16]
    path = cache / f"{'x'.join(map(str, shape))}_{digest}.npz"
    cached = read_cache(path, names, signature)
    if cached is not None:
        log.info("%d decoded images read from the cache %s", len(paths), path)
        return cached
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(
            f"--cache_dir {cache}: cannot create it ({err.strerror}); expected a writable directory"
        ) from None
    images, errors = decode(paths, shape)
    arrays = {"images": images.numpy(), "errors": np.array(errors), "signature": signature}
    atomic_write(path, lambda f: np.savez(f, names=np.array(names), **arrays))
    seconds = time.perf_counter() - start
    log.info("%d images decoded in %.1f s, cached in %s", len(paths), seconds, path)
    return images, errors


def labels_of(samples: list[Sample]) -> list[int]:
    return [s.label for s in samples]


def pick(samples: list[Sample], positions: list[int]) -> list[Sample]:
    return [samples[i] for i in positions]


def stratified_cut(
    samples: list[Sample], ratio: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """``(kept, held)`` samples: a seeded ``ratio`` share of each class held."""
    kept, held = stratified_split(labels_of(samples), ratio, seed)
    return pick(samples, kept), pick(samples, held)


def split_samples(
    opt: Namespace, root: Path, found: dict[str, list[Sample]]
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Train, val and test: the folders that exist, the others drawn from the training images
    (``--val_ratio``, ``--test_ratio``; the test a stratified fold with ``--folds``), each
    class kept in ``--train_val_sample_rate`` / ``--test_sample_rate`` shares."""
    pool = found["train"]
    pool = pick(
        pool, stratified_subsample(labels_of(pool), opt.train_val_sample_rate, opt.split_seed)
    )
    if opt.folds:
        rest, held = stratified_kfold(labels_of(pool), opt.folds, opt.fold, opt.split_seed)
        pool, test = pick(pool, rest), pick(pool, held)
        if "test" in found:
            log.info(
                "--folds: the test is fold %d of the training images; test/ is unused", opt.fold
            )
    elif "test" in found:
        test = found["test"]
    else:
        pool, test = stratified_cut(pool, opt.test_ratio, opt.split_seed)
    if "val" in found:
        val = found["val"]
        val = pick(
            val, stratified_subsample(labels_of(val), opt.train_val_sample_rate, opt.split_seed)
        )
        train = pool
    else:
        train, val = stratified_cut(pool, opt.val_ratio, opt.split_seed)
    test = pick(test, stratified_subsample(labels_of(test), opt.test_sample_rate, opt.split_seed))
    if not val or not test:
        missing = "val" if not val else "test"
        raise UsageError(
            f"--data_dir {root}: too few training images ({len(found['train'])}) to draw a "
            f"{missing} split from; expected at least 3 images of a class, or a {missing}/ folder"
        )
    return train, val, test


class ImageFolderSplit(Dataset):
    """``(input float [C, H, W], label)`` of image files, each decoded when it is read (in
    DataLoader workers): the per-sample path of sets too large to hold, with the inputs of the
    in-memory one. With ``augment``, each image is augmented on its uint8 pixels by draws
    seeded from ``seed``, the epoch and its index, so the loader indexes it with
    ``(epoch, index)``.

    A file whose header read well but whose pixels do not (a truncated JPEG) is skipped with a
    warning naming it: the next sample stands in for it, so the epoch keeps its batches.
    """

    def __init__(
        self,
        samples: list[Sample],
        shape: tuple[int, int, int],
        mean: Sequence[float],
        std: Sequence[float],
        augment: PairAugment | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = samples
        self.shape = shape
        self.scale, self.offset = affine(mean, std)
        self.augment = augment
        self.seed = seed
        self.unreadable: set[Path] = set()  # warned of in this process

    @property
    def labels(self) -> Tensor:
        """The class of every sample, without reading an image (``--class_weights``)."""
        return torch.tensor([sample.label for sample in self.samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def epoch_keyed(self) -> bool:
        """Whether samples depend on the epoch (augmented), so keys are ``(epoch, index)``."""
        return self.augment is not None

    def readable(self, index: int) -> tuple[Tensor, int]:
        """The uint8 pixels and label of sample ``index``, or of the next one that reads."""
        self.samples[index]  # an index past the end is an IndexError, as for a list
        for offset in range(len(self.samples)):
            path, label = self.samples[(index + offset) % len(self.samples)]
            try:
                return image_pixels(open_image(path), self.shape), label
            except UsageError as err:
                if path not in self.unreadable:
                    self.unreadable.add(path)
                    log.warning("skipped: %s; the next image stands in for it", err)
        raise UsageError(f"no image of this split can be read ({len(self.samples)} files)")

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        pixels, label = self.readable(index)
        if self.augment is not None:
            with seeded(sample_seed(self.seed, epoch, index)):
                pixels, _ = self.augment(pixels)
        return normalize(pixels, self.scale, self.offset), label


def held_in_memory(opt: Namespace, count: int, shape: tuple[int, int, int]) -> bool:
    """``--in_memory``, unless ``count`` images of ``shape`` exceed :data:`IN_MEMORY_LIMIT`."""
    if not getattr(opt, "in_memory", True):
        return False
    size = count * math.prod(shape)
    if size <= IN_MEMORY_LIMIT:
        return True
    log.info(
        "%d images of %s are %.1f GiB of pixels, over the %.0f GiB held in memory: read per "
        "sample in DataLoader workers instead",
        count,
        "x".join(map(str, shape)),
        size / 2**30,
        IN_MEMORY_LIMIT / 2**30,
    )
    return False


def tensor_splits(
    opt: Namespace,
    root: Path,
    splits: list[list[Sample]],
    shape: tuple[int, int, int],
    augment: PairAugment | None,
) -> tuple[list[TensorSplit], tuple[float, ...], tuple[float, ...]]:
    """The splits as :class:`TensorSplit` s, decoded once (cached), the first (training) one
    augmented by ``augment``, and the mean and std of the training split's pixels; a file that
    cannot be decoded is left out."""
    paths = sorted({s.path for split in splits for s in split}, key=str)
    images, errors = decode_cached(paths, shape, root, cache_folder(opt, root, "image_folder"))
    warn_unreadable([e for e in errors if e], len(paths))
    row = {path: i for i, (path, error) in enumerate(zip(paths, errors, strict=True)) if not error}
    picked = []
    for split in splits:
        readable = [s for s in split if s.path in row]
        index = torch.tensor([row[s.path] for s in readable], dtype=torch.long)
        picked.append((images[index], torch.tensor(labels_of(readable), dtype=torch.long)))
    mean, std = pixel_stats(picked[0][0])
    (train_images, train_labels), *others = picked
    train = TensorSplit(train_images, train_labels, mean, std, augment)
    return [train, *(TensorSplit(*split, mean, std) for split in others)], mean, std


def sample_splits(
    opt: Namespace,
    splits: list[list[Sample]],
    shape: tuple[int, int, int],
    augment: PairAugment | None,
) -> tuple[list[ImageFolderSplit], tuple[float, ...], tuple[float, ...]]:
    """The splits read per sample, the first (training) one augmented by ``augment``, and the
    mean and std of a seeded share of at most :data:`STATS_IMAGES` training images (one that
    cannot be decoded leaves training)."""
    train = splits[0]
    measured = pick(train, subsample_indices(len(train), STATS_IMAGES / len(train), opt.split_seed))
    images, errors = decode([s.path for s in measured], shape)
    warn_unreadable([e for e in errors if e], len(measured))
    mean, std = pixel_stats(images[torch.tensor([not e for e in errors], dtype=torch.bool)])
    log.info("mean and std measured on %d training images", len(measured))
    broken = {s.path for s, error in zip(measured, errors, strict=True) if error}
    readable = [s for s in train if s.path not in broken]
    train = ImageFolderSplit(readable, shape, mean, std, augment, opt.seed)
    others = [ImageFolderSplit(split, shape, mean, std) for split in splits[1:]]
    return [train, *others], mean, std


def write_example(folder: Path) -> dict[str, Any]:
    """Three class folders of six random 10x8 colour PNGs under ``folder/classes``."""
    generator = np.random.default_rng(0)
    for name in ("ant", "bee", "cat"):
        (folder / "classes" / name).mkdir(parents=True)
        for i in range(6):
            pixels = generator.integers(0, 256, (8, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "classes" / name / f"{i}.png")
    return {"data_dir": str(folder / "classes"), "cache_dir": str(folder / "cache")}


@register_dataset(
    "ImageFolder",
    options=(
        add_size_option,
        add_options,
        add_cache_options,
        add_augment_options,
        memory.add_options,
    ),
    load_input=load_input,
    example=write_example,
    pixels=lambda opt, info: Pixels(info.input_shape[1:], info.mean, info.std),
)
def build_image_folder(opt: Namespace) -> DataSplits:
    """Train/val/test of the class folders under ``opt.data_dir`` (see the module's
    docstring), made ``(C, H, W)`` and normalised by the training split's mean and std."""
    root = Path(opt.data_dir)
    classes, folders, found = find_folders(root)
    found, headers = read_headers(found)
    if unread := sorted(set(range(len(classes))) - set(labels_of(found["train"]))):
        folder = folders["train"] / classes[unread[0]]
        raise UsageError(f"class folder {folder} holds no readable image; expected images")
    shape = input_shape(opt, found["train"][0].path, headers)
    splits = list(split_samples(opt, root, found))
    drawn = "drawn from the training images"
    log.info(
        "%d classes in %s; val %s, test %s",
        len(classes),
        root,
        "from val/" if "val" in found else drawn,
        f"fold {opt.fold}" if opt.folds else "from test/" if "test" in found else drawn,
    )
    augment = augment_from_options(opt)
    if augment is not None and augment.recolor:
        raise UsageError(
            "--aug_recolor recolours the object a mask marks; ImageFolder has no masks: "
            "expected 0 (the other --aug_<name> strengths apply)"
        )
    if augment is not None and augment.crop is not None:
        raise UsageError(
            f"--aug_crop {opt.aug_crop}: a crop trains a segmentation model on parts of its "
            "images, but a classifier takes one input size; expected no --aug_crop with "
            "ImageFolder (--aug_shift and --aug_scale_* move an image within its size)"
        )
    if held_in_memory(opt, sum(map(len, splits)), shape):
        (train, val, test), mean, std = tensor_splits(opt, root, splits, shape, augment)
    else:
        (train, val, test), mean, std = sample_splits(opt, splits, shape, augment)
    return DataSplits(
        train=train,
        val=val,
        test=test,
        input_shape=shape,
        num_outputs=len(classes),
        class_names=classes,
        mean=mean,
        std=std,
    )
