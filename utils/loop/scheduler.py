"""Learning-rate schedules selected by ``--scheduler``: the lr as a function of the optimizer step.

Each schedule is a closed-form factor of the peak lr (``--lr``, or each parameter group's own)
at optimizer step ``t``, stepped once per optimizer step, so warmup and decay move smoothly
and the lr of any step follows from the options and the step alone. A resumed run therefore
needs no scheduler state: it evaluates the schedule of its options at the step it reached,
and a run resumed with other options (``--allow_config_change``: more ``--epochs``, another
``--scheduler``...) follows the schedule that those options give, from that step on.

``onecycle`` is the one-cycle policy: a cosine rise from ``lr / 25`` to the peak over the
first 30% of the run's steps, then a cosine fall to ``lr / 25e4``. It warms up by itself, so
it refuses ``--warmup_epochs``; it leaves momentum (SGD's ``--momentum``, Adam's betas) alone.
Every schedule holds its final lr once its planned steps are done.
"""

import math
from argparse import Namespace
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from utils.errors import UsageError
from utils.registry import lookup

# Optimizer step -> factor of the peak lr.
Schedule = Callable[[int], float]


def cosine(total: int) -> Schedule:
    """From 1 down to 0 along half a cosine over ``total`` steps."""
    return lambda t: (1 + math.cos(math.pi * min(t, total) / total)) / 2


def one_cycle(total: int, peak_at: float = 0.3, start: float = 1 / 25, end: float = 1 / 25e4):
    """``start`` up to 1 by step ``peak_at * total - 1``, then down to ``end`` by the last step,
    each along half a cosine (torch's ``OneCycleLR`` without momentum cycling)."""
    peak = peak_at * total - 1

    def anneal(a: float, b: float, fraction: float) -> float:
        return b + (a - b) * (1 + math.cos(math.pi * fraction)) / 2

    def factor(t: int) -> float:
        t = min(t, total - 1)
        if t <= peak:
            return anneal(start, 1.0, t / peak)
        return anneal(1.0, end, (t - peak) / (total - 1 - peak))

    return factor


# Each factory gets the options, the steps the main schedule spans and the steps per epoch.
SchedulerFactory = Callable[[Namespace, int, int], Schedule]

SCHEDULERS: dict[str, SchedulerFactory] = {
    "none": lambda opt, steps, per_epoch: lambda t: 1.0,
    "cosine": lambda opt, steps, per_epoch: cosine(steps),
    "step": lambda opt, steps, per_epoch: (
        lambda t: opt.lr_gamma ** (t // max(1, opt.lr_step_epochs * per_epoch))
    ),
    "onecycle": lambda opt, steps, per_epoch: one_cycle(steps),
}
# Schedules with their own warm-up, for which --warmup_epochs is refused.
SELF_WARMING = frozenset({"onecycle"})


def check_scheduler_options(opt: Namespace) -> None:
    """Refuse options that contradict the schedule; cheap, so a script may call it early."""
    if opt.scheduler in SELF_WARMING and opt.warmup_epochs > 0:
        raise UsageError(
            f"--scheduler {opt.scheduler} warms up by itself (the first 30% of steps); "
            "drop --warmup_epochs"
        )


def build_schedule(opt: Namespace, steps_per_epoch: int) -> Schedule:
    """``opt.scheduler`` over ``opt.epochs``, after a linear warmup of ``opt.warmup_epochs``.

    The warmup rises from ``1 / w`` of the peak in equal steps and reaches it at step ``w``,
    where the main schedule begins.
    """
    check_scheduler_options(opt)
    factory = lookup(SCHEDULERS, opt.scheduler, "scheduler")
    total = opt.epochs * steps_per_epoch
    warmup = round(opt.warmup_epochs * steps_per_epoch)
    main = factory(opt, max(1, total - warmup), steps_per_epoch)
    if warmup == 0:
        return main
    return lambda t: 1 / warmup + (1 - 1 / warmup) * t / warmup if t < warmup else main(t - warmup)


class Scheduler(LambdaLR):
    """Sets each group's lr to its peak times the schedule's factor at the current step."""

    def seek(self, step: int) -> None:
        """Jump to optimizer step ``step``: the lr that a run which made ``step`` steps has."""
        self.last_epoch = step
        self._last_lr = [
            base * factor(step) for base, factor in zip(self.base_lrs, self.lr_lambdas, strict=True)
        ]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr


def build_scheduler(optimizer: Optimizer, opt: Namespace, steps_per_epoch: int) -> Scheduler:
    """The schedule of ``opt`` over ``optimizer``'s groups, at step 0; with
    ``--freeze_backbone N`` the backbone's group holds lr 0 for the first N epochs. A function
    of the step alone, so a resumed run has the lr a run never stopped has."""
    schedule = build_schedule(opt, steps_per_epoch)
    frozen = getattr(opt, "freeze_backbone", 0) * steps_per_epoch  # optimizer steps

    def thawed(step: int) -> float:
        return 0.0 if step < frozen else schedule(step)

    lambdas = [
        thawed if group.get("name") == "backbone" else schedule for group in optimizer.param_groups
    ]
    return Scheduler(optimizer, lambdas)
