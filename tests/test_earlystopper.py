"""Tests for utils.loop.earlystopper.EarlyStopper."""

import math

import pytest
import torch

from utils.errors import UsageError
from utils.loop.earlystopper import EarlyStopper, check_monitor


def _run(stopper, values):
    """Step through ``values``; return the improvement flags and should_stop after each."""
    improved, stops = [], []
    for value in values:
        improved.append(stopper.step(value))
        stops.append(stopper.should_stop)
    return improved, stops


def test_min_mode_counts_and_stops():
    stopper = EarlyStopper(patience=2, mode="min")
    improved, stops = _run(stopper, [1.0, 0.5, 0.6, 0.7])
    assert improved == [True, True, False, False]
    assert stops == [False, False, False, True]
    assert stopper.best == 0.5 and stopper.bad_epochs == 2


def test_max_mode_counts_and_stops():
    stopper = EarlyStopper(patience=2, mode="max")
    improved, stops = _run(stopper, [0.1, 0.5, 0.4, 0.5, 0.3])
    assert improved == [True, True, False, False, False]
    assert stops == [False, False, False, True, True]
    assert stopper.best == 0.5


def test_improvement_resets_patience():
    stopper = EarlyStopper(patience=2, mode="min")
    improved, stops = _run(stopper, [1.0, 2.0, 0.9, 2.0, 2.0])
    assert improved == [True, False, True, False, False]
    assert stops == [False, False, False, False, True]


def test_min_delta_requires_a_large_enough_improvement():
    stopper = EarlyStopper(patience=5, min_delta=0.1, mode="min")
    improved, _ = _run(stopper, [1.0, 0.95, 0.85, 0.7])
    assert improved == [True, False, True, True]
    assert stopper.best == 0.7

    stopper = EarlyStopper(patience=5, min_delta=0.1, mode="max")
    improved, _ = _run(stopper, [0.5, 0.55, 0.65, 0.7])
    assert improved == [True, False, True, False]
    assert stopper.best == 0.65


def test_patience_zero_never_stops():
    stopper = EarlyStopper(patience=0, mode="min")
    _, stops = _run(stopper, [1.0] + [2.0] * 50)
    assert not any(stops)
    assert stopper.bad_epochs == 50


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_never_improve(mode, bad):
    stopper = EarlyStopper(patience=3, mode=mode)
    assert stopper.step(bad) is False
    assert stopper.step(1.0) is True
    assert stopper.step(bad) is False
    assert stopper.best == 1.0 and stopper.bad_epochs == 1


def test_state_dict_round_trip_reproduces_behaviour(tmp_path):
    values = [1.0, 0.8, 0.9, 0.95, 0.7, 0.75, 0.76, 0.77]
    reference = EarlyStopper(patience=3, min_delta=0.01, mode="min")
    expected = _run(reference, values)

    first = EarlyStopper(patience=3, min_delta=0.01, mode="min")
    head = _run(first, values[:3])
    torch.save(first.state_dict(), tmp_path / "stopper.pth")
    resumed = EarlyStopper(patience=3, min_delta=0.01, mode="min")
    resumed.load_state_dict(torch.load(tmp_path / "stopper.pth", weights_only=True))
    tail = _run(resumed, values[3:])
    assert (head[0] + tail[0], head[1] + tail[1]) == expected
    assert resumed.state_dict() == reference.state_dict()


def test_fresh_state_dict_round_trip_keeps_infinite_best():
    for mode, start in (("min", math.inf), ("max", -math.inf)):
        clone = EarlyStopper(mode=mode)
        clone.load_state_dict(EarlyStopper(mode=mode).state_dict())
        assert clone.best == start and clone.bad_epochs == 0
        assert clone.step(123.0) is True


@pytest.mark.parametrize("mode", ["Min", "minimum", "", "auto"])
def test_bad_mode_raises(mode):
    with pytest.raises(ValueError, match="mode"):
        EarlyStopper(mode=mode)


def test_the_monitor_names_one_of_the_metrics_reported():
    names = check_monitor("val_acc", {"loss": 0.1, "acc": 0.9})
    assert names[:6] == ["train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time"]
    assert names[6:] == ["memory_peak_mib"]
    with pytest.raises(
        UsageError, match="--monitor val_dice: not a metric of this task; known"
    ) as err:
        check_monitor("val_dice", {"loss": 0.1})
    assert err.value.every_rank is True  # under torchrun every rank checks and rank 0 says it
