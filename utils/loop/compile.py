"""``--compile``: run the model through ``torch.compile``, and in which mode.

On a GPU an eager step launches a kernel per op, a few hundred for a small model, and a fast
GPU waits for the host to launch them. ``torch.compile`` fuses the forward and the backward
into a few kernels each; ``reduce-overhead`` also records them as CUDA graphs, so a step
replays as a handful of launches; ``max-autotune`` does both and searches for the fastest
kernels (a long first epoch). Shapes are compiled static: the epoch's shorter last batch and
the validation batches get graphs of their own, compiled once each. On a CPU there are no
CUDA graphs, and the modes differ only in how long they search.
"""

import argparse

import torch
from torch import nn

from utils.cli import str2bool
from utils.errors import UsageError

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def compile_choice(text: str) -> bool | str:
    """An argparse ``type`` for ``--compile``: False, True (the ``default`` mode) or a mode.

    False and True stay booleans, as runs recorded them before the modes existed, so their
    configs still match on ``--resume``.
    """
    if text.strip().lower() in COMPILE_MODES:
        return text.strip().lower()
    try:
        return str2bool(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected False, True or a mode ({', '.join(COMPILE_MODES)}), got {text!r}"
        ) from None


def compile_mode(choice: bool | str) -> str | None:
    """The ``torch.compile`` mode of a ``--compile`` value; None for False."""
    if choice is True:
        return "default"
    return choice or None


def compile_model(model: nn.Module, choice: bool | str) -> nn.Module:
    """``model`` through ``torch.compile`` in the mode ``--compile`` asks for (static shapes),
    or as it is."""
    mode = compile_mode(choice)
    return model if mode is None else torch.compile(model, mode=mode, dynamic=False)


def replays_cuda_graphs(choice: bool | str, device: torch.device) -> bool:
    """Whether the compiled model records CUDA graphs, whose outputs the next replay reuses:
    the loop then marks where each step begins (``torch.compiler.cudagraph_mark_step_begin``)."""
    return device.type == "cuda" and compile_mode(choice) in CUDA_GRAPH_MODES


def check_compile_devices(choice: bool | str, device_ids: list[int]) -> None:
    """Refuse ``--compile`` over several ``--gpu_devices`` (DataParallel) in one line.

    DataParallel copies its module onto each GPU at every forward, and the copy writes empty
    parameter tables onto the module it copies; through a compiled wrapper those writes reach
    the real model, which loses its weights at the first step. DDP (torchrun) keeps one model
    per process and compiles it as it is.
    """
    if compile_mode(choice) is not None and len(device_ids) > 1:
        ids = ",".join(map(str, device_ids))
        raise UsageError(
            f"--compile {choice} with --gpu_devices {ids}: DataParallel cannot run a compiled "
            f"model; train on several GPUs with torchrun --nproc_per_node {len(device_ids)} "
            "(DDP), or pass --compile False"
        )


def keep_gradients_allocated(model: nn.Module) -> None:
    """Give each trainable parameter a zero gradient of its own, for runs that replay CUDA
    graphs: the optimizer then zeroes gradients in place rather than dropping them.

    A gradient left to the first backward of a cycle is that graph's output, which lives in
    the graphs' memory pool, and the next replay overwrites it; the second batch of an
    ``--accum_steps`` cycle would add into freed memory (torch raises "accessing gradient
    tensor output of CUDAGraphs that has been overwritten"). Gradients allocated here live
    outside the pool, and each backward adds into them.
    """
    for param in model.parameters():
        if param.requires_grad and param.grad is None:
            param.grad = torch.zeros_like(param)
