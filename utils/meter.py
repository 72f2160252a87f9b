"""Running averages weighted by sample count, kept on the device until they are read.

Updating a meter with a tensor adds on the tensor's device without waiting for it, so the
training loop never stalls the GPU to book-keep; reading ``avg`` (for a progress line or the
epoch summary) is the one place that waits.
"""

import copy
import math

import torch
import torch.distributed as dist
from torch import Tensor


class AvgMeter:
    """Mean of a per-sample quantity over the samples seen so far.

    ``update(batch_mean, n)`` weights each batch by its size, so a short last batch counts for
    what it is and the epoch average equals the average over samples.
    """

    def __init__(self) -> None:
        self.sum: float | Tensor = 0.0
        self.count = 0

    def update(self, value: float | Tensor, n: int = 1) -> None:
        """Add a batch whose per-sample mean is ``value`` and that holds ``n`` samples."""
        if isinstance(value, Tensor):
            value = value.detach()
        self.sum = self.sum + value * n
        self.count += n

    @property
    def avg(self) -> float:
        """The weighted mean (waits for the device), or NaN before the first update."""
        return float(self.sum) / self.count if self.count else math.nan

    def state_dict(self) -> dict[str, float | int]:
        return {"sum": float(self.sum), "count": self.count}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.sum = float(state["sum"])
        self.count = int(state["count"])


class MeterGroup:
    """One AvgMeter per named quantity, updated together from a dict of batch means."""

    def __init__(self) -> None:
        self.meters: dict[str, AvgMeter] = {}

    def update(self, values: dict[str, float | Tensor], n: int) -> None:
        for name, value in values.items():
            self.meters.setdefault(name, AvgMeter()).update(value, n)

    def copy(self) -> "MeterGroup":
        """A snapshot that later updates leave alone (they replace sums, never change them)."""
        snapshot = MeterGroup()
        snapshot.meters = {name: copy.copy(meter) for name, meter in self.meters.items()}
        return snapshot

    def averages(self) -> dict[str, float]:
        return {name: meter.avg for name, meter in self.meters.items()}

    def global_averages(self, device: torch.device) -> dict[str, float]:
        """The averages over every process of a distributed run (the local ones otherwise).

        Sums and counts are added up across ranks, so ranks with fewer samples weigh less.
        Every rank must call this, with the same meters; the meters are left unchanged.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.averages()
        names = list(self.meters)  # the same order on every rank: the same code filled them
        totals = torch.tensor(
            [float(self.meters[k].sum) for k in names] + [self.meters[k].count for k in names],
            dtype=torch.float64,
            device=device,
        )
        dist.all_reduce(totals)
        sums, counts = totals[: len(names)].tolist(), totals[len(names) :].tolist()
        return {k: s / c if c else math.nan for k, s, c in zip(names, sums, counts, strict=True)}

    def state_dict(self) -> dict[str, dict[str, float | int]]:
        """Sums and counts per name, so a mid-epoch checkpoint keeps the epoch's averages."""
        return {name: meter.state_dict() for name, meter in self.meters.items()}

    def load_state_dict(self, state: dict[str, dict[str, float | int]]) -> None:
        self.meters = {}
        for name, meter_state in state.items():
            self.meters[name] = AvgMeter()
            self.meters[name].load_state_dict(meter_state)
