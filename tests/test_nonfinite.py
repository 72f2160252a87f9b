"""Tests for utils.nonfinite: the first non-finite training loss, found without waiting."""

import math

import torch
from test_meter import CountOps

from utils.meter import READ_EVERY
from utils.nonfinite import LossWatch


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
