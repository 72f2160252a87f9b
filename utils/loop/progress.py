"""Progress reporting: a tqdm bar on a terminal, a few plain log lines anywhere else."""

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
log = logging.getLogger(__name__)


class Progress:
    """Wrap an iterable of batches and show loss, lr and throughput as it is consumed.

    On a TTY this is a tqdm bar (tqdm rate-limits its own redraws). When output goes to a file
    or a pipe, a bar would fill it with carriage returns, so instead about ``lines`` log lines
    are written per pass (none for ``lines=0``). ``enabled=False`` (non-zero DDP ranks) shows
    nothing.
    """

    def __init__(
        self,
        batches: Iterable[T],
        total: int,
        desc: str,
        enabled: bool = True,
        lines: int = 10,
    ) -> None:
        self.batches = batches
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self.lines = lines
        self.every = max(1, total // max(lines, 1))  # bar postfix refresh period
        self.bar = (
            tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
            if (enabled and sys.stderr.isatty())
            else None
        )
        self.samples = 0
        self.start = time.perf_counter()

    def __iter__(self) -> Iterator[T]:
        try:
            yield from self.batches
        finally:
            if self.bar is not None:
                self.bar.close()

    def update(
        self, step: int, samples: int, stats: Callable[[], dict[str, float]] | None = None
    ) -> bool:
        """Report that batch ``step`` (1-based) with ``samples`` samples finished.

        ``stats`` is called only when something is shown (every ``total // lines`` steps), as
        reading running averages makes the host wait for the device. Returns whether it was.
        """
        self.samples += samples
        if not self.enabled:
            return False
        if self.bar is not None:
            self.bar.update(1)
            if step % self.every == 0 or step == self.total or step == 1:
                self.bar.set_postfix_str(self._describe(stats), refresh=False)
                return True
        elif step * self.lines // self.total > (step - 1) * self.lines // self.total:
            # Exactly min(lines, total) evenly spaced lines, the last one at the final step.
            log.info("%s %d/%d %s", self.desc, step, self.total, self._describe(stats))
            return True
        return False

    @property
    def throughput(self) -> float:
        """Samples per second since the pass started."""
        return self.samples / max(time.perf_counter() - self.start, 1e-9)

    def _describe(self, stats: Callable[[], dict[str, float]] | None) -> str:
        shown = stats() if stats is not None else {}
        parts = [f"{k} {v:.3g}" if k == "lr" else f"{k} {v:.4f}" for k, v in shown.items()]
        return "  ".join([*parts, f"{self.throughput:.0f} samples/s"])
