"""Datasets that fit in memory: one uint8 tensor per split, batched by index on the device.

A per-sample DataLoader spends most of an epoch of a small model in Python: one
``__getitem__``, one PIL image and one ``ToTensor`` per sample, then a collate. Here the split
is one ``[N, C, H, W]`` uint8 tensor that :class:`MemoryLoader` moves to the device once; a
batch is one index op and one fused multiply-add that converts and normalises it. A training
split can carry a :class:`PairAugment`, which then changes whole batches on the device
(``data/batch_augment.py``) instead of one sample at a time in workers.
"""

import argparse
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from data.augment import PairAugment
from data.batch_augment import augment_batch, batch_seed
from data.sampler import ResumableSampler
from utils.cli import str2bool
from utils.errors import UsageError


def add_options(group: argparse._ArgumentGroup) -> None:
    """``--in_memory``, shared by the datasets that offer a :class:`TensorSplit`."""
    group.add_argument(
        "--in_memory",
        type=str2bool,
        default=True,
        help="hold the data as uint8 tensors on the device and batch them by index (Carvana: "
        "and augment whole batches there); False: a per-sample DataLoader with workers",
    )


def normalize(images: Tensor, scale: Tensor, offset: Tensor) -> Tensor:
    """``images * scale + offset`` as float in one fused op; uint8 is promoted inside it.

    With ``scale = 1 / (255 std)`` and ``offset = -mean / std`` this equals ``ToTensor``
    followed by ``Normalize(mean, std)`` up to float rounding.
    """
    return torch.addcmul(offset, images, scale)


def affine(
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device | None = None,
    top: float = 255,
) -> tuple[Tensor, Tensor]:
    """``1 / (top std)`` and ``-mean / std`` shaped ``[C, 1, 1]``, for :func:`normalize`:
    ``top`` is 255 for uint8 pixels, 1 for pixels already in [0, 1].

    Computed in float64 and rounded once, so both factors are as exact as float32 allows; a
    per-sample dataset that normalises with them gives the inputs of its :class:`TensorSplit`.
    """
    std64 = torch.tensor(std, dtype=torch.float64)
    mean64 = torch.tensor(mean, dtype=torch.float64)
    scale, offset = 1 / (top * std64), -mean64 / std64
    return scale.float().view(-1, 1, 1).to(device), offset.float().view(-1, 1, 1).to(device)


class TensorSplit(Dataset):
    """A split held as uint8 images ``[N, C, H, W]`` and targets: int64 labels ``[N]``, or
    uint8 masks ``[N, 1, H, W]`` (given to the model as float).

    ``mean`` and ``std`` are per channel, on the 0-1 scale as for ``transforms.Normalize``.
    ``augment`` changes the training batches on the device, per sample (a mask moves with its
    image; labels stay as they are).
    Indexing returns one normalised float sample and its target (an int label or a float
    mask), so generic per-sample code works; :class:`MemoryLoader` batches it fast.
    """

    def __init__(
        self,
        images: Tensor,
        targets: Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        augment: PairAugment | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {images.dtype} {list(images.shape)}"
            )
        masks = [len(images), 1, *images.shape[2:]]
        if targets.shape != (len(images),) and list(targets.shape) != masks:
            raise ValueError(
                f"targets must have shape [{len(images)}] (labels) or {masks} (masks), got "
                f"{list(targets.shape)}"
            )
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"need one mean and std per channel ({channels}), got {len(mean)} and {len(std)}"
            )
        self.has_masks = targets.dim() == 4
        if augment is not None and augment.recolor and not self.has_masks:
            raise ValueError("recolor needs masks as targets: it recolours the masked object")
        self.images = images
        self.targets = targets.to(torch.uint8) if self.has_masks else targets.long()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.augment = augment
        self.scale, self.offset = self.affine()

    def affine(self, device: torch.device | None = None, top: float = 255) -> tuple[Tensor, Tensor]:
        """The :func:`affine` of this split's ``mean`` and ``std``."""
        return affine(self.mean, self.std, device, top)

    def target(self, targets: Tensor) -> Tensor:
        """Targets as the model is trained on them: labels as they are, masks as float."""
        return targets.float() if self.has_masks else targets

    def nbytes(self) -> int:
        return self.images.nbytes + self.targets.nbytes

    def __getitem__(self, index: int) -> tuple[Tensor, int | Tensor]:
        image = normalize(self.images[index], self.scale, self.offset)
        target = self.targets[index]
        return image, (target.float() if self.has_masks else int(target))

    def __len__(self) -> int:
        return len(self.images)


class MemoryLoader:
    """Batches of a :class:`TensorSplit` in the order of a :class:`ResumableSampler`.

    The uint8 images and the targets move to ``device`` once, here; each batch is gathered on
    the device with one index op, converted and normalised there, and yielded as
    ``(inputs, targets)`` already on ``device``. No worker processes and no collate. A split
    with ``augment`` has each batch changed between the conversion and the normalisation,
    with parameters drawn per sample from a generator seeded by the sampler's seed, epoch and
    rank and the batch's place in the epoch, so a resumed epoch draws what it drew before.
    Like a DataLoader it has ``dataset``, ``batch_size`` and ``sampler`` (``sampler.set_epoch``
    picks the epoch and the position to resume at) and its length is the batches left.
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
        check_fits(dataset, device)
        self.dataset = dataset
        self.batch_size = batch_size
        self.sampler = sampler
        self.device = device
        self.images = dataset.images.to(device)
        self.targets = dataset.targets.to(device)
        self.scale, self.offset = dataset.affine(device)
        self.unit_affine = dataset.affine(device, top=1)  # from pixels already in [0, 1]
        # Mean 0 and std 1 (Carvana): inputs stay the pixels in [0, 1], with no op to get there.
        self.unit_inputs = set(dataset.mean) == {0.0} and set(dataset.std) == {1.0}

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.sampler.indices().to(self.device)
        first = self.sampler.start // self.batch_size  # where a resumed epoch goes on
        # Not order.split(): an empty order would give one empty batch rather than none.
        for number, begin in enumerate(range(0, len(order), self.batch_size), start=first):
            batch = order[begin : begin + self.batch_size]
            images = self.images.index_select(0, batch)  # on CPU ~6x faster than images[batch]
            targets = self.dataset.target(self.targets.index_select(0, batch))
            if self.dataset.augment is None:
                yield normalize(images, self.scale, self.offset), targets
                continue
            sampler = self.sampler
            seed = batch_seed(sampler.seed, sampler.epoch, number, sampler.rank)
            generator = torch.Generator().manual_seed(seed)
            unit = images.float().div_(255)
            if self.dataset.has_masks:
                unit, targets = augment_batch(self.dataset.augment, unit, targets, generator)
            else:  # labels: the images alone change
                unit, _ = augment_batch(self.dataset.augment, unit, None, generator)
            yield (unit if self.unit_inputs else normalize(unit, *self.unit_affine)), targets

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)


def check_fits(split: TensorSplit, device: torch.device) -> None:
    """Refuse, in one line, a split that would take more than 80% of a GPU's free memory."""
    if device.type != "cuda":
        return
    free, _ = torch.cuda.mem_get_info(device)
    if split.nbytes() > 0.8 * free:
        raise UsageError(
            f"--in_memory True: a split of {split.nbytes() / 2**30:.1f} GiB does not fit in "
            f"the {free / 2**30:.1f} GiB free on {device}; pass --in_memory False to load it "
            "per sample with DataLoader workers"
        )
