"""Whether a run may go on: a NaN or infinite training loss (``--nonfinite``) and a stop signal
(SIGTERM, SIGINT), noticed without making a step wait for the device and, under DDP, agreed by
every rank at the same point."""

import logging
import math
import signal

import torch
from torch import Tensor

from utils.errors import NonFiniteLossError
from utils.loop.distributed import DistInfo, all_ranks, max_over_ranks
from utils.loop.meter import READ_EVERY, read_floats
from utils.signals import GracefulStop, StopRequested

log = logging.getLogger(__name__)

# Under DDP, how often (in optimizer steps) the ranks agree on whether a stop signal arrived.
STOP_SYNC_STEPS = 10
# Skipped batches warned about per epoch with --nonfinite skip; the epoch's summary counts all.
SKIP_WARNINGS = 3


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
            steps = [step for step, _ in self.unread]
            bad = (step for step, v in zip(steps, values, strict=True) if not math.isfinite(v))
            self.first_bad = next(bad, None)
        self.unread = []
        return self.first_bad


class RunGuard:
    """The checks between steps of one process of a run.

    ``--nonfinite stop``: the loop notes each step's loss (:meth:`note`); they are read where
    the host reads the device anyway, and the run stops there with one line naming the first
    bad step (:meth:`check_nonfinite`). ``--nonfinite skip`` decides at every step
    (:meth:`finite`), which waits for the device. A stop signal is checked after each
    optimizer step (:meth:`check_stop`). Under DDP every rank calls the checks at the same
    points and one all-reduce agrees on both (:meth:`agree`).
    """

    def __init__(self, steps_per_epoch: int, dist: DistInfo, device: torch.device) -> None:
        self.steps_per_epoch = steps_per_epoch  # of this rank, to name a step's epoch and batch
        self.dist = dist
        self.device = device
        self.losses = LossWatch()
        self.stop_signal = GracefulStop()

    def note(self, step: int, loss: Tensor) -> None:
        """Remember the detached ``loss`` of global step ``step``, unread."""
        self.losses.note(step, loss)

    def finite(self, loss: Tensor) -> bool:
        """``--nonfinite skip``: whether ``loss`` is finite on every rank (waits for the
        device)."""
        return all_ranks(bool(torch.isfinite(loss).all()), self.dist, self.device)

    def raise_if_nonfinite(self) -> None:
        """Stop with one line naming the first batch whose loss was NaN or infinite."""
        step = self.losses.read()
        if step is None:
            return
        epoch, batch = divmod(step - 1, self.steps_per_epoch)
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {epoch + 1}, batch {batch + 1} (step {step}); "
            "the checkpoints written before it are kept. Lower --lr, clip gradients "
            "(--clip_grad_norm) or pass --nonfinite skip",
            every_rank=self.dist.enabled,
        )

    def agree(self) -> bool:
        """Under DDP, share what each rank noted: whether a stop signal arrived and the first
        non-finite loss. Every rank calls this at the same point; it raises
        :class:`NonFiniteLossError` on all of them if any saw one, else returns whether any
        received a stop signal. One all-reduce."""
        none = torch.iinfo(torch.long).min  # the maximum of -step picks the earliest step
        first = self.losses.read()
        received, earliest = max_over_ranks(
            [int(self.stop_signal.signum is not None), none if first is None else -first],
            self.dist,
            self.device,
        )
        if earliest != none:
            self.losses.first_bad = -earliest
            self.raise_if_nonfinite()
        return bool(received)

    def check_nonfinite(self) -> None:
        """Raise :class:`NonFiniteLossError` if a non-finite loss was noted (on any rank)."""
        if self.dist.enabled:
            self.agree()
        else:
            self.raise_if_nonfinite()

    def check_skipped(self, epoch: int, skipped: int, batches: int) -> None:
        """``--nonfinite skip``: stop when every one of the epoch's ``batches`` was skipped."""
        if batches and skipped == batches:
            raise NonFiniteLossError(
                f"every batch of epoch {epoch} had a non-finite loss; lower --lr or clip "
                "gradients (--clip_grad_norm)",
                every_rank=True,
            )

    def check_stop(self, optimizer_steps: int, now: bool = False) -> None:
        """Raise :class:`StopRequested` once SIGTERM/SIGINT arrived; under DDP on every rank
        together, agreed every ``STOP_SYNC_STEPS`` optimizer steps or ``now``."""
        if not self.dist.enabled:
            self.stop_signal.check()
        elif (now or optimizer_steps % STOP_SYNC_STEPS == 0) and self.agree():
            raise StopRequested(self.stop_signal.signum or signal.SIGTERM)


def warn_skipped(epoch: int, batch: int, step: int, skipped: int) -> None:
    """``--nonfinite skip``: a warning for each of an epoch's first skipped batches (1-based
    ``epoch``, ``batch`` and ``step``; ``skipped`` so far this epoch)."""
    if skipped <= SKIP_WARNINGS:
        log.warning(
            "non-finite training loss at epoch %d, batch %d (step %d): batch skipped "
            "(%d this epoch)",
            epoch,
            batch,
            step,
            skipped,
        )
