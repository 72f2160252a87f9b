"""Tests for utils.meter: sample-weighted running averages."""

import math
import random

import pytest

from utils.meter import AvgMeter, MeterGroup


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


def test_tensor_updates_stay_tensors_until_read():
    torch = pytest.importorskip("torch")
    meter = AvgMeter()
    meter.update(torch.tensor(2.5), 4)
    meter.update(torch.tensor(0.5, requires_grad=True), 1)
    assert isinstance(meter.sum, torch.Tensor) and not meter.sum.requires_grad
    assert type(meter.avg) is float
    assert meter.avg == pytest.approx((2.5 * 4 + 0.5) / 5)
    assert type(meter.state_dict()["sum"]) is float


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
