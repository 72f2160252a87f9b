"""A sampler whose order depends only on (seed, epoch), can start mid-epoch and can be sharded."""

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled (or in-order) indices, reproducible from ``seed`` and the epoch number.

    The order of epoch ``e`` is regenerated from ``seed + e`` instead of a running RNG, so a run
    resumed from a checkpoint sees the same order, and ``set_epoch(e, start=k)`` skips the
    first ``k`` samples a mid-epoch checkpoint had already trained on.

    For distributed data parallel, ``num_replicas`` processes share the epoch order: rank ``r``
    takes its positions ``r, r + W, r + 2W...``. With ``pad`` (training) the order is first
    extended by wrapping around its start to a multiple of ``W``, so every rank gets
    ``ceil(N / W)`` samples and runs the same number of steps, as ``DistributedSampler`` does;
    without it (validation, test) the shards are disjoint and together exactly the N samples.
    With ``num_replicas=1`` the order is the epoch order itself.

    With ``weights`` (one per sample, ``--sampler balanced``) a shuffled epoch is N draws with
    replacement, sample ``i`` drawn with probability proportional to ``weights[i]``.

    With ``keyed`` it yields ``(epoch, index)`` pairs for a dataset whose samples depend on the
    epoch (random augmentation seeded per sample and epoch, see ``data.augment``): DataLoader
    workers hold their own copy of the dataset, so the epoch must travel with each index.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = False,
        keyed: bool = False,
        weights: Tensor | None = None,
    ) -> None:
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.pad = pad
        self.keyed = keyed
        self.weights = weights
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch whose order to produce and the position in this rank's shard to
        begin at."""
        self.epoch = epoch
        self.start = start

    def shard_size(self) -> int:
        """Samples of this rank's shard in a whole epoch (before ``start`` is skipped)."""
        n, world = self.num_samples, self.num_replicas
        if self.pad:
            return math.ceil(n / world)
        return len(range(self.rank, n, world))

    def indices(self) -> Tensor:
        """This rank's indices of the current epoch from ``start`` on, as an int64 tensor.

        The loaders use this directly; a Python list per epoch would cost a loop over N.
        """
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            if self.weights is None:
                order = torch.randperm(self.num_samples, generator=generator)
            else:  # N draws with replacement, each sample as likely as its weight says
                order = torch.multinomial(self.weights, self.num_samples, True, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        world = self.num_replicas
        if world > 1:
            extra = self.shard_size() * world - self.num_samples
            if self.pad and extra > 0:
                # Repeat as often as needed: with fewer samples than ranks, once is not enough.
                order = torch.cat([order, order.repeat(math.ceil(extra / len(order)))[:extra]])
            order = order[self.rank :: world]
        return order[self.start :]

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        indices = self.indices().tolist()
        return iter([(self.epoch, i) for i in indices] if self.keyed else indices)

    def __len__(self) -> int:
        return max(0, self.shard_size() - self.start)
