"""DistributedDataParallel through torchrun on the CPU (gloo), two processes.

Two ranks with batch B see, step by step, the two halves of the batch 2B that one process
sees, so their averaged gradients and therefore the weights must match the single-process
run, and validation reduced across the ranks must report the same numbers. A stop signal and
a resume under torchrun must give what a run never stopped gives.
"""

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
import torch
from conftest import end_group, read_until, run_script, start_script
from toy_task import TOY_ARGS

from utils.records.checkpoint import load_checkpoint, load_model_state

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
    """The epoch summary lines of the run in ``out``, without timestamps, epoch times and
    memory."""
    (log,) = out.glob("*/train.log")
    lines = [line for line in log.read_text().splitlines() if "  train_loss" in line]
    return [
        re.sub(r"\s+epoch_time \S+|\s+memory_peak_mib \S+", "", line[line.index("epoch ") :])
        for line in lines
    ]


# 2 epochs of 20 steps of 2 x 4 samples. The toy task draws dropout, flips and python and numpy
# jitter on every rank, so a resumed run equals one never stopped only if every rank gets its
# own RNG states and running meters back.
RESUMABLE = (*TOY_ARGS[:4], "--deterministic", "True", "--epochs", "2", "--batch_size", "4")


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """A 2-rank run never stopped: what every stopped and resumed 2-rank run must give."""
    out = tmp_path_factory.mktemp("whole")
    torchrun("-m", "tests.toy_task", "--output_dir", out, *RESUMABLE)
    return out


def assert_same_run(resumed: Path, whole: Path) -> None:
    """The final weights bit for bit, and the same epoch summaries."""
    got, expected = last_checkpoint(resumed), last_checkpoint(whole)
    assert got["global_step"] == expected["global_step"] == 40
    for key, value in expected["model"].items():
        assert torch.equal(got["model"][key], value), key
    assert epoch_summaries(resumed) == epoch_summaries(whole)


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def first_child(pid: int) -> int:
    """The first process that ``pid`` started (a launcher's worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return int(children.split()[0])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_ddp_resume_after_a_stop_signal_is_exact(tmp_path, whole):
    """SIGTERM to one rank stops both at their next agreement; resuming gives the run never
    stopped."""
    args = (*RESUMABLE, "--step_delay", "0.05")  # slow enough to signal mid-epoch
    process = start_script(*TORCHRUN, "-m", "tests.toy_task", "--output_dir", tmp_path, *args)
    try:
        read_until(process, "epoch 1/2 2/20")
        os.kill(first_child(process.pid), signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        end_group(process)
    assert process.returncode != 0 and "continue with: " in output, output[-3000:]
    (checkpoint,) = tmp_path.glob("*/Vanilla_interrupt_ckpt.pth")
    state = load_checkpoint(checkpoint)
    assert state["global_step"] < 40 and len(state["ranks"]) == 2

    torchrun("-m", "tests.toy_task", "--output_dir", tmp_path, *args, "--resume", "auto")
    assert_same_run(tmp_path, whole)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_a_launcher_a_test_ends_takes_its_workers_with_it(tmp_path):
    """What every test here does when a run outlives its timeout: the workers end with the
    launcher, so no orphan keeps training."""
    args = (*RESUMABLE, "--step_delay", "0.05")
    process = start_script(*TORCHRUN, "-m", "tests.toy_task", "--output_dir", tmp_path, *args)
    read_until(process, "epoch 1/2 2/20")
    worker = first_child(process.pid)
    end_group(process)
    deadline = time.monotonic() + 10
    while running(worker) and time.monotonic() < deadline:  # SIGKILL is not instant
        time.sleep(0.05)
    assert not running(worker)


def test_an_exception_in_validation_resumes_exactly(tmp_path, whole):
    """Rank 0 fails while validating epoch 1, after every rank trained it: the checkpoint holds
    every rank's meters and RNG states, and the resumed ranks validate and go on."""
    failed = run_script(
        *TORCHRUN,
        "-m",
        "tests.toy_task",
        "--output_dir",
        tmp_path,
        *RESUMABLE,
        env={"TOY_FAULT": "validate:1:0"},
    )
    assert "simulated failure in the validation of epoch 1" in failed.stdout + failed.stderr
    (checkpoint,) = tmp_path.glob("*/Vanilla_interrupt_ckpt.pth")
    state = load_checkpoint(checkpoint)
    assert (state["epoch"], state["batch_in_epoch"], len(state["ranks"])) == (0, 20, 2)

    torchrun("-m", "tests.toy_task", "--output_dir", tmp_path, *RESUMABLE, "--resume", "auto")
    assert_same_run(tmp_path, whole)


def root_cause_exit_code(output: str) -> int:
    """The exit status of the first worker that failed, from torchrun's closing report (the
    others may be stopped by torchrun before they exit by themselves)."""
    found = re.search(r"Root Cause.*?exitcode\s*: (-?\d+)", output, re.DOTALL)
    assert found, output[-3000:]
    return int(found.group(1))


def test_a_nan_on_one_rank_stops_every_rank_with_one_line(tmp_path):
    """Rank 1 alone sees a NaN loss in step 3; the ranks agree at the next save (step 4) and
    exit with status 2, one line says so, and no checkpoint is written after step 2."""
    result = run_script(
        *TORCHRUN,
        "-m",
        "tests.toy_task",
        "--output_dir",
        tmp_path,
        *RESUMABLE,
        "--save_every_n_steps",
        "2",
        env={"TOY_FAULT": "nan:3:1"},
    )
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: non-finite training loss at epoch 1, batch 3 (step 3); the checkpoints written "
        "before it are kept. Lower --lr, clip gradients (--clip_grad_norm) or pass "
        "--nonfinite skip"
    ], output[-3000:]
    assert root_cause_exit_code(output) == 2
    assert [p.name for p in tmp_path.glob("*/*.pth")] == ["Vanilla_last_ckpt.pth"]
    assert last_checkpoint(tmp_path)["global_step"] == 2


def test_a_bad_monitor_is_one_line_under_torchrun(tmp_path):
    # After "--": torchrun would read --monitor as an abbreviation of its --monitor-interval.
    args = ("--output_dir", tmp_path, *LINEAR, "--monitor", "nope")
    result = run_script(*TORCHRUN, "-m", "tests.toy_task", "--", *args)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: --monitor nope: not a metric")
    assert root_cause_exit_code(result.stderr) == 2


def test_gradient_accumulation_all_reduces_once_per_optimizer_step(tmp_path):
    """Two ranks with batch 4 and --accum_steps 2 under bf16: DDP all-reduces once per
    optimizer step, not once per batch, and the weights follow one process with batch 16."""
    args = (*LINEAR, "--batch_size", "4", "--accum_steps", "2", "--amp", "bf16")
    stdout = torchrun("-m", "tests.ddp_allreduce", "--output_dir", tmp_path / "ddp", *args)
    counts = sorted(re.findall(r"rank \d: (\d+) all-reduces in (\d+) steps", stdout))
    assert counts == [("20", "20"), ("20", "20")], stdout[-2000:]
    single = run_script(
        "-m", "tests.toy_task", "--output_dir", tmp_path / "one", *LINEAR, "--amp", "bf16"
    )
    assert single.returncode == 0, single.stderr[-2000:]
    ddp, one = last_checkpoint(tmp_path / "ddp"), last_checkpoint(tmp_path / "one")
    for key, value in one["model"].items():
        assert torch.allclose(ddp["model"][key], value, atol=1e-4), key


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_two_nodes(port: int, *args: str | Path) -> list:
    """Two torchrun launchers of one process each, meeting at a c10d rendezvous on this host
    as two nodes would."""
    node = ("-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1")
    node += ("--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}")
    node += ("--rdzv_id", f"test-{port}")
    return [start_script(*node, "-m", "tests.toy_task", *args) for _ in range(2)]


def wait_for_log(out: Path, text: str, timeout: float = 120) -> None:
    """Wait until the train.log of the run in ``out`` holds ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in log.read_text() for log in out.glob("*/train.log")):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} in the train.log under {out} after {timeout} s")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
def test_two_nodes_stop_on_sigterm_to_one_and_resume_exactly(tmp_path, whole):
    """Two launchers (--nnodes 2, one process each, c10d rendezvous on 127.0.0.1): SIGTERM to
    one node's worker stops both, and the two relaunched with --resume auto finish as the
    single-node run never stopped."""
    args = ("--output_dir", tmp_path, *RESUMABLE, "--step_delay", "0.05")
    nodes = start_two_nodes(free_port(), *args)
    try:
        wait_for_log(tmp_path, "epoch 1/2 2/20")
        os.kill(first_child(nodes[1].pid), signal.SIGTERM)
        outputs = [node.communicate(timeout=120)[0] for node in nodes]
    finally:
        for node in nodes:
            end_group(node)
    assert all(node.returncode != 0 for node in nodes), outputs
    assert any("continue with: " in output for output in outputs), outputs
    (checkpoint,) = tmp_path.glob("*/Vanilla_interrupt_ckpt.pth")
    state = load_checkpoint(checkpoint)
    assert state["global_step"] < 40 and len(state["ranks"]) == 2

    nodes = start_two_nodes(free_port(), *args, "--resume", "auto")
    try:
        outputs = [node.communicate(timeout=120)[0] for node in nodes]
    finally:
        for node in nodes:
            end_group(node)
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert_same_run(tmp_path, whole)
