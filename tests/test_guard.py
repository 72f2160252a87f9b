"""Tests for utils.loop.guard: the first non-finite training loss, found without waiting, and the
checks of a run in one process (the DDP agreement: tests/test_ddp.py)."""

import math
import os
import signal

import pytest
import torch
from test_meter import CountOps

from utils.errors import NonFiniteLossError
from utils.loop.distributed import DistInfo
from utils.loop.guard import SKIP_WARNINGS, LossWatch, RunGuard, warn_skipped
from utils.loop.meter import READ_EVERY
from utils.signals import StopRequested


def test_noting_a_loss_costs_no_op():
    watch = LossWatch()
    losses = [torch.tensor(1.0) for _ in range(20)]
    with CountOps() as counted:
        for step, loss in enumerate(losses, start=1):
            watch.note(step, loss)
    assert not counted.ops


def test_the_first_non_finite_step_is_named_when_read():
    watch = LossWatch()
    losses = [1.0, 0.5, math.nan, math.inf, 0.2]
    for step, loss in enumerate(losses, start=11):
        watch.note(step, torch.tensor(loss))
    assert watch.read() == 13
    watch.note(16, torch.tensor(0.1))
    assert watch.read() == 13  # the first stays the first


def test_finite_losses_read_as_none_and_are_let_go():
    watch = LossWatch()
    for step in range(1, 5):
        watch.note(step, torch.tensor(float(step)))
    assert watch.read() is None and not watch.unread
    watch.note(5, torch.tensor(-math.inf))
    assert watch.read() == 5


def test_a_long_epoch_is_read_every_so_often():
    watch = LossWatch()
    watch.note(1, torch.tensor(math.nan))
    for step in range(2, READ_EVERY + 1):
        watch.note(step, torch.tensor(0.0))
    assert not watch.unread and watch.first_bad == 1


def guard(steps_per_epoch: int = 10) -> RunGuard:
    return RunGuard(steps_per_epoch, DistInfo(), torch.device("cpu"))


def test_a_non_finite_loss_stops_with_its_epoch_batch_and_step():
    watch = guard()
    watch.note(12, torch.tensor(1.0))
    watch.raise_if_nonfinite()  # finite so far
    watch.note(13, torch.tensor(math.nan))
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 3 \(step 13\)"):
        watch.check_nonfinite()


def test_a_stop_signal_stops_at_the_next_check():
    watch = guard()
    with watch.stop_signal:
        watch.check_stop(optimizer_steps=1)
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(StopRequested):
            watch.check_stop(optimizer_steps=2)


def test_skip_mode_decides_on_each_loss_and_stops_an_epoch_of_skips():
    watch = guard()
    assert watch.finite(torch.tensor(0.5)) and not watch.finite(torch.tensor(math.inf))
    watch.check_skipped(epoch=1, skipped=3, batches=10)
    with pytest.raises(NonFiniteLossError, match="every batch of epoch 2"):
        watch.check_skipped(epoch=2, skipped=10, batches=10)


def test_skipped_batches_are_warned_about_three_times_an_epoch(caplog):
    for skipped in range(1, 6):
        warn_skipped(1, skipped, skipped, skipped)
    assert all(
        r.getMessage().endswith(f"({n} this epoch)") for n, r in enumerate(caplog.records, 1)
    )
    assert len(caplog.records) == SKIP_WARNINGS
