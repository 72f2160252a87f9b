"""Device selection from ``--gpu_devices``: ``auto``, ``cpu`` or a list of GPU indices."""

import logging
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import torch

from utils.errors import UsageError

log = logging.getLogger(__name__)


def parse_gpu_devices(spec: str) -> str | list[int]:
    """``"auto"`` and ``"cpu"`` pass through; ``"0,1"`` becomes ``[0, 1]``."""
    spec = spec.strip().lower()
    if spec in ("auto", "cpu"):
        return spec
    try:
        ids = [int(part) for part in spec.split(",")]
    except ValueError:
        raise UsageError(
            f"--gpu_devices {spec!r}: expected 'auto', 'cpu' or GPU indices such as '0' or '0,1'"
        ) from None
    if any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise UsageError(f"--gpu_devices {spec!r}: indices must be distinct and >= 0")
    return ids


def pick_most_free(free_bytes: Sequence[int]) -> int:
    """Index of the GPU with the most free memory (the lowest index on a tie)."""
    return max(range(len(free_bytes)), key=lambda i: (free_bytes[i], -i))


# Run in a child process by free_memory: prints each visible GPU's free bytes.
FREE_MEMORY_SCRIPT = (
    "import torch; "
    "print(*(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())))"
)


def free_memory() -> list[int]:
    """Free bytes on each visible GPU, asked in a child process.

    ``cudaMemGetInfo`` opens a CUDA context (a few hundred MB) on each GPU it asks, and this
    process would keep the contexts of the GPUs it does not train on until it exits. The
    child's contexts end with it; it sees the same GPUs (``CUDA_VISIBLE_DEVICES`` included).
    """
    child = subprocess.run(
        [sys.executable, "-c", FREE_MEMORY_SCRIPT], capture_output=True, text=True, check=False
    )
    if child.returncode != 0:
        why = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise UsageError(
            f"--gpu_devices auto: could not read the GPUs' free memory ({why}); "
            "name the GPU instead, e.g. --gpu_devices 0"
        )
    return [int(free) for free in child.stdout.split()]


def select_device(spec: str) -> tuple[torch.device, list[int]]:
    """Resolve ``--gpu_devices`` to the main device and the GPU ids to use (empty on CPU).

    ``auto`` takes the one GPU with the most free memory (measured in a child process, see
    :func:`free_memory`), or the CPU when there is none; more than one id means the trainer
    wraps the model in DataParallel over them.
    """
    choice = parse_gpu_devices(spec)
    count = torch.cuda.device_count()
    if choice == "cpu":
        return torch.device("cpu"), []
    if choice == "auto":
        if count == 0:
            log.info("no CUDA GPU found: running on the CPU")
            return torch.device("cpu"), []
        if count == 1:
            log.info("picked GPU 0, the only one")
            return torch.device("cuda", 0), [0]
        free = free_memory()
        best = pick_most_free(free)
        log.info("picked GPU %d (%.1f GiB free of %d GPUs)", best, free[best] / 2**30, count)
        return torch.device("cuda", best), [best]
    missing = [i for i in choice if i >= count]
    if missing:
        have = f"GPUs 0-{count - 1}" if count else "no CUDA GPU"
        raise UsageError(
            f"--gpu_devices {spec}: GPU {missing[0]} does not exist (this machine has {have}); "
            "use 'auto' or 'cpu'"
        )
    return torch.device("cuda", choice[0]), choice


def move_to(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) tuple, list or dict batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(item, device) for item in batch))
    if isinstance(batch, tuple | list):
        return type(batch)(move_to(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: move_to(value, device) for key, value in batch.items()}
    return batch


def channels_last(inputs: torch.Tensor) -> torch.Tensor:
    """A 4-D image batch in NHWC memory format, as ``--channels_last`` runs feed their conv
    models; any other tensor as it is."""
    return inputs.contiguous(memory_format=torch.channels_last) if inputs.dim() == 4 else inputs
