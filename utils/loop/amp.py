"""Mixed precision and memory format: what ``--amp`` and ``--channels_last`` ask for, and what
``auto`` picks on the device in use.

``--amp auto`` takes bf16 where it is native (a CUDA GPU that supports it, a CPU with AVX-512
BF16 or AMX), fp16 on older GPUs, and full precision elsewhere: on a CPU without those
instructions bf16 is emulated and slower than fp32, and fp16 autocast always is.
``--channels_last auto`` turns NHWC on for models with 2-D convolutions, which run faster in
it (tensor cores on GPUs, oneDNN on CPUs), and off for the others.

On a GPU these rules can be the slow choice: a small model is bound by kernel launches, and
autocast adds a cast kernel per layer. So there ``auto`` times a few steps of each candidate
at the start, as ``cudnn.benchmark`` times its algorithms, and takes the fastest
(:func:`time_candidates`); the trainer logs the figures and keeps the pick on resume. The
steps timed are forward and backward: the optimizer's step costs the same in each candidate
(the weights stay fp32 and their layout does not change its cost), so it cannot change the
order. On a CPU the rules hold as measured (see the README) and timing a UNet step would take
minutes. Under ``--compile`` the rules hold as well, and eager timings would not: compiling
fuses the casts and the small kernels whose launches made the rules wrong, and compiling each
candidate to time it would take minutes.

``TEMPLATE_CPU_BF16=1`` (or ``0``) in the environment stands in for what the CPU reports, so
the bf16 path can be run, and tested, on any CPU.
"""

import contextlib
import copy
import logging
import os
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from utils.cli import str2bool
from utils.errors import UsageError
from utils.loop.device import channels_last
from utils.loop.distributed import DistInfo, broadcast_object

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
AMP_MODES = ("off", *AMP_DTYPES)
AMP_CHOICES = ("auto", *AMP_MODES)
CPU_BF16_ENV = "TEMPLATE_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX-512 BF16 or AMX), unless
    ``$TEMPLATE_CPU_BF16`` says (1 or 0)."""
    forced = os.environ.get(CPU_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise UsageError(f"${CPU_BF16_ENV}={forced!r}: expected 1 (bf16 units) or 0 (none)")
    if not hasattr(torch.cpu, "get_capabilities"):  # older torch (2.6) has only private probes
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def cpu_bf16_told() -> str:
    """`` (as $TEMPLATE_CPU_BF16 says)`` when the environment stands in for the CPU, else ''."""
    return f" (as ${CPU_BF16_ENV} says)" if os.environ.get(CPU_BF16_ENV, "").strip() else ""


def resolve_amp(mode: str, device: torch.device) -> tuple[str, str]:
    """``(off|bf16|fp16, why)`` for an ``--amp`` mode on ``device``: ``auto`` picks; the others
    stand, with a warning in ``why`` where they are known to be slow."""
    if mode == "auto":
        if device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return "bf16", "this GPU computes in bf16"
            return "fp16", "this GPU has no bf16, so fp16 with a loss scaler"
        if device.type == "cpu" and cpu_has_native_bf16():
            return "bf16", "this CPU has AVX-512 BF16 or AMX" + cpu_bf16_told()
        told = cpu_bf16_told() if device.type == "cpu" else ""
        return (
            "off",
            f"no native bf16 on this {device.type}{told}: emulated, it is slower than fp32",
        )
    if mode == "fp16" and device.type == "cpu":
        return mode, "slow: a CPU has no fast fp16 kernels (use --amp auto or bf16)"
    if mode == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        return (
            mode,
            f"slow: this CPU has no AVX-512 BF16 or AMX{cpu_bf16_told()}, so bf16 is emulated",
        )
    return mode, "as asked"


NO_CONTEXT = contextlib.nullcontext()  # reusable: one no-op context, not a new one a step


def autocast(device: torch.device, mode: str) -> contextlib.AbstractContextManager:
    """Autocast on ``device`` for ``mode`` ``bf16`` or ``fp16``; a no-op context for ``off``.

    Example: ``with autocast(torch.device("cuda"), "bf16"): outputs = model(inputs)``.
    """
    if mode == "off":
        return NO_CONTEXT
    if mode not in AMP_DTYPES:
        raise UsageError(f"--amp {mode!r}: expected one of {', '.join(AMP_MODES)}")
    return torch.autocast(device.type, dtype=AMP_DTYPES[mode])


def auto_or_bool(text: str) -> str | bool:
    """An argparse ``type`` for ``auto``, ``True`` or ``False``."""
    return "auto" if text.strip().lower() == "auto" else str2bool(text)


def has_convolutions(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def resolve_channels_last(choice: str | bool, model: nn.Module) -> bool:
    """``--channels_last``: ``auto`` is on for models with 2-D convolutions."""
    return has_convolutions(model) if choice == "auto" else bool(choice)


def log_precision(
    amp: tuple[str, str], channels_last: bool, asked: str | bool, layout_why: str | None = None
) -> None:
    """One line saying what ``--amp`` and ``--channels_last`` came to and why (``layout_why``
    where ``auto`` did not follow the rule); a warning when the precision asked for is known
    to be slow on the device."""
    mode, why = amp
    level = logging.WARNING if why.startswith("slow") else logging.INFO
    layout = "on" if channels_last else "off"
    if layout_why:
        layout += f" ({layout_why})"
    elif asked == "auto":
        layout += " (auto: the model has convolutions)" if channels_last else " (auto: no conv)"
    log.log(level, "amp %s (%s); channels_last %s", mode, why, layout)


Precision = tuple[str, bool]  # (amp mode, channels_last)


def candidates(
    amp: tuple[str, str], asked_amp: str, asked_layout: str | bool, model: nn.Module
) -> list[Precision]:
    """What ``auto`` may pick from: the rule's precision and full precision where ``--amp`` is
    auto, both layouts where ``--channels_last`` is auto and the model has convolutions."""
    modes = list(dict.fromkeys([amp[0], "off"])) if asked_amp == "auto" else [amp[0]]
    layouts = [resolve_channels_last(asked_layout, model)]
    if asked_layout == "auto" and has_convolutions(model):
        layouts = [True, False]
    return [(mode, layout) for mode in modes for layout in layouts]


def timed_here(device: torch.device) -> bool:
    """Whether ``auto`` times its candidates on ``device`` rather than follow the rules: on a
    GPU."""
    return device.type == "cuda"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_candidates(
    step: Callable[[Precision], Callable[[], None]],
    choices: list[Precision],
    device: torch.device,
    steps: int = 5,
    rounds: int = 3,
) -> dict[Precision, float]:
    """Seconds a step takes with each choice: ``step(choice)`` returns a function that runs one
    step; after two for warm-up, the median of ``rounds`` runs of ``steps`` steps each, the
    device waited for once a run so that the host may run ahead as in training."""
    seconds = {}
    for choice in choices:
        run = step(choice)
        for _ in range(2):
            run()
        synchronize(device)
        runs = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(steps):
                run()
            synchronize(device)
            runs.append((time.perf_counter() - start) / steps)
        seconds[choice] = statistics.median(runs)
    return seconds


def time_steps(
    model: nn.Module,
    batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    choices: list[Precision],
) -> dict[Precision, float]:
    """Seconds of a forward and backward of ``model`` on ``batch()`` (inputs and targets on
    its device), with each choice: :func:`time_candidates` on copies of ``model`` (its
    BatchNorm statistics stay untouched), under forked RNGs (the batch's augmentation and the
    dropout draws leave the run's random streams alone)."""

    def step(choice: Precision) -> Callable[[], None]:
        mode, layout = choice
        trial = copy.deepcopy(model).train()
        trial = trial.to(memory_format=torch.channels_last) if layout else trial
        batch_inputs = channels_last(inputs) if layout else inputs

        def run() -> None:
            with autocast(device, mode):
                value = loss(trial(batch_inputs), targets)
            value.backward()
            trial.zero_grad(set_to_none=True)

        return run

    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        inputs, targets = batch()  # a dataset's random augmentation draws here too
        return time_candidates(step, choices, device)


def describe_precision(choice: Precision) -> str:
    mode, layout = choice
    return f"{mode}{'+channels_last' if layout else ''}"


def pick_precision(
    asked_amp: str,
    asked_layout: str | bool,
    device: torch.device,
    model: nn.Module,
    picked: dict | None,
    time_choices: Callable[[list[Precision]], dict[Precision, float]],
    dist: DistInfo,
    compiled: bool = False,
) -> tuple[tuple[str, str], bool, str | None]:
    """What ``--amp`` and ``--channels_last`` come to for ``model`` on ``device``:
    ``((mode, why), channels_last, why the layout where auto did not follow the rule)``.

    ``auto`` follows the rules above, except where :func:`timed_here` for a model not
    ``compiled``: there each candidate's steps are timed (``time_choices``, by rank 0, for
    every DDP rank) and the fastest is taken. A resumed run keeps what it ``picked``, so it
    computes as it did.
    """
    amp = resolve_amp(asked_amp, device)
    layout = resolve_channels_last(asked_layout, model)
    if picked is not None:
        kept = "auto: as the run picked when it started"
        if asked_amp == "auto":
            amp = (picked["amp"], kept)
        if asked_layout == "auto":
            return amp, picked["channels_last"], kept
        return amp, layout, None
    choices = candidates(amp, asked_amp, asked_layout, model)
    if len(choices) == 1 or not timed_here(device) or compiled:
        return amp, layout, None
    best = None
    if dist.is_main:
        seconds = time_choices(choices)
        best = min(seconds, key=seconds.__getitem__)
        timings = ", ".join(f"{describe_precision(c)} {t * 1e3:.2f} ms" for c, t in seconds.items())
        log.info(
            "auto: a training step on %s takes %s; picked %s",
            device,
            timings,
            describe_precision(best),
        )
    mode, layout = broadcast_object(best, dist)
    timed = "auto: the fastest of the steps timed"
    amp = (mode, timed) if asked_amp == "auto" else amp
    return amp, layout, timed if asked_layout == "auto" else None
