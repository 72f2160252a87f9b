"""``--ema DECAY``: an exponential moving average of a model's weights, as timm's
``--model-ema`` and Lightning's weight averaging keep it.

torch's :class:`~torch.optim.swa_utils.AveragedModel` holds the average (buffers included, so
batch-norm statistics are averaged with the weights that made them); it is updated after each
optimizer step, from the bare model (no DDP or compile wrapper), so every rank of a DDP run
holds the same average. Validation, the best checkpoint, evaluation, prediction and export
use the average; the optimizer goes on training the model's own weights, which checkpoints
keep beside it for an exact resume.
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def ema_of_floats(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """torch's EMA update for floating tensors; integer buffers (batch norm's batch counter)
    are copied, where the EMA would round them down and stall them."""
    ema = get_ema_multi_avg_fn(decay)

    def update(averaged: list[Tensor], current: list[Tensor], updates: Tensor) -> None:
        if averaged[0].is_floating_point():  # AveragedModel groups tensors by dtype
            ema(averaged, current, updates)
        else:
            torch._foreach_copy_(averaged, current)

    return update


class WeightAverage:
    """The EMA of ``model``'s weights and buffers with ``decay``: after each
    :meth:`update`, ``average = decay * average + (1 - decay) * weights``. The first update
    takes the weights as they are (AveragedModel's rule), so the average never holds the
    initialisation once training has stepped."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.source = model  # the bare model the optimizer trains
        self.averaged = AveragedModel(model, multi_avg_fn=ema_of_floats(decay), use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def module(self) -> nn.Module:
        """The averaged model, to validate and save."""
        return self.averaged.module

    @property
    def updates(self) -> int:
        return int(self.averaged.n_averaged)

    def update(self) -> None:
        """Move the average toward the model's weights and buffers (after an optimizer step)."""
        self.averaged.update_parameters(self.source)

    def load(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Restore an average of ``updates`` steps, or, with ``updates`` 0, start afresh from
        ``weights`` (a checkpoint saved without ``--ema``)."""
        self.module.load_state_dict(weights)
        self.averaged.n_averaged.fill_(updates)
