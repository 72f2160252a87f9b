"""Running averages weighted by sample count, kept on the device until they are read.

A meter records each batch's value as it is (a 0-dim tensor on the device costs no op and no
wait) and reads them only when an average is asked for: a progress line, the epoch summary,
a checkpoint. Then the values recorded since the last read are stacked and copied to the host
in one transfer and added up there in float64, in the order they came, so an average does not
depend on when it was read (a resumed run adds up exactly what a run never stopped does).
A :class:`MeterGroup` also takes per-sample outcomes (a 1-D bool tensor, such as which samples
were classified right) and counts them when it reads: a batch's mean is then never computed.
"""

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from utils.loop.distributed import sum_over_ranks

# Values a meter holds unread at most; past it reads them (a wait for the device every this many
# batches, so an epoch without progress lines does not hold a tensor per batch).
READ_EVERY = 256


def read_floats(values: Sequence[float | Tensor]) -> list[float]:
    """``values`` as Python floats, in order: the tensors among them stacked and copied to the
    host once per dtype, never one at a time."""
    floats: list[float | None] = [None if isinstance(v, Tensor) else float(v) for v in values]
    by_dtype: dict[torch.dtype, list[int]] = {}
    for at, value in enumerate(values):
        if isinstance(value, Tensor):
            by_dtype.setdefault(value.dtype, []).append(at)
    with torch.no_grad():
        for positions in by_dtype.values():
            tensors = [values[at] for at in positions]
            stacked = torch.stack([t if t.dim() == 0 else t.reshape(()) for t in tensors])
            for at, number in zip(positions, stacked.tolist(), strict=True):
                floats[at] = number
    return floats  # type: ignore[return-value]


class AvgMeter:
    """Mean of a per-sample quantity over the samples seen so far.

    ``update(batch_mean, n)`` weights each batch by its size, so a short last batch counts for
    what it is and the epoch average equals the average over samples.
    """

    def __init__(self) -> None:
        self.sum = 0.0  # of the values read so far, each times its batch size
        self.count = 0  # samples of the values read so far
        self.unread: list[tuple[float | Tensor, int]] = []

    def update(self, value: float | Tensor, n: int = 1) -> None:
        """Add a batch whose per-sample mean is ``value`` and that holds ``n`` samples."""
        self.unread.append((value, n))
        if len(self.unread) >= READ_EVERY:
            self.read()

    def read(self) -> list[float]:
        """Add the unread values to the sum (one wait for the device); return them."""
        if not self.unread:
            return []
        values = read_floats([value for value, _ in self.unread])
        for value, (_, n) in zip(values, self.unread, strict=True):
            self.sum += value * n
            self.count += n
        self.unread = []  # a new list: a copy() made before keeps its own
        return values

    @property
    def avg(self) -> float:
        """The weighted mean (waits for the device), or NaN before the first update."""
        self.read()
        return self.sum / self.count if self.count else math.nan

    def copy(self) -> "AvgMeter":
        """A snapshot that later updates leave alone."""
        snapshot = AvgMeter()
        snapshot.sum, snapshot.count, snapshot.unread = self.sum, self.count, self.unread[:]
        return snapshot

    def state_dict(self) -> dict[str, float | int]:
        self.read()
        return {"sum": self.sum, "count": self.count}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.sum = float(state["sum"])
        self.count = int(state["count"])
        self.unread = []


def is_outcomes(value: float | Tensor) -> bool:
    """Whether ``value`` is per-sample outcomes (a 1-D bool tensor), which a meter counts."""
    return isinstance(value, Tensor) and value.dtype == torch.bool and value.dim() == 1


class MeterGroup:
    """Weighted means of named quantities, updated together from a dict of batch values.

    A value is a batch's per-sample mean (weighted by its ``n`` samples), or its per-sample
    outcomes (a 1-D bool tensor: the mean is the fraction that are True, counted exactly when
    read, so a step spends no kernel on it). A batch's dict is kept as it came, one append per
    step however many quantities it holds, and added to the sums when read; a snapshot
    (:meth:`copy`) is three dict and list copies, cheap enough to take at every optimizer step.
    """

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}  # of the values read so far, each times its batch size
        self.counts: dict[str, int] = {}  # samples of the values read so far
        self.unread: list[tuple[dict[str, float | Tensor], int]] = []

    def update(self, values: dict[str, float | Tensor], n: int) -> None:
        """Add a batch of ``n`` samples whose per-sample means (or outcomes) are ``values``."""
        self.unread.append((values, n))
        if len(self.unread) >= READ_EVERY:
            self.read()

    def read(self) -> None:
        """Add the unread values to the sums, in one transfer per dtype, in the order they
        came."""
        if not self.unread:
            return
        means, outcomes = [], {}
        for values, n in self.unread:
            for name, value in values.items():
                if is_outcomes(value):
                    outcomes.setdefault(name, []).append(value)
                else:
                    means.append((name, value, n))
        # Counts are integers: one sum over every batch's outcomes is exact in any order.
        hits = [torch.cat(values).sum() for values in outcomes.values()]
        floats = read_floats([value for _, value, _ in means] + hits)
        for (name, _, n), value in zip(means, floats[: len(means)], strict=True):
            self.sums[name] = self.sums.get(name, 0.0) + value * n
            self.counts[name] = self.counts.get(name, 0) + n
        for (name, values), hit in zip(outcomes.items(), floats[len(means) :], strict=True):
            self.sums[name] = self.sums.get(name, 0.0) + hit
            self.counts[name] = self.counts.get(name, 0) + sum(len(v) for v in values)
        self.unread = []  # a new list: a copy() made before keeps its own

    def copy(self) -> "MeterGroup":
        """A snapshot that later updates leave alone."""
        snapshot = MeterGroup()
        snapshot.sums, snapshot.counts = dict(self.sums), dict(self.counts)
        snapshot.unread = self.unread[:]
        return snapshot

    def average(self, name: str) -> float:
        """The running average of ``name`` (waits for the device), NaN before its first value."""
        self.read()
        count = self.counts.get(name, 0)
        return self.sums[name] / count if count else math.nan

    def averages(self) -> dict[str, float]:
        self.read()
        return {
            name: total / count if (count := self.counts[name]) else math.nan
            for name, total in self.sums.items()
        }

    def global_averages(self, device: torch.device) -> dict[str, float]:
        """The averages over every process of a distributed run (the local ones otherwise).

        Sums and counts are added up across ranks, so ranks with fewer samples weigh less.
        Every rank must call this, with the same meters; the averages stay as they were.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self.averages()
        self.read()
        names = list(self.sums)  # the same order on every rank: the same code filled them
        totals = torch.tensor(
            [self.sums[k] for k in names] + [self.counts[k] for k in names],
            dtype=torch.float64,
            device=device,
        )
        sum_over_ranks(totals)
        sums, counts = totals[: len(names)].tolist(), totals[len(names) :].tolist()
        return {k: s / c if c else math.nan for k, s, c in zip(names, sums, counts, strict=True)}

    def state_dict(self) -> dict[str, dict[str, float | int]]:
        """Sums and counts per name, so a mid-epoch checkpoint keeps the epoch's averages."""
        self.read()
        return {name: {"sum": self.sums[name], "count": self.counts[name]} for name in self.sums}

    def load_state_dict(self, state: dict[str, dict[str, float | int]]) -> None:
        self.sums = {name: float(meter["sum"]) for name, meter in state.items()}
        self.counts = {name: int(meter["count"]) for name, meter in state.items()}
        self.unread = []
