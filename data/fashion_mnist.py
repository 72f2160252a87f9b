"""FashionMNIST through torchvision: a seeded train/val split of the 60k set, the 10k test set.

By default (``--in_memory True``) each split is a :class:`TensorSplit` of the uint8 images that
torchvision has already loaded, batched on the device by ``MemoryLoader``; ``--in_memory False``
keeps torchvision's per-sample path, where :func:`image_to_input` turns each PIL image into
the model's input. Prediction on image files (:func:`load_input`) calls that same function.
"""

import contextlib
import io
import struct
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Subset

from data import memory
from data.data_entry import register_dataset
from data.image_files import open_image
from data.memory import TensorSplit
from data.splits import DataInfo, DataSplits, kfold_split, split_indices, subsample_indices
from utils.errors import UsageError
from utils.loop.export import Pixels
from utils.records.rundir import removed_on_failure

if TYPE_CHECKING:
    from torchvision.datasets import FashionMNIST

MEAN, STD = (0.2860,), (0.3530,)
SIZE = (28, 28)
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def load_split(root: Path, train: bool) -> "FashionMNIST":
    """The official train or test set under ``root/FashionMNIST``, downloaded if missing."""
    # Imported here: torchvision takes a second to import, which runs on other data skip.
    from torchvision import datasets

    raw = root / "FashionMNIST" / "raw"
    try:
        # torchvision prints each failed mirror; the UsageError below says it in one line.
        with removed_on_failure(raw), contextlib.redirect_stdout(io.StringIO()):
            return datasets.FashionMNIST(root, train=train, transform=image_to_input, download=True)
    except Exception as err:
        raise UsageError(
            f"FashionMNIST not found under {raw} and the download failed ({type(err).__name__}); "
            f"offline, put {', '.join(FILES)} in {raw}"
        ) from None


def image_to_input(image: Image.Image) -> Tensor:
    """An image as the model's input: grayscale, 28x28 (bilinear), then torchvision's
    ``ToTensor`` and ``Normalize(MEAN, STD)``, written out: importing torchvision for them
    would cost each prediction a second. The dataset's own samples are already 28x28 grey."""
    if image.mode != "L":
        image = image.convert("L")
    if image.size != SIZE:
        image = image.resize(SIZE, Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).unsqueeze(0)
    (mean,), (std,) = MEAN, STD
    return pixels.float().div_(255).sub_(mean).div_(std)


def load_input(path: Path, opt: Namespace, info: DataInfo) -> Tensor:
    """One image file of any size and colour as the model's input, as the Dataset makes it."""
    return image_to_input(open_image(path))


def in_memory_split(source: "FashionMNIST", indices: list[int]) -> TensorSplit:
    """The samples ``indices`` of ``source`` as one uint8 ``[N, 1, 28, 28]`` tensor split."""
    index = torch.tensor(indices, dtype=torch.long)
    return TensorSplit(source.data[index].unsqueeze(1), source.targets[index], MEAN, STD)


def write_example(folder: Path) -> dict[str, Any]:
    """A few random 28x28 images in the official files' format (unpacked, as torchvision
    leaves them) under ``folder``, and the test images as PNGs in ``folder/images``."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    for prefix, count in (("train", 40), ("t10k", 10)):
        pixels = torch.randint(0, 256, (count, *SIZE), generator=generator, dtype=torch.uint8)
        labels = torch.arange(count, dtype=torch.uint8) % 10
        header = struct.pack(">IIII", 2051, count, *SIZE)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(header + pixels.numpy().tobytes())
        header = struct.pack(">II", 2049, count)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(header + labels.numpy().tobytes())
    (folder / "images").mkdir(exist_ok=True)
    for i, image in enumerate(pixels):
        Image.fromarray(image.numpy()).save(folder / "images" / f"{i}.png")
    return {"data_dir": str(folder)}


@register_dataset(
    "FashionMNIST",
    options=(memory.add_options,),
    load_input=load_input,
    example=write_example,
    pixels=lambda opt, info: Pixels(SIZE, MEAN, STD),
)
def build_fashion_mnist(opt: Namespace) -> DataSplits:
    """Train/val from the official train set (split by ``val_ratio``), test = official test set;
    with ``folds``, test = fold ``fold`` of the official train set, train/val the other folds.

    ``train_val_sample_rate`` / ``test_sample_rate`` keep a seeded share for quick runs. Both
    paths (``opt.in_memory``) hold the same samples in the same order; a config written before
    the option existed gets the default, in memory.
    """
    root = Path(opt.data_dir)
    train_pool = load_split(root, train=True)
    test_set = load_split(root, train=False)
    pool = subsample_indices(len(train_pool), opt.train_val_sample_rate, opt.split_seed)
    folds = getattr(opt, "folds", 0)  # runs from before k-fold existed had none
    if folds:  # the test is a fold of the official train set; its test set stays unseen
        pool, held = kfold_split(pool, folds, opt.fold, opt.split_seed)
        keep = subsample_indices(len(held), opt.test_sample_rate, opt.split_seed)
        test_source, test_idx = train_pool, [held[i] for i in keep]
    else:
        test_source = test_set
        test_idx = subsample_indices(len(test_set), opt.test_sample_rate, opt.split_seed)
    train_idx, val_idx = split_indices(pool, opt.val_ratio, opt.split_seed)
    split = in_memory_split if getattr(opt, "in_memory", True) else Subset
    return DataSplits(
        train=split(train_pool, train_idx),
        val=split(train_pool, val_idx),
        test=split(test_source, test_idx),
        input_shape=(1, 28, 28),
        num_outputs=len(train_pool.classes),
        class_names=list(train_pool.classes),
    )
