"""Tests for utils.loop.scheduler.build_scheduler against closed-form learning rates."""

import itertools
import math
from argparse import Namespace

import pytest
import torch
from torch import nn

from utils.errors import UsageError
from utils.loop.scheduler import SCHEDULERS, SELF_WARMING, build_scheduler

BASE_LR = 0.5
# Schedules that accept --warmup_epochs (the others warm up by themselves).
WARMABLE = sorted(set(SCHEDULERS) - SELF_WARMING)


def _opt(scheduler, **overrides):
    values = {
        "scheduler": scheduler,
        "epochs": 4,
        "warmup_epochs": 0.0,
        "lr_step_epochs": 1,
        "lr_gamma": 0.5,
    }
    return Namespace(**{**values, **overrides})


def _build(opt, steps_per_epoch):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    return optimizer, build_scheduler(optimizer, opt, steps_per_epoch)


def _lrs(optimizer, scheduler, n):
    """The lr used by each of the next ``n`` optimizer steps."""
    lrs = []
    for _ in range(n):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _cosine(t, total):
    return BASE_LR * (1 + math.cos(math.pi * t / total)) / 2


def test_none_keeps_lr_constant():
    optimizer, scheduler = _build(_opt("none"), steps_per_epoch=5)
    assert _lrs(optimizer, scheduler, 20) == [BASE_LR] * 20


def test_cosine_holds_zero_past_its_planned_steps():
    optimizer, scheduler = _build(_opt("cosine", epochs=2), steps_per_epoch=5)
    assert _lrs(optimizer, scheduler, 14)[10:] == [0.0] * 4


def test_cosine_follows_closed_form():
    optimizer, scheduler = _build(_opt("cosine", epochs=3), steps_per_epoch=8)
    lrs = _lrs(optimizer, scheduler, 24)
    for t in (0, 1, 5, 12, 18, 23):
        assert lrs[t] == pytest.approx(_cosine(t, 24), rel=1e-9, abs=1e-12)
    assert lrs[12] == pytest.approx(BASE_LR / 2)


def test_step_decays_by_gamma_every_period():
    spe = 3
    opt = _opt("step", epochs=6, lr_step_epochs=2, lr_gamma=0.1)
    optimizer, scheduler = _build(opt, steps_per_epoch=spe)
    lrs = _lrs(optimizer, scheduler, 18)
    period = opt.lr_step_epochs * spe
    for t, lr in enumerate(lrs):
        assert lr == pytest.approx(BASE_LR * opt.lr_gamma ** (t // period), rel=1e-12)


@pytest.mark.parametrize("name", WARMABLE)
def test_warmup_rises_linearly_to_base_lr_then_follows_main_schedule(name):
    spe, warmup_epochs, epochs = 5, 2, 6
    opt = _opt(name, epochs=epochs, warmup_epochs=warmup_epochs, lr_step_epochs=1, lr_gamma=0.5)
    optimizer, scheduler = _build(opt, steps_per_epoch=spe)
    warmup, total = warmup_epochs * spe, epochs * spe
    lrs = _lrs(optimizer, scheduler, total)

    ramp = lrs[: warmup + 1]
    assert ramp[0] == pytest.approx(BASE_LR / warmup)
    steps = [b - a for a, b in itertools.pairwise(ramp)]
    assert all(s == pytest.approx(steps[0], rel=1e-9) for s in steps)
    assert steps[0] > 0
    assert lrs[warmup] == BASE_LR  # exactly the base lr when warmup ends

    main = {
        "none": lambda t: BASE_LR,
        "cosine": lambda t: _cosine(t, total - warmup),
        "step": lambda t: BASE_LR * opt.lr_gamma ** (t // (opt.lr_step_epochs * spe)),
    }[name]
    for s in range(warmup, total):
        assert lrs[s] == pytest.approx(main(s - warmup), rel=1e-9, abs=1e-12)


def test_fractional_warmup_is_rounded_to_steps():
    optimizer, scheduler = _build(_opt("none", warmup_epochs=0.5), steps_per_epoch=4)
    lrs = _lrs(optimizer, scheduler, 4)
    assert lrs[0] == pytest.approx(BASE_LR / 2)
    assert lrs[2:] == [BASE_LR, BASE_LR]


@pytest.mark.parametrize(
    ("name", "warmup_epochs", "stop_at"),
    [
        (name, warmup_epochs, stop_at)
        for name in sorted(SCHEDULERS)
        for warmup_epochs, stop_at in [(0.0, 3), (0.0, 13), (2.0, 4), (2.0, 10), (2.0, 13)]
        if name in WARMABLE or warmup_epochs == 0
    ],
)
def test_seek_continues_as_if_stepped_there(name, warmup_epochs, stop_at):
    """A resumed run builds its schedule afresh and seeks to the step it reached."""
    spe, total = 5, 30
    opt = _opt(name, epochs=6, warmup_epochs=warmup_epochs, lr_step_epochs=1, lr_gamma=0.5)
    reference = _lrs(*_build(opt, spe), total)

    optimizer, scheduler = _build(opt, spe)
    scheduler.seek(stop_at)
    tail = _lrs(optimizer, scheduler, total - stop_at)
    assert tail == pytest.approx(reference[stop_at:], rel=1e-12, abs=1e-15)


def _one_cycle(t, total, pct_start=0.3, div=25.0, final_div=1e4):
    """OneCycleLR's cosine rise to BASE_LR ending at step pct_start*total - 1, then its fall."""
    start, low = BASE_LR / div, BASE_LR / div / final_div
    peak_step = pct_start * total - 1
    if t <= peak_step:
        return BASE_LR + (start - BASE_LR) * (1 + math.cos(math.pi * t / peak_step)) / 2
    pct = (t - peak_step) / (total - 1 - peak_step)
    return low + (BASE_LR - low) * (1 + math.cos(math.pi * pct)) / 2


def test_onecycle_rises_to_peak_at_30_percent_then_falls_to_near_zero():
    epochs, spe = 4, 5
    optimizer, scheduler = _build(_opt("onecycle", epochs=epochs), steps_per_epoch=spe)
    total = epochs * spe
    lrs = _lrs(optimizer, scheduler, total)
    peak = 5  # 0.3 * 20 steps - 1: the step that uses the peak lr
    assert lrs[0] == pytest.approx(BASE_LR / 25)
    assert lrs[peak] == pytest.approx(BASE_LR, rel=1e-12)
    assert max(lrs) == lrs[peak]
    assert all(a < b for a, b in itertools.pairwise(lrs[: peak + 1]))
    assert all(a > b for a, b in itertools.pairwise(lrs[peak:]))
    assert lrs[-1] == pytest.approx(BASE_LR / 25e4, rel=1e-9)
    for t in range(total):
        assert lrs[t] == pytest.approx(_one_cycle(t, total), rel=1e-9)


def test_onecycle_spans_the_whole_run_of_a_fractional_peak_and_odd_step_count():
    # 21 steps: the peak at 0.3 * 21 - 1 = 5.3 falls between steps; step 6, 0.7 steps down the
    # 14.7-step fall, is nearer the top than step 5, 0.3 steps below it on the 5.3-step rise.
    epochs, spe = 3, 7
    optimizer, scheduler = _build(_opt("onecycle", epochs=epochs), steps_per_epoch=spe)
    lrs = _lrs(optimizer, scheduler, epochs * spe)
    assert lrs.index(max(lrs)) == 6
    assert BASE_LR * 0.99 < lrs[6] < BASE_LR
    assert lrs[-1] == pytest.approx(BASE_LR / 25e4, rel=1e-9)
    assert lrs == pytest.approx([_one_cycle(t, 21) for t in range(21)], rel=1e-9)


def test_onecycle_leaves_momentum_alone():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=BASE_LR, momentum=0.9)
    scheduler = build_scheduler(optimizer, _opt("onecycle", epochs=2), steps_per_epoch=5)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        assert optimizer.param_groups[0]["momentum"] == 0.9


def test_onecycle_holds_its_final_lr_past_the_planned_steps():
    optimizer, scheduler = _build(_opt("onecycle", epochs=2), steps_per_epoch=5)
    lrs = _lrs(optimizer, scheduler, 10 + 4)  # a resume with more epochs steps on
    assert lrs[10:] == [lrs[9]] * 4
    assert lrs[10] < BASE_LR * 1e-5


def test_onecycle_refuses_warmup_epochs():
    with pytest.raises(UsageError) as info:
        _build(_opt("onecycle", warmup_epochs=1.0), steps_per_epoch=5)
    assert str(info.value) == (
        "--scheduler onecycle warms up by itself (the first 30% of steps); drop --warmup_epochs"
    )


def test_unknown_name_is_usage_error():
    with pytest.raises(UsageError) as info:
        _build(_opt("linear"), steps_per_epoch=3)
    assert "linear" in str(info.value)
    assert str(info.value).endswith("known: " + ", ".join(sorted(SCHEDULERS)))
