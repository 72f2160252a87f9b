"""FashionMNIST through torchvision: a seeded train/val split of the 60k set, the 10k test set."""

import contextlib
import io
from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from torch.utils.data import Subset

from data.splits import DataSplits, split_indices, subsample_indices
from utils.errors import UsageError

if TYPE_CHECKING:
    from torchvision.datasets import FashionMNIST

MEAN, STD = (0.2860,), (0.3530,)
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def load_split(root: Path, train: bool) -> "FashionMNIST":
    """The official train or test set under ``root/FashionMNIST``, downloaded if missing."""
    # Imported here: torchvision takes a second to import, which runs on other data skip.
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    raw = root / "FashionMNIST" / "raw"
    made = [level for level in (raw, *raw.parents) if not level.exists()]
    try:
        # torchvision prints each failed mirror; the UsageError below says it in one line.
        with contextlib.redirect_stdout(io.StringIO()):
            return datasets.FashionMNIST(root, train=train, transform=transform, download=True)
    except Exception as err:
        remove_empty_dirs(made)
        raise UsageError(
            f"FashionMNIST not found under {raw} and the download failed ({type(err).__name__}); "
            f"offline, put {', '.join(FILES)} in {raw}"
        ) from None


def remove_empty_dirs(paths: list[Path]) -> None:
    """Remove ``paths`` in order (deepest first), stopping at one that is not an empty dir.

    After a failed download this removes the directories it created, so a mistyped
    ``--data_dir`` leaves nothing behind.
    """
    for path in paths:
        try:
            path.rmdir()
        except OSError:  # not empty (part of a download), or never created
            return


def build_fashion_mnist(opt: Namespace) -> DataSplits:
    """Train/val from the official train set (split by ``val_ratio``), test = official test set.

    ``train_val_sample_rate`` / ``test_sample_rate`` keep a seeded share for quick runs.
    """
    root = Path(opt.data_dir)
    train_pool = load_split(root, train=True)
    test_set = load_split(root, train=False)
    pool = subsample_indices(len(train_pool), opt.train_val_sample_rate, opt.seed)
    train_idx, val_idx = split_indices(pool, opt.val_ratio, opt.seed)
    test_idx = subsample_indices(len(test_set), opt.test_sample_rate, opt.seed)
    return DataSplits(
        train=Subset(train_pool, train_idx),
        val=Subset(train_pool, val_idx),
        test=Subset(test_set, test_idx),
        input_shape=(1, 28, 28),
        num_classes=len(train_pool.classes),
        class_names=list(train_pool.classes),
    )
