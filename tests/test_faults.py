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

from utils.checkpoint import load_checkpoint

# Four epochs of 10 steps, each step followed by a checkpoint save (3.3 MB, fsync'd).
RUN = (*TOY_ARGS, "--epochs", "4", "--deterministic", "True", "--flip", "True")
RUN += ("--save_every_n_steps", "1")
# Seconds after the first progress line of each process; negative: before training starts.
TIMED_KILLS = (-1.0, 0.0, 0.004, 0.009, 0.015, 0.024, 0.037, 0.055, 0.08)
SAVE_KILLS = (0.0, 0.012, 0.03, 0.05)  # then the moment a temp checkpoint file appears


def kill_at(process, delay: float, in_save: bool, out: Path) -> None:
    """SIGKILL ``process`` ``delay`` s into training, or once a save is under way after that."""
    if delay < 0:
        time.sleep(-delay)
    else:
        read_until(process, " samples/s")
        time.sleep(delay)
        deadline = time.monotonic() + 5
        while in_save and not list(out.glob("*/.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.0002)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)


def test_sigkill_anywhere_leaves_loadable_checkpoints_and_an_exact_resume(tmp_path):
    reference = tmp_path / "reference"
    result = run_script("-m", "tests.toy_task", "--output_dir", reference, *RUN)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    out = tmp_path / "killed"
    kills = [(d, False) for d in TIMED_KILLS] + [(d, True) for d in SAVE_KILLS]
    mid_save = 0
    for delay, in_save in sorted(kills, key=lambda k: (k[0], k[1])):
        resume = ("--resume", "auto") if list(out.glob("*/*_ckpt.pth")) else ()
        process = start_script("-m", "tests.toy_task", "--output_dir", out, *RUN, *resume)
        kill_at(process, delay, in_save, out)
        assert process.returncode == -signal.SIGKILL, f"finished before the kill at {delay}s"
        mid_save += bool(list(out.glob("*/.*.tmp")))
        for checkpoint in out.glob("*/*_ckpt.pth"):
            load_checkpoint(checkpoint)  # raises on a torn file
    print(f"{len(kills)} SIGKILLs, {mid_save} of them during a checkpoint save")
    assert mid_save >= 1

    result = run_script("-m", "tests.toy_task", "--output_dir", out, *RUN, "--resume", "auto")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (expected,) = reference.glob("*/Vanilla_last_ckpt.pth")
    want = torch.load(expected, weights_only=True)
    (got,) = [
        state
        for state in (torch.load(p, weights_only=True) for p in out.glob("*/Vanilla_last_ckpt.pth"))
        if state["epoch"] == 4
    ]
    assert all(torch.equal(got["model"][k], want["model"][k]) for k in want["model"])
