"""Early stopping on a monitored metric, with state that a checkpoint can hold."""

import math
from collections.abc import Iterable

from utils.errors import UsageError


class EarlyStopper:
    """Stop after ``patience`` epochs without an improvement larger than ``min_delta``.

    ``mode`` is ``"min"`` for losses and ``"max"`` for scores such as accuracy; ``patience=0``
    never stops. A NaN or infinite value never counts as an improvement.

    Example::

        stopper = EarlyStopper(patience=3, mode="max")
        improved = stopper.step(val_acc)   # True -> save the best checkpoint
        if stopper.should_stop: break
    """

    def __init__(self, patience: int = 0, min_delta: float = 0.0, mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs = 0

    def is_improvement(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float) -> bool:
        """Record one epoch's value; return True if it is the new best."""
        if self.is_improvement(value):
            self.best = value
            self.bad_epochs = 0
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, float | int]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])


def check_monitor(monitor: str, reported: Iterable[str]) -> list[str]:
    """The names of the metrics each epoch reports, from those a validation ``reported``;
    ``monitor`` must be one of them (one line naming the others if not)."""
    names = [f"{split}_{k}" for split in ("train", "val") for k in reported]
    names += ["lr", "epoch_time", "memory_peak_mib"]
    if monitor not in names:
        known = ", ".join(names)
        raise UsageError(
            f"--monitor {monitor}: not a metric of this task; known: {known}", every_rank=True
        )
    return names
