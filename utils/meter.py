"""Running averages weighted by sample count, holding plain floats (never tensors)."""

import math


class AvgMeter:
    """Mean of a per-sample quantity over the samples seen so far.

    ``update(batch_mean, n)`` weights each batch by its size, so a short last batch counts for
    what it is and the epoch average equals the average over samples.
    """

    def __init__(self) -> None:
        self.sum = 0.0
        self.count = 0

    def update(self, value: float, n: int = 1) -> None:
        """Add a batch whose per-sample mean is ``value`` and that holds ``n`` samples."""
        self.sum += float(value) * n
        self.count += n

    @property
    def avg(self) -> float:
        """The weighted mean, or NaN before the first update."""
        return self.sum / self.count if self.count else math.nan

    def state_dict(self) -> dict[str, float | int]:
        return {"sum": self.sum, "count": self.count}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.sum = float(state["sum"])
        self.count = int(state["count"])


class MeterGroup:
    """One AvgMeter per named quantity, updated together from a dict of batch means."""

    def __init__(self) -> None:
        self.meters: dict[str, AvgMeter] = {}

    def update(self, values: dict[str, float], n: int) -> None:
        for name, value in values.items():
            self.meters.setdefault(name, AvgMeter()).update(value, n)

    def averages(self) -> dict[str, float]:
        return {name: meter.avg for name, meter in self.meters.items()}

    def state_dict(self) -> dict[str, dict[str, float | int]]:
        """Sums and counts per name, so a mid-epoch checkpoint keeps the epoch's averages."""
        return {name: meter.state_dict() for name, meter in self.meters.items()}

    def load_state_dict(self, state: dict[str, dict[str, float | int]]) -> None:
        self.meters = {}
        for name, meter_state in state.items():
            self.meters[name] = AvgMeter()
            self.meters[name].load_state_dict(meter_state)
