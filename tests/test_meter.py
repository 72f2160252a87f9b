"""Tests for utils.loop.meter: sample-weighted running averages."""

import collections
import math
import random

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from utils.loop.meter import READ_EVERY, AvgMeter, MeterGroup


def _batches(seed=0, n=20):
    rng = random.Random(seed)
    return [(rng.uniform(-5, 5), rng.randint(1, 64)) for _ in range(n)]


def test_nan_before_first_update():
    assert math.isnan(AvgMeter().avg)
    assert MeterGroup().averages() == {}


def test_weighted_average_matches_independent_sum():
    meter = AvgMeter()
    batches = _batches()
    for value, n in batches:
        meter.update(value, n)
    expected = sum(v * n for v, n in batches) / sum(n for _, n in batches)
    assert meter.avg == pytest.approx(expected, rel=1e-12)
    assert meter.count == sum(n for _, n in batches)


def test_default_weight_is_one():
    meter = AvgMeter()
    for value in (1.0, 2.0, 6.0):
        meter.update(value)
    assert meter.avg == pytest.approx(3.0)


def test_short_last_batch_counts_for_its_size():
    meter = AvgMeter()
    meter.update(1.0, 64)
    meter.update(0.0, 1)
    assert meter.avg == pytest.approx(64 / 65)


class CountOps(TorchDispatchMode):
    """Counts the aten ops dispatched inside it (each one a kernel launch on a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def test_an_update_costs_no_op_and_a_read_one_transfer():
    meter = AvgMeter()
    values = [torch.tensor(float(i)) for i in range(10)]
    with CountOps() as counted:
        for value in values:
            meter.update(value, 2)
    assert not counted.ops  # nothing ran: the tensors are only held
    assert [value for value, _ in meter.unread] == values
    with CountOps() as counted:
        average = meter.avg
    assert counted.ops["aten.stack"] == 1 and counted.ops["aten._local_scalar_dense"] == 0
    assert type(average) is float and average == pytest.approx(4.5)
    assert not meter.unread and type(meter.state_dict()["sum"]) is float


def test_a_group_reads_all_its_meters_in_one_transfer_per_dtype():
    group = MeterGroup()
    for i in range(5):
        loss, acc = torch.tensor(float(i)), torch.tensor(i / 10, dtype=torch.float64)
        group.update({"loss": loss, "acc": acc, "lr": 0.1}, 3)
    with CountOps() as counted:
        averages = group.averages()
    assert counted.ops["aten.stack"] == 2  # float32 and float64
    assert averages == pytest.approx({"loss": 2.0, "acc": 0.2, "lr": 0.1})


def test_values_that_need_grad_are_read_without_a_graph():
    meter = AvgMeter()
    meter.update(torch.tensor(0.5, requires_grad=True) * 2, 1)
    assert meter.avg == 1.0


def test_a_long_run_of_updates_is_read_every_so_often():
    meter = AvgMeter()
    for _ in range(READ_EVERY - 1):
        meter.update(torch.tensor(1.0))
    assert len(meter.unread) == READ_EVERY - 1
    meter.update(torch.tensor(1.0))
    assert not meter.unread and meter.count == READ_EVERY


def test_the_average_does_not_depend_on_when_it_is_read():
    """Read at random points or once at the end, the sums are the same float, bit for bit: a
    resumed run (which reads at its checkpoint) reports what a run never stopped does."""
    values = [(torch.rand((), dtype=torch.float32), random.randint(1, 64)) for _ in range(300)]
    once, often = AvgMeter(), AvgMeter()
    reads = random.Random(0)
    for value, n in values:
        once.update(value, n)
        often.update(value, n)
        if reads.random() < 0.1:
            often.read()
    assert once.avg == often.avg and once.sum == often.sum


def test_a_copy_keeps_what_it_had():
    meter = AvgMeter()
    meter.update(torch.tensor(1.0), 1)
    snapshot = meter.copy()
    meter.update(torch.tensor(3.0), 1)
    meter.read()
    meter.update(torch.tensor(5.0), 1)
    assert snapshot.avg == 1.0 and meter.avg == 3.0


def test_state_dict_round_trip_continues_the_same_average():
    batches = _batches(seed=1)
    uninterrupted = AvgMeter()
    for value, n in batches:
        uninterrupted.update(value, n)

    first = AvgMeter()
    for value, n in batches[:7]:
        first.update(value, n)
    resumed = AvgMeter()
    resumed.load_state_dict(first.state_dict())
    for value, n in batches[7:]:
        resumed.update(value, n)
    assert resumed.avg == pytest.approx(uninterrupted.avg, rel=1e-12)
    assert resumed.state_dict()["count"] == uninterrupted.state_dict()["count"]


def test_meter_group_averages_per_key():
    group = MeterGroup()
    loss, acc = _batches(seed=2, n=5), _batches(seed=3, n=5)
    sizes = [n for _, n in loss]
    for (lv, n), (av, _) in zip(loss, acc, strict=True):
        group.update({"loss": lv, "acc": av}, n)
    averages = group.averages()
    assert set(averages) == {"loss", "acc"}
    assert averages["loss"] == pytest.approx(
        sum(v * n for (v, _), n in zip(loss, sizes, strict=True)) / sum(sizes)
    )
    assert averages["acc"] == pytest.approx(
        sum(v * n for (v, _), n in zip(acc, sizes, strict=True)) / sum(sizes)
    )


def test_meter_group_key_added_later_averages_only_its_batches():
    group = MeterGroup()
    group.update({"loss": 1.0}, 10)
    group.update({"loss": 3.0, "extra": 5.0}, 30)
    averages = group.averages()
    assert averages["loss"] == pytest.approx((1.0 * 10 + 3.0 * 30) / 40)
    assert averages["extra"] == pytest.approx(5.0)


def test_group_state_round_trip_continues_the_same_averages():
    whole, first_half = MeterGroup(), MeterGroup()
    batches = [
        ({"loss": 1.0, "acc": 0.5}, 4),
        ({"loss": 3.0, "acc": 1.0}, 2),
        ({"loss": 2.0, "acc": 0.0}, 5),
    ]
    for values, n in batches:
        whole.update(values, n)
    for values, n in batches[:2]:
        first_half.update(values, n)
    resumed = MeterGroup()
    resumed.load_state_dict(first_half.state_dict())
    resumed.update(*batches[2])
    assert resumed.averages() == whole.averages()
    assert resumed.averages()["loss"] == (4 * 1.0 + 2 * 3.0 + 5 * 2.0) / 11


def test_outcomes_are_counted_exactly_whenever_read_with_no_op_a_step():
    """A 1-D bool tensor is per-sample outcomes: the average is the fraction True over every
    sample, counted (not averaged per batch) when read, and a batch costs no op."""
    gen = torch.Generator().manual_seed(0)
    batches = [torch.rand(n, generator=gen) < 0.3 for n in (64, 64, 17, 64, 5)]
    losses = [torch.tensor(float(i)) for i in range(len(batches))]
    once, often = MeterGroup(), MeterGroup()
    with CountOps() as counted:
        for loss, hits in zip(losses, batches, strict=True):
            once.update({"loss": loss, "acc": hits}, len(hits))
    assert not counted.ops
    for loss, hits in zip(losses, batches, strict=True):
        often.update({"loss": loss, "acc": hits}, len(hits))
        often.read()
    true = sum(int(hits.sum()) for hits in batches)
    samples = sum(len(hits) for hits in batches)
    weighted_loss = sum(i * len(hits) for i, hits in enumerate(batches)) / samples
    for group in (once, often):
        assert group.averages() == pytest.approx({"acc": true / samples, "loss": weighted_loss})
        assert group.sums["acc"] == true and group.counts["acc"] == samples
