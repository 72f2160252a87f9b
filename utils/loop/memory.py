"""The peak memory of each epoch, for the run's record.

On a GPU it is the peak of the tensors the caching allocator handed out
(``torch.cuda.max_memory_allocated``, reset at each epoch's start): what the model, its
activations, gradients and optimizer state needed, read without waiting for the device. On
the CPU it is the peak resident size of the process (``VmHWM``, reset through
``/proc/self/clear_refs`` where Linux allows it; elsewhere the peak since the process
started). DataLoader worker processes are not counted; under DDP each rank has its own, and
rank 0 records its own.
"""

import contextlib
import resource
import sys
from pathlib import Path

import torch

MIB = 2**20


class PeakMemory:
    """Reset at an epoch's start, read at its end: the most memory held in between, in MiB."""

    def __init__(self, device: torch.device, proc: Path = Path("/proc/self")) -> None:
        self.device = device
        self.proc = proc

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        # "5" resets the peak resident size (Linux 4.0+); elsewhere read_mib gives the peak
        # since the process started.
        with contextlib.suppress(OSError):
            (self.proc / "clear_refs").write_text("5")

    def read_mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / MIB
        try:
            for line in (self.proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MIB  # kB
        except OSError:
            pass
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / MIB if sys.platform == "darwin" else peak * 1024 / MIB  # bytes or KiB
