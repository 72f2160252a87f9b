"""``--profile N``: where a training step's time goes, from torch.profiler.

After :data:`WARMUP_STEPS` steps (the first steps allocate, autotune and compile), ``N``
training steps run under ``torch.profiler`` (CPU activity, and CUDA on a GPU). Their trace is
written as Chrome trace JSON, which Perfetto (ui.perfetto.dev) and chrome://tracing open, and
the operators that took the most self time go to the log. The run then goes on unprofiled.
"""

import logging
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

log = logging.getLogger(__name__)

WARMUP_STEPS = 5
TOP_OPERATORS = 15


class StepProfiler:
    """Profiles ``steps`` training steps after the warm-up; :meth:`step` is called after each
    training step, :meth:`close` when training ends (early or not)."""

    def __init__(self, steps: int, device: torch.device, trace: Path) -> None:
        self.steps = steps
        self.trace = trace
        self.cuda = device.type == "cuda"
        self.seen = 0
        self.profiler: profile | None = None
        self.done = steps == 0

    def step(self) -> None:
        if self.done:
            return
        self.seen += 1
        if self.seen == WARMUP_STEPS:
            activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * self.cuda
            self.profiler = profile(activities=activities)
            self.profiler.start()
        elif self.seen == WARMUP_STEPS + self.steps:
            self.close()

    def close(self) -> None:
        """Stop, write the trace and log the top operators of the steps recorded (fewer than
        asked where the run had no more)."""
        if self.done:
            return
        self.done = True
        if self.profiler is None:
            log.warning(
                "--profile %d: the run ended within the %d warm-up steps; nothing was profiled",
                self.steps,
                WARMUP_STEPS,
            )
            return
        if self.cuda:
            torch.cuda.synchronize()
        self.profiler.stop()
        recorded = self.seen - WARMUP_STEPS
        self.trace.parent.mkdir(parents=True, exist_ok=True)
        self.profiler.export_chrome_trace(str(self.trace))
        sort = "self_cuda_time_total" if self.cuda else "self_cpu_time_total"
        table = self.profiler.key_averages().table(sort_by=sort, row_limit=TOP_OPERATORS)
        short = f" (the run had no more than {recorded})" if recorded < self.steps else ""
        log.info("profiled %d training steps%s; trace %s", recorded, short, self.trace)
        log.info("operators by self time over those steps:\n%s", table)
