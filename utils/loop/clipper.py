"""Gradient clipping by value and/or by global norm."""

from collections.abc import Iterable

import torch
from torch import nn


class GradClipper:
    """Clip gradients in place before the optimizer step.

    Value clipping (each element into ``[-max_value, max_value]``) runs first, then norm
    clipping rescales all gradients together so their global L2 norm is at most ``max_norm``.
    ``None`` switches either off.
    """

    def __init__(self, max_norm: float | None = None, max_value: float | None = None) -> None:
        self.max_norm = max_norm
        self.max_value = max_value

    @property
    def enabled(self) -> bool:
        return self.max_norm is not None or self.max_value is not None

    def __call__(self, parameters: Iterable[nn.Parameter]) -> torch.Tensor | None:
        """Clip and return the global gradient norm before norm clipping (None if not measured)."""
        if not self.enabled:  # called every step: do nothing at all when switched off
            return None
        params = [p for p in parameters if p.grad is not None]
        if self.max_value is not None:
            nn.utils.clip_grad_value_(params, self.max_value)
        if self.max_norm is not None:
            return nn.utils.clip_grad_norm_(params, self.max_norm)
        return None
