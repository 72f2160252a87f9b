"""Noticing a NaN or infinite training loss without making each step wait for the device."""

import math

from torch import Tensor

from utils.meter import READ_EVERY, read_floats


class LossWatch:
    """Keeps each step's loss unread and reads them when the host waits for the device anyway
    (a progress line, a save, the epoch's end): then it knows the first step whose loss was
    not finite. A step costs no op and no wait; a read, one transfer for all the steps since
    the last one (at most :data:`READ_EVERY`)."""

    def __init__(self) -> None:
        self.unread: list[tuple[int, Tensor]] = []
        self.first_bad: int | None = None  # the global step of the first non-finite loss

    def note(self, step: int, loss: Tensor) -> None:
        """Remember the (detached) ``loss`` of global step ``step``."""
        self.unread.append((step, loss))
        if len(self.unread) >= READ_EVERY:
            self.read()

    def read(self) -> int | None:
        """The global step of the first non-finite loss noted so far, or None."""
        if self.unread and self.first_bad is None:
            values = read_floats([loss for _, loss in self.unread])
            bad = (
                step
                for (step, _), v in zip(self.unread, values, strict=True)
                if not math.isfinite(v)
            )
            self.first_bad = next(bad, None)
        self.unread = []
        return self.first_bad
