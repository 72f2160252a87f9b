"""Gradient accumulation cycles: which batches of an epoch end one with an optimizer step."""

import math
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Cycles:
    """The cycles of an epoch of ``batches`` batches: every ``accum_steps`` batches end one,
    and so does the epoch's last batch, so its last cycle may be shorter. Batches count from
    1 within the epoch."""

    accum_steps: int
    batches: int

    @property
    def per_epoch(self) -> int:
        """Optimizer steps an epoch takes."""
        return math.ceil(self.batches / self.accum_steps)

    def ends_at(self, batch: int) -> bool:
        """Whether batch ``batch`` ends a cycle."""
        return batch % self.accum_steps == 0 or batch == self.batches

    def length(self, batch: int) -> int:
        """How many batches the cycle holding batch ``batch`` has."""
        first = (batch - 1) // self.accum_steps * self.accum_steps
        return min(self.accum_steps, self.batches - first)

    def done(self, epoch: int, batch: int) -> int:
        """Optimizer steps done after ``epoch`` whole epochs and ``batch`` batches of the next:
        where the lr schedule stands."""
        return epoch * self.per_epoch + math.ceil(batch / self.accum_steps)


def scale_gradients(params: Iterable[nn.Parameter], factor: float) -> None:
    """Multiply every gradient by ``factor``: a cycle that skipped batches averages over the
    batches it kept."""
    for param in params:
        if param.grad is not None:
            param.grad.mul_(factor)
