"""Pick a dataset by ``--data_type`` and wrap its splits in loaders.

Adding a dataset: write ``data/<name>.py`` with a ``build_<name>(opt) -> DataSplits`` function
and a ``load_input(path, opt, info) -> Tensor`` that turns one image file into the model's
input exactly as the dataset does (prediction on new images calls it, with the run's options
and the checkpoint's :class:`DataInfo`), and add one line to
``DATASETS`` below. Options of the dataset's own (``--img_scale``) are declared by an
``add_options(group)`` function beside it, named in its line.
"""

import argparse
import functools
import itertools
from argparse import Namespace
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from data import carvana, fashion_mnist, image_folder, memory, pairs, seg_folder
from data.image_files import add_cache_options
from data.memory import MemoryLoader, TensorSplit
from data.sampler import ResumableSampler
from data.splits import DataInfo, DataSplits
from utils.augment import add_augment_options
from utils.device import move_to
from utils.registry import OptionDeclarer, add_entry_options, lookup
from utils.seed import seed_worker


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset's two entry points, its splits and one image file as its model's input, and
    the declarers of the options it reads beyond the base ones."""

    build: Callable[[Namespace], DataSplits]
    load_input: Callable[[Path, Namespace, DataInfo], Tensor]
    options: tuple[OptionDeclarer, ...] = ()


DATASETS: dict[str, DatasetEntry] = {
    "FashionMNIST": DatasetEntry(
        fashion_mnist.build_fashion_mnist, fashion_mnist.load_input, (memory.add_options,)
    ),
    "ImageFolder": DatasetEntry(
        image_folder.build_image_folder,
        image_folder.load_input,
        (image_folder.add_options, add_cache_options, add_augment_options, memory.add_options),
    ),
    "Carvana": DatasetEntry(
        carvana.build_carvana,
        pairs.load_input,
        (pairs.add_options, add_cache_options, add_augment_options, memory.add_options),
    ),
    "SegFolder": DatasetEntry(
        seg_folder.build_seg_folder,
        pairs.load_input,
        (
            pairs.add_options,
            seg_folder.add_options,
            add_cache_options,
            add_augment_options,
            memory.add_options,
        ),
    ),
}


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """Add every dataset's own options to ``parser``, one group per declarer."""
    add_entry_options(parser, "data", dataset_declarers())


def dataset_declarers() -> dict[str, tuple[OptionDeclarer, ...]]:
    """Each dataset's name -> the declarers of its own options."""
    return {name: entry.options for name, entry in DATASETS.items()}


def build_datasets(opt: Namespace) -> DataSplits:
    """Build the splits of ``opt.data_type``; an unknown name lists the known ones."""
    return lookup(DATASETS, opt.data_type, "data_type").build(opt)


def input_loader(opt: Namespace, info: DataInfo) -> Callable[[Path], Tensor]:
    """``path -> model input`` for image files, preprocessed as ``opt.data_type`` does it."""
    load = lookup(DATASETS, opt.data_type, "data_type").load_input
    return functools.partial(load, opt=opt, info=info)


def build_loader(
    dataset: Dataset,
    opt: Namespace,
    shuffle: bool,
    device: torch.device,
    num_replicas: int = 1,
    rank: int = 0,
    pad: bool = False,
) -> DataLoader | MemoryLoader:
    """Batches of ``dataset`` in the order of a :class:`ResumableSampler` of ``opt.seed``.

    A :class:`TensorSplit` gets a :class:`MemoryLoader`: the split moves to ``device`` once and
    batches are gathered there (``num_workers`` does not apply). Any other dataset gets a
    DataLoader whose own generator seeds its workers, so iterating it never draws from the
    global torch RNG that the model's dropout uses: a resumed run replays the same random
    numbers. For DDP, ``num_replicas`` and ``rank`` shard the order; ``pad`` (training) makes
    every rank's shard equally long by wrapping around (see :class:`ResumableSampler`). A
    dataset with ``epoch_keyed = True`` (its samples depend on the epoch) is indexed with
    ``(epoch, index)`` pairs.
    """
    sampler = ResumableSampler(
        len(dataset),
        seed=opt.seed,
        shuffle=shuffle,
        num_replicas=num_replicas,
        rank=rank,
        pad=pad,
        keyed=getattr(dataset, "epoch_keyed", False),
    )
    if isinstance(dataset, TensorSplit):
        return MemoryLoader(dataset, opt.batch_size, sampler, device)
    workers = opt.num_workers
    return DataLoader(
        dataset,
        batch_size=opt.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker if workers > 0 else None,
        generator=torch.Generator().manual_seed(opt.seed),
        persistent_workers=workers > 0,
    )


def first_batch(dataset: Dataset, batch_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """The first ``batch_size`` samples of ``dataset`` as one batch on ``device``, as a loader
    would give it (a dataset keyed by epoch is read at epoch 0)."""
    keyed = getattr(dataset, "epoch_keyed", False)
    first = range(min(batch_size, len(dataset)))
    return move_to(default_collate([dataset[(0, i) if keyed else i] for i in first]), device)


def end_workers(loader: Any) -> None:
    """End the persistent worker processes of a DataLoader (or of the loader a
    :class:`FirstBatches` wraps) now; iterating it again starts new ones.

    Left alone, they end when the loader is garbage collected, and a trainer sits in reference
    cycles: that may be much later, in the middle of another import, where every worker
    waits out a 5 s join before it is killed (seen as a suite that stalled for minutes).
    """
    loader = getattr(loader, "loader", loader)
    iterator = getattr(loader, "_iterator", None)  # DataLoader keeps it for persistent workers
    if iterator is not None:
        loader._iterator = None
        iterator._shutdown_workers()


class FirstBatches:
    """The first ``n`` batches of a loader, which it otherwise stands in for (``sampler``,
    ``len``): ``--fast_dev_run`` trains and evaluates on a few batches with the real code."""

    def __init__(self, loader: DataLoader | MemoryLoader, n: int) -> None:
        self.loader = loader
        self.n = n
        self.sampler = loader.sampler

    def __iter__(self) -> Iterator:
        return itertools.islice(self.loader, self.n)

    def __len__(self) -> int:
        return min(self.n, len(self.loader))
