"""DistributedDataParallel through torchrun on the CPU (gloo), two processes.

Two ranks with batch B see, step by step, the two halves of the batch 2B that one process
sees, so their averaged gradients and therefore the weights must match the single-process
run, and validation reduced across the ranks must report the same numbers. A stop signal and
a resume under torchrun must give what a run never stopped gives.
"""

import os
import re
import signal
from pathlib import Path

import pytest
import torch
from conftest import read_until, run_script, start_script
from toy_task import TOY_ARGS

from utils.checkpoint import load_checkpoint, load_model_state

LINEAR = (*TOY_ARGS[:4], "--linear", "True", "--deterministic", "True", "--epochs", "2")


TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")


def torchrun(*args: str | Path) -> str:
    """Run ``args`` under torchrun with 2 processes; return its stdout."""
    result = run_script(*TORCHRUN, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def last_checkpoint(out: Path) -> dict:
    (path,) = out.glob("*/Vanilla_last_ckpt.pth")
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path | str]:
    """A 2-rank DDP run with batch 8 per rank and a single-process run with batch 16, and
    what the DDP ranks printed."""
    ddp, single = tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("single")
    stdout = torchrun("-m", "tests.ddp_threads", "--output_dir", ddp, *LINEAR, "--batch_size", "8")
    result = run_script(
        "-m", "tests.toy_task", "--output_dir", single, *LINEAR, "--batch_size", "16"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"ddp": ddp, "single": single, "ddp_stdout": stdout}


def test_ddp_steps_match_one_process_with_the_whole_batch(runs):
    ddp, single = last_checkpoint(runs["ddp"]), last_checkpoint(runs["single"])
    assert ddp["global_step"] == single["global_step"] == 20  # 160 samples / 16 per step
    for key, value in single["model"].items():
        assert torch.allclose(ddp["model"][key], value, atol=1e-6), key
    assert not torch.equal(ddp["model"]["1.weight"], torch.zeros(3, 16))


def test_ddp_metrics_are_reduced_over_all_samples(runs):
    ddp, single = (
        last_checkpoint(runs["ddp"])["metrics"],
        last_checkpoint(runs["single"])["metrics"],
    )
    for name in ("val_loss", "val_acc", "train_loss", "train_acc"):
        assert ddp[name] == pytest.approx(single[name], abs=1e-6), name


def test_only_rank_0_writes(runs):
    (run_dir,) = runs["ddp"].iterdir()
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    log = (run_dir / "train.log").read_text()
    assert "rank 0 of 2 DDP processes" in log
    assert log.count("epoch 2/2  train_loss") == 1


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_the_process_group_is_gone_when_training_returns(runs):
    lines = [line for line in runs["ddp_stdout"].splitlines() if "threads after train" in line]
    assert len(lines) == 2, runs["ddp_stdout"]
    assert all("gloo" not in line for line in lines), lines


def test_checkpoints_move_between_ddp_and_one_process(runs, tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    load_model_state(model, last_checkpoint(runs["ddp"])["model"], "the DDP checkpoint")

    (single_ckpt,) = runs["single"].glob("*/Vanilla_last_ckpt.pth")
    torchrun(
        "-m",
        "tests.toy_task",
        "--output_dir",
        tmp_path,
        *LINEAR,
        "--batch_size",
        "16",
        "--epochs",
        "3",
        "--resume",
        single_ckpt,
        "--allow_config_change",
        "True",
    )
    resumed = load_checkpoint(single_ckpt.parent / "Vanilla_last_ckpt.pth")
    assert resumed["epoch"] == 3 and resumed["global_step"] == 25  # 5 more steps of 2 x 16


def epoch_summaries(out: Path) -> list[str]:
    """The epoch summary lines of the run in ``out``, without timestamps and epoch times."""
    (log,) = out.glob("*/train.log")
    lines = [line for line in log.read_text().splitlines() if "  train_loss" in line]
    return [re.sub(r"\s+epoch_time \S+", "", line[line.index("epoch ") :]) for line in lines]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_ddp_resume_after_a_stop_signal_is_exact(tmp_path):
    """SIGTERM to one rank stops both at their next agreement; resuming must give the weights
    and epoch metrics of a run never stopped. The toy task draws dropout, flips and python
    and numpy jitter on every rank, so this holds only if every rank gets its own RNG states
    and running meters back."""
    args = (*TOY_ARGS[:4], "--deterministic", "True", "--epochs", "2", "--batch_size", "4")
    args = (*args, "--step_delay", "0.05")  # 20 steps of 2 x 4 samples an epoch
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    torchrun("-m", "tests.toy_task", "--output_dir", whole, *args)

    process = start_script(*TORCHRUN, "-m", "tests.toy_task", "--output_dir", stopped, *args)
    try:
        read_until(process, "epoch 1/2 2/20")
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text()
        os.kill(int(children.split()[0]), signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode != 0 and "continue with: " in output, output[-3000:]
    (checkpoint,) = stopped.glob("*/Vanilla_interrupt_ckpt.pth")
    state = load_checkpoint(checkpoint)
    assert state["global_step"] < 40 and len(state["ranks"]) == 2

    torchrun("-m", "tests.toy_task", "--output_dir", stopped, *args, "--resume", "auto")
    resumed, expected = last_checkpoint(stopped), last_checkpoint(whole)
    assert resumed["global_step"] == expected["global_step"] == 40
    for key, value in expected["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    assert epoch_summaries(stopped) == epoch_summaries(whole)
