"""Learning-rate schedules selected by ``--scheduler``, stepped once per optimizer step.

Stepping per iteration (not per epoch) lets warmup and cosine decay move smoothly and makes
a mid-epoch checkpoint carry the exact learning rate.
"""

from argparse import Namespace
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ConstantLR,
    CosineAnnealingLR,
    LinearLR,
    LRScheduler,
    SequentialLR,
    StepLR,
)

from utils.registry import lookup

# Each factory gets the optimizer, the options, and how many steps the main schedule spans.
SchedulerFactory = Callable[[Optimizer, Namespace, int, int], LRScheduler]

SCHEDULERS: dict[str, SchedulerFactory] = {
    "none": lambda optim, opt, steps, per_epoch: ConstantLR(optim, factor=1.0, total_iters=0),
    "cosine": lambda optim, opt, steps, per_epoch: CosineAnnealingLR(optim, T_max=max(1, steps)),
    "step": lambda optim, opt, steps, per_epoch: StepLR(
        optim, step_size=max(1, opt.lr_step_epochs * per_epoch), gamma=opt.lr_gamma
    ),
}


def build_scheduler(optimizer: Optimizer, opt: Namespace, steps_per_epoch: int) -> LRScheduler:
    """Build ``opt.scheduler``, preceded by a linear warmup over ``opt.warmup_epochs`` if set."""
    factory = lookup(SCHEDULERS, opt.scheduler, "scheduler")
    total = opt.epochs * steps_per_epoch
    warmup = round(opt.warmup_epochs * steps_per_epoch)
    main = factory(optimizer, opt, total - warmup, steps_per_epoch)
    if warmup == 0:
        return main
    ramp = LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [ramp, main], milestones=[warmup])
