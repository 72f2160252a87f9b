"""Learning-rate schedules selected by ``--scheduler``, stepped once per optimizer step.

Stepping per iteration (not per epoch) lets warmup and cosine decay move smoothly and makes
a mid-epoch checkpoint carry the exact learning rate.

``onecycle`` is the one-cycle policy: a cosine rise from ``lr / 25`` to the optimizer's lr
(``--lr``) over the first 30% of the run's steps, then a cosine fall to ``lr / 25e4``. It
warms up by itself, so it refuses ``--warmup_epochs``; it leaves momentum (SGD's
``--momentum``, Adam's betas) alone.
"""

from argparse import Namespace
from collections.abc import Callable

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    OneCycleLR,
    SequentialLR,
    StepLR,
)

from utils.errors import UsageError
from utils.registry import lookup


class OneCycle(OneCycleLR):
    """``OneCycleLR`` that keeps its final lr once ``total_steps`` steps are done.

    Torch's own rises again on the step after the last (the lr the log shows at the end of a
    run) and raises on the next; a run resumed with more ``--epochs`` keeps the checkpoint's
    schedule, as cosine does, and so trains on at the final lr instead of crashing.
    """

    def get_lr(self) -> list[float | Tensor]:
        if self.last_epoch >= self.total_steps:
            return [group["lr"] for group in self.optimizer.param_groups]
        return super().get_lr()


# Each factory gets the optimizer, the options, and how many steps the main schedule spans.
SchedulerFactory = Callable[[Optimizer, Namespace, int, int], LRScheduler]

SCHEDULERS: dict[str, SchedulerFactory] = {
    "none": lambda optim, opt, steps, per_epoch: ConstantLR(optim, factor=1.0, total_iters=0),
    "cosine": lambda optim, opt, steps, per_epoch: CosineAnnealingLR(optim, T_max=max(1, steps)),
    "step": lambda optim, opt, steps, per_epoch: StepLR(
        optim, step_size=max(1, opt.lr_step_epochs * per_epoch), gamma=opt.lr_gamma
    ),
    "onecycle": lambda optim, opt, steps, per_epoch: OneCycle(
        optim,
        max_lr=[group["lr"] for group in optim.param_groups],  # --lr, or each group's own
        total_steps=max(1, steps),
        cycle_momentum=False,
    ),
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


def build_scheduler(optimizer: Optimizer, opt: Namespace, steps_per_epoch: int) -> LRScheduler:
    """Build ``opt.scheduler``, preceded by a linear warmup over ``opt.warmup_epochs`` if set."""
    check_scheduler_options(opt)
    factory = lookup(SCHEDULERS, opt.scheduler, "scheduler")
    total = opt.epochs * steps_per_epoch
    warmup = round(opt.warmup_epochs * steps_per_epoch)
    main = factory(optimizer, opt, total - warmup, steps_per_epoch)
    if warmup == 0:
        return main
    ramp = LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])
