"""A sampler whose order depends only on (seed, epoch) and that can start mid-epoch."""

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled (or in-order) indices, reproducible from ``seed`` and the epoch number.

    The order of epoch ``e`` is regenerated from ``seed + e`` instead of a running RNG, so a run
    resumed from a checkpoint sees the same order, and ``set_epoch(e, start=k)`` skips the
    first ``k`` samples a mid-epoch checkpoint had already trained on.
    """

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch whose order to produce and the position inside it to begin at."""
        self.epoch = epoch
        self.start = start

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        return iter(order[self.start :].tolist())

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start)
