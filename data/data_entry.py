"""Pick a dataset by ``--data_type`` and wrap its splits in DataLoaders.

Adding a dataset: write ``data/<name>.py`` with a ``build_<name>(opt) -> DataSplits`` function
and add one line to ``DATASETS`` below.
"""

from argparse import Namespace
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from data.carvana import build_carvana
from data.fashion_mnist import build_fashion_mnist
from data.sampler import ResumableSampler
from data.splits import DataSplits
from utils.registry import lookup
from utils.seed import seed_worker

DATASETS: dict[str, Callable[[Namespace], DataSplits]] = {
    "FashionMNIST": build_fashion_mnist,
    "Carvana": build_carvana,
}


def build_datasets(opt: Namespace) -> DataSplits:
    """Build the splits of ``opt.data_type``; an unknown name lists the known ones."""
    return lookup(DATASETS, opt.data_type, "data_type")(opt)


def build_loader(
    dataset: Dataset,
    opt: Namespace,
    shuffle: bool,
    device: torch.device,
) -> DataLoader:
    """A DataLoader over ``dataset`` whose order is a :class:`ResumableSampler` of ``opt.seed``.

    The loader's own generator seeds its workers, so iterating it never draws from the global
    torch RNG that the model's dropout uses: a resumed run replays the same random numbers.
    """
    workers = opt.num_workers
    return DataLoader(
        dataset,
        batch_size=opt.batch_size,
        sampler=ResumableSampler(len(dataset), seed=opt.seed, shuffle=shuffle),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=seed_worker if workers > 0 else None,
        generator=torch.Generator().manual_seed(opt.seed),
        persistent_workers=workers > 0,
    )
