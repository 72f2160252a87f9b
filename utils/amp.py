"""Mixed precision: the one place that turns an ``--amp`` mode into an autocast context."""

import contextlib

import torch

from utils.errors import UsageError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
AMP_MODES = ("off", *AMP_DTYPES)


def autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager:
    """Autocast on ``device`` for ``mode`` ``bf16`` or ``fp16``; a no-op context for ``off``.

    Example: ``with autocast(torch.device("cuda"), "bf16"): outputs = model(inputs)``.
    """
    if mode == "off":
        return contextlib.nullcontext()
    if mode not in AMP_DTYPES:
        raise UsageError(f"--amp {mode!r}: expected one of {', '.join(AMP_MODES)}")
    return torch.autocast(device.type, dtype=AMP_DTYPES[mode])
