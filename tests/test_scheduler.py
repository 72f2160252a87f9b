"""Tests for utils.scheduler.build_scheduler against closed-form learning rates."""

import itertools
import math
from argparse import Namespace

import pytest
import torch
from torch import nn

from utils.errors import UsageError
from utils.scheduler import SCHEDULERS, build_scheduler

BASE_LR = 0.5


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


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
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


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
@pytest.mark.parametrize(("warmup_epochs", "stop_at"), [(0.0, 7), (2.0, 4), (2.0, 10), (2.0, 13)])
def test_resume_from_state_dict_gives_same_lr_sequence(tmp_path, name, warmup_epochs, stop_at):
    spe, total = 5, 30
    opt = _opt(name, epochs=6, warmup_epochs=warmup_epochs, lr_step_epochs=1, lr_gamma=0.5)
    optimizer, scheduler = _build(opt, spe)
    reference = _lrs(optimizer, scheduler, total)

    optimizer, scheduler = _build(opt, spe)
    head = _lrs(optimizer, scheduler, stop_at)
    path = tmp_path / "state.pth"
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, path)

    state = torch.load(path, weights_only=True)
    optimizer, scheduler = _build(opt, spe)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    tail = _lrs(optimizer, scheduler, total - stop_at)
    assert head + tail == pytest.approx(reference, rel=1e-12, abs=1e-15)


def test_unknown_name_is_usage_error():
    with pytest.raises(UsageError) as info:
        _build(_opt("linear"), steps_per_epoch=3)
    assert "linear" in str(info.value)
    assert str(info.value).endswith("known: " + ", ".join(sorted(SCHEDULERS)))
