"""Batch-level augmentation, drawn from the RNG that checkpoints save.

Random choices made here, in the main process, come from torch's CPU generator: a resumed
run replays them exactly, with or without DataLoader workers, and CPU and GPU runs draw alike.
"""

import torch
from torch import Tensor


def random_hflip(*batches: Tensor, p: float = 0.5) -> tuple[Tensor, ...]:
    """Mirror the same randomly chosen samples of every batch along the last (width) axis.

    Pass an image batch and its masks together so each mask follows its image.
    """
    chosen = torch.rand(len(batches[0])) < p
    flipped = []
    for batch in batches:
        mask = chosen.to(batch.device).view(-1, *[1] * (batch.dim() - 1))
        flipped.append(torch.where(mask, batch.flip(-1), batch))
    return tuple(flipped)
