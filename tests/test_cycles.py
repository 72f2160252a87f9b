"""Tests for utils.loop.cycles: where accumulation cycles end, and how long they are."""

import pytest

from utils.loop.cycles import Cycles


def test_ten_batches_in_cycles_of_three_step_after_3_6_9_and_10():
    cycles = Cycles(accum_steps=3, batches=10)
    assert [b for b in range(1, 11) if cycles.ends_at(b)] == [3, 6, 9, 10]
    assert [cycles.length(b) for b in range(1, 11)] == [3] * 9 + [1]
    assert cycles.per_epoch == 4


def test_without_accumulation_every_batch_is_a_cycle():
    cycles = Cycles(accum_steps=1, batches=5)
    assert all(cycles.ends_at(b) and cycles.length(b) == 1 for b in range(1, 6))


@pytest.mark.parametrize(
    ("epoch", "batch", "expected"),
    [(0, 0, 0), (0, 2, 1), (0, 3, 1), (0, 4, 2), (2, 0, 8), (2, 10, 12)],
)
def test_steps_done_count_whole_epochs_and_begun_cycles(epoch, batch, expected):
    assert Cycles(accum_steps=3, batches=10).done(epoch, batch) == expected
