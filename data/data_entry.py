"""Pick a dataset by ``--data_type`` and wrap its splits in loaders.

Adding a dataset is one new file in ``data/``: a function that builds its splits, registered
under its name where it is defined::

    @register_dataset("MyData", options=(add_options,))
    def build_my_data(opt: Namespace) -> DataSplits: ...

The selector finds it by importing every module of ``data/`` (see :class:`Registry`).
``options`` declare the dataset's own flags (``--img_scale``); a run records only those of
its own dataset. ``load_input(path, opt, info) -> Tensor`` turns one image file into the
model's input exactly as the dataset does; a dataset that names it can predict new files
(``--input``), one without it cannot. ``example(folder) -> options`` writes a few samples in
the dataset's layout (and, for one that reads images, some image files) and returns the
options that read them: the contract tests (``tests/test_contracts.py``) build every
registered dataset from it. A dataset that reads no files needs none. ``pixels(opt, info) ->
Pixels`` says, in tensor terms, what ``load_input`` does to an image's pixels (resize,
scale, normalise), so that ``--export`` can put it inside the exported program.
"""

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

from data.memory import MemoryLoader, TensorSplit
from data.sampler import ResumableSampler
from data.splits import DataInfo, DataSplits, balanced_sample_weights
from utils.errors import UsageError
from utils.loop.device import move_to
from utils.loop.export import Pixels
from utils.registry import OptionDeclarer, Registry
from utils.seed import seed_worker

InputLoader = Callable[[Path, Namespace, DataInfo], Tensor]
Builder = Callable[[Namespace], DataSplits]


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset's entry points: its splits, one image file as its model's input (where it
    reads image files), the declarers of the options it reads beyond the base ones, a writer
    of a small example of its data (where it reads files), and its pixels' preprocessing
    (where it reads images)."""

    build: Builder
    load_input: InputLoader | None = None
    options: tuple[OptionDeclarer, ...] = ()
    example: Callable[[Path], dict[str, Any]] | None = None
    pixels: Callable[[Namespace, DataInfo], Pixels] | None = None


DATASETS: Registry[DatasetEntry] = Registry("data_type", "data", "data")


def register_dataset(
    name: str,
    *,
    options: tuple[OptionDeclarer, ...] = (),
    load_input: InputLoader | None = None,
    example: Callable[[Path], dict[str, Any]] | None = None,
    pixels: Callable[[Namespace, DataInfo], Pixels] | None = None,
) -> Callable[[Builder], Builder]:
    """Register the decorated ``build(opt) -> DataSplits`` as ``--data_type name``."""

    def register(build: Builder) -> Builder:
        DATASETS.register(name, DatasetEntry(build, load_input, options, example, pixels))
        return build

    return register


def build_datasets(opt: Namespace) -> DataSplits:
    """Build the splits of ``opt.data_type``; an unknown name lists the known ones."""
    return DATASETS.lookup(opt.data_type).build(opt)


def input_loader(opt: Namespace, info: DataInfo) -> Callable[[Path], Tensor]:
    """``path -> model input`` for image files, preprocessed as ``opt.data_type`` does it; a
    dataset that reads no image files is a UsageError."""
    load = DATASETS.lookup(opt.data_type).load_input
    if load is None:
        raise UsageError(
            f"--input: --data_type {opt.data_type} reads no image files; expected a dataset "
            "that names a load_input"
        )
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
    ``(epoch, index)`` pairs. With ``--sampler balanced`` a shuffled epoch draws every class
    about equally often (with replacement).
    """
    balanced = getattr(opt, "sampler", "random") == "balanced"  # older runs had none
    sampler = ResumableSampler(
        len(dataset),
        seed=opt.seed,
        shuffle=shuffle,
        num_replicas=num_replicas,
        rank=rank,
        pad=pad,
        keyed=getattr(dataset, "epoch_keyed", False),
        weights=balanced_sample_weights(dataset) if shuffle and balanced else None,
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
        collate_fn=getattr(dataset, "collate_fn", None),  # a dataset's own batching, if any
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
