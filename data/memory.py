"""Datasets that fit in memory: one uint8 tensor per split, batched by index on the device.

A per-sample DataLoader spends most of an epoch of a small model in Python: one
``__getitem__``, one PIL image and one ``ToTensor`` per sample, then a collate. Here the split
is one ``[N, C, H, W]`` uint8 tensor that :class:`MemoryLoader` moves to the device once; a
batch is one index op and one fused multiply-add that converts and normalises it.
"""

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from data.sampler import ResumableSampler


def normalize(images: Tensor, scale: Tensor, offset: Tensor) -> Tensor:
    """``images * scale + offset`` as float in one fused op; uint8 is promoted inside it.

    With ``scale = 1 / (255 std)`` and ``offset = -mean / std`` this equals ``ToTensor``
    followed by ``Normalize(mean, std)`` up to float rounding.
    """
    return torch.addcmul(offset, images, scale)


class TensorSplit(Dataset):
    """A split held as uint8 images ``[N, C, H, W]`` and int64 targets ``[N]``.

    ``mean`` and ``std`` are per channel, on the 0-1 scale as for ``transforms.Normalize``.
    Indexing returns one normalised float sample and an int label, so generic per-sample code
    (a DataLoader, a quick look at ``split[0]``) works; :class:`MemoryLoader` batches it fast.
    """

    def __init__(
        self, images: Tensor, targets: Tensor, mean: Sequence[float], std: Sequence[float]
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {images.dtype} {list(images.shape)}"
            )
        if targets.shape != (len(images),):
            raise ValueError(f"targets must have shape [{len(images)}], got {list(targets.shape)}")
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"need one mean and std per channel ({channels}), got {len(mean)} and {len(std)}"
            )
        self.images = images
        self.targets = targets.long()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.scale, self.offset = self.affine()

    def affine(self, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """``1 / (255 std)`` and ``-mean / std`` shaped ``[C, 1, 1]``, for :func:`normalize`.

        Computed in float64 and rounded once, so both factors are as exact as float32 allows.
        """
        std = torch.tensor(self.std, dtype=torch.float64)
        mean = torch.tensor(self.mean, dtype=torch.float64)
        scale, offset = 1 / (255 * std), -mean / std
        return scale.float().view(-1, 1, 1).to(device), offset.float().view(-1, 1, 1).to(device)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return normalize(self.images[index], self.scale, self.offset), int(self.targets[index])

    def __len__(self) -> int:
        return len(self.images)


class MemoryLoader:
    """Batches of a :class:`TensorSplit` in the order of a :class:`ResumableSampler`.

    The uint8 images and the targets move to ``device`` once, here; each batch is gathered on
    the device with one index op, converted and normalised there, and yielded as
    ``(inputs, targets)`` already on ``device``. No worker processes, no collate, no
    augmentation (the trainer's ``augment`` hook works on the batch). Like a DataLoader it has
    ``dataset``, ``batch_size`` and ``sampler`` (``sampler.set_epoch`` picks the epoch and the
    position to resume at) and its length is the number of batches left.
    """

    def __init__(
        self,
        dataset: TensorSplit,
        batch_size: int,
        sampler: ResumableSampler,
        device: torch.device,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = sampler
        self.device = device
        self.images = dataset.images.to(device)
        self.targets = dataset.targets.to(device)
        self.scale, self.offset = dataset.affine(device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.sampler.indices().to(self.device)
        # Not order.split(): an empty order would give one empty batch rather than none.
        for begin in range(0, len(order), self.batch_size):
            batch = order[begin : begin + self.batch_size]
            images = self.images.index_select(0, batch)  # on CPU ~6x faster than images[batch]
            yield normalize(images, self.scale, self.offset), self.targets.index_select(0, batch)

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)
