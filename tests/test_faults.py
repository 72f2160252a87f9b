"""SIGKILL a training subprocess at many moments, saves included, and resume each time.

Every checkpoint left behind must load, and the run that was killed and resumed again and again
must end with the same weights, bit for bit, as one that was never interrupted.
"""

import os
import signal
import time
from pathlib import Path

import torch
from conftest import read_until, run_script, start_script
from toy_task import TOY_ARGS

from utils.records.checkpoint import load_checkpoint

# Four epochs of 10 steps, each step followed by a checkpoint save (3.3 MB, fsync'd).
RUN = (*TOY_ARGS, "--epochs", "4", "--deterministic", "True", "--flip", "True")
RUN += ("--save_every_n_steps", "1")
# Seconds after the first progress line of each process; negative: before training starts.
TIMED_KILLS = (-1.0, 0.0, 0.004, 0.009, 0.015, 0.024, 0.037, 0.055, 0.08)
# The process kills itself halfway through writing its N-th checkpoint (toy_task's TOY_FAULT).
SAVE_KILLS = (1, 2, 3, 5)


def kill_after(process, delay: float) -> None:
    """SIGKILL ``process`` ``delay`` s after its first progress line (negative: after start)."""
    if delay < 0:
        time.sleep(-delay)
    else:
        read_until(process, " samples/s")
        time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)


def partial_writes(out: Path) -> list[Path]:
    return list(out.glob("*/.*.tmp"))


def test_sigkill_anywhere_leaves_loadable_checkpoints_and_an_exact_resume(tmp_path):
    reference = tmp_path / "reference"
    result = run_script("-m", "tests.toy_task", "--output_dir", reference, *RUN)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    out = tmp_path / "killed"
    kills = [("after", delay) for delay in TIMED_KILLS] + [("in-save", n) for n in SAVE_KILLS]
    for how, when in kills:
        resume = ("--resume", "auto") if list(out.glob("*/*_ckpt.pth")) else ()
        before = set(partial_writes(out))
        fault = {"TOY_FAULT": f"kill-in-save:{when}:0"} if how == "in-save" else {}
        process = start_script(
            "-m", "tests.toy_task", "--output_dir", out, *RUN, *resume, env=fault
        )
        if how == "after":
            kill_after(process, when)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL, f"{how} {when}: exited\n{output[-2000:]}"
        if how == "in-save":  # the next resume of this run removes the half-written file
            assert len(set(partial_writes(out)) - before) == 1, f"no partial write: {how} {when}"
        for checkpoint in out.glob("*/*_ckpt.pth"):
            load_checkpoint(checkpoint)  # raises on a torn file

    result = run_script("-m", "tests.toy_task", "--output_dir", out, *RUN, "--resume", "auto")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (expected,) = reference.glob("*/Vanilla_last_ckpt.pth")
    want = torch.load(expected, weights_only=True)
    (finished,) = [
        path
        for path in out.glob("*/Vanilla_last_ckpt.pth")
        if torch.load(path, weights_only=True)["epoch"] == 4
    ]
    assert not list(finished.parent.glob(".*.tmp"))  # resuming removed what kills left
    got = torch.load(finished, weights_only=True)
    assert all(torch.equal(got["model"][k], want["model"][k]) for k in want["model"])
