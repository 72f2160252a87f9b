"""python -m utils.experiments.sweep: a grid of runs over seeds, stopped by Ctrl-C and continued,
its table equal to the runs' own numbers; and the rules that decide what each run does."""

import csv
import os
import re
import signal
import statistics
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_script, start_script
from test_trainer import interrupting, options
from toy_task import ToyTrainer

from utils.cli import run_main
from utils.errors import UsageError
from utils.experiments.sweep import (
    SweepRun,
    SweepSpec,
    check_task_args,
    default_name,
    locked,
    main,
    open_sweep_dir,
    parse_grid,
    plan_runs,
    task_command,
)
from utils.records.history import read_metrics
from utils.records.status import read_status

GRID = ("--grid", "lr=1e-3,3e-3", "batch_size=64,128", "--seeds", "0,1")


def test_a_sweep_stopped_by_ctrl_c_continues_to_a_table_of_its_runs(tmp_path, fashion_mnist_root):
    """2 x 2 settings x 2 seeds on real FashionMNIST (a 3% sample, 2 epochs), two at a time,
    stopped once a run has finished."""
    task = ["--data_dir", fashion_mnist_root, "--output_dir", tmp_path, "--epochs", "2"]
    task += ["--train_val_sample_rate", "0.03", "--test_sample_rate", "0.01"]
    task += ["--gpu_devices", "cpu", "--num_workers", "0"]
    command = [
        "-m",
        "utils.experiments.sweep",
        "trainer_vanilla.py",
        *GRID,
        "--parallel",
        "2",
        "--",
        *task,
    ]
    sweep = start_script(*command)
    deadline = time.monotonic() + 300
    while not any(read_status(p.parent)["state"] == "finished" for p in statuses(tmp_path)):
        assert sweep.poll() is None and time.monotonic() < deadline, sweep.stdout.read()
        time.sleep(0.05)
    os.killpg(sweep.pid, signal.SIGINT)  # Ctrl-C in the terminal: the sweep's group alone
    printed = sweep.communicate(timeout=300)[0]
    assert sweep.returncode == 130, printed
    assert "SIGINT received" in printed and "rerun the same command to continue" in printed
    (sweep_dir,) = tmp_path.glob("sweeps/*")
    runs = sorted(path for path in sweep_dir.iterdir() if path.is_dir())
    assert len(runs) <= 8
    left_resumable = [
        run
        for run in runs
        if list(run.glob("*/*_interrupt_ckpt.pth"))
        and read_status(next(run.glob("*/status.json")).parent)["state"] == "interrupted"
    ]

    again = run_script(*command)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "skipped" in again.stdout
    runs = sorted(path for path in sweep_dir.iterdir() if path.is_dir())
    assert len(runs) == 8
    results = {}  # (lr, batch size) -> [(best, epochs, seconds)] read from each run's own files
    for run in runs:
        finished = [
            p.parent
            for p in run.glob("*/status.json")
            if read_status(p.parent)["state"] == "finished"
        ]
        assert len(finished) == 1, run
        run_dir = finished[0]
        if run in left_resumable:  # continued from its checkpoint, not started again
            assert len(list(run.glob("*/config.json"))) == 1
            assert "resuming" in (run_dir / "train.log").read_text()
        best = torch.load(run_dir / "Vanilla_best_ckpt.pth", weights_only=True)["metrics"]
        rows = read_metrics(run_dir / "metrics.csv")
        key = re.fullmatch(r"lr=(.+)_batch_size=(.+)_seed=\d", run.name).groups()
        results.setdefault(key, []).append(
            (best["val_acc"], len(rows), sum(row["epoch_time"] for row in rows))
        )
    with open(sweep_dir / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4
    for row in table:
        bests, epochs, seconds = zip(*results[(row["lr"], row["batch_size"])], strict=True)
        assert row["runs"] == "2/2"
        assert float(row["val_acc_mean"]) == statistics.fmean(bests)
        assert float(row["val_acc_std"]) == statistics.stdev(bests)
        assert float(row["epochs_mean"]) == 2.0 and epochs == (2, 2)
        assert float(row["time_s_mean"]) == statistics.fmean(seconds)
    means = [float(row["val_acc_mean"]) for row in table]
    assert means == sorted(means, reverse=True)  # accuracy: best first


def statuses(out: Path) -> list[Path]:
    """The status files of the runs of the sweeps in ``out``."""
    return list(out.glob("sweeps/*/*/*/status.json"))


def toy_run(out: Path, how: str | None) -> None:
    """A toy run in ``out`` that finishes, or is stopped by Ctrl-C mid-way (a checkpoint), or
    fails before its first step (none)."""
    if how is None:
        ToyTrainer(options(out, "--epochs", "1")).train()
        return
    step = {"ctrl-c": 13, "error": 0}[how]
    with pytest.raises((KeyboardInterrupt, RuntimeError)):
        interrupting(step, how)(options(out)).train()


@pytest.mark.parametrize(
    ("how", "step"),
    [(None, "skip"), ("ctrl-c", "resume"), ("error", "start")],
    ids=["finished", "interrupted", "failed before a checkpoint"],
)
def test_what_a_rerun_does_with_each_run(tmp_path, how, step):
    run = SweepRun(setting=(("lr", "1e-3"),), seed=0, out=tmp_path / "lr=1e-3_seed=0")
    assert run.next_step() == "start"  # never run
    toy_run(run.out, how)
    assert run.next_step() == step


def test_runs_are_named_by_their_values_and_each_seed_sees_every_setting_first(tmp_path):
    spec = SweepSpec(
        "trainer_vanilla.py", parse_grid(["lr=1e-3,3e-3", "flip=True"]), [0, 1], [], None
    )
    runs = plan_runs(spec, tmp_path)
    assert [run.name for run in runs] == [
        "lr=1e-3_flip=True_seed=0",
        "lr=3e-3_flip=True_seed=0",
        "lr=1e-3_flip=True_seed=1",
        "lr=3e-3_flip=True_seed=1",
    ]
    assert runs[1].args() == [
        "--lr",
        "3e-3",
        "--flip",
        "True",
        "--seed",
        "0",
        "--output_dir",
        str(tmp_path / "lr=3e-3_flip=True_seed=0"),
    ]
    assert default_name(spec) == default_name(spec)
    other = SweepSpec(
        "trainer_vanilla.py", parse_grid(["lr=1e-2,3e-3", "flip=True"]), [0, 1], [], None
    )
    assert default_name(spec).startswith("trainer_vanilla-lr-flip-")
    assert default_name(other) != default_name(spec)


def test_torchrun_gets_the_task_options_after_its_double_dash():
    spec = SweepSpec("trainer_vanilla.py", {"lr": ["1e-3"]}, None, ["--monitor", "val_loss"], 2)
    command = task_command(spec, ["--monitor", "val_loss", "--lr", "1e-3"])
    assert command[1:7] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "trainer_vanilla.py",
    ]
    assert command[7:] == ["--", "--monitor", "val_loss", "--lr", "1e-3"]
    assert task_command(SweepSpec("t.py", {}, [0], [], None), ["--seed", "0"]) == [
        sys.executable,
        "t.py",
        "--seed",
        "0",
    ]


def test_another_sweep_under_the_same_name_is_refused(tmp_path):
    spec = SweepSpec("trainer_vanilla.py", {"lr": ["1e-3", "3e-3"]}, [0], [], None)
    open_sweep_dir(tmp_path / "sweep", spec)
    open_sweep_dir(tmp_path / "sweep", spec)  # the same sweep: continued
    other = SweepSpec("trainer_vanilla.py", {"lr": ["1e-2"]}, [0], [], None)
    with pytest.raises(UsageError, match=r"holds another sweep \(grid .*1e-2.*; rerun its "):
        open_sweep_dir(tmp_path / "sweep", other)
    with (
        locked(tmp_path / "sweep"),
        pytest.raises(UsageError, match="another sweep is running"),
        locked(tmp_path / "sweep"),
    ):
        pass


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["trainer_vanilla.py", "--grid", "lr"], "--grid lr: expected KEY=VALUE[,VALUE...]"),
        (["trainer_vanilla.py", "--grid", "lr=1,"], "--grid lr=1,: expected KEY=VALUE"),
        (["trainer_vanilla.py", "--grid", "seed=1,2"], "--grid seed: the sweep sets --seed"),
        (["trainer_vanilla.py", "--seeds", "0,x"], "--seeds 0,x: expected integers"),
        (["trainer_vanilla.py"], "nothing to sweep"),
        (["nope.py", "--seeds", "0"], "nope.py: no such task script"),
        (["trainer_vanilla.py", "--seeds", "0", "--", "--resume", "auto"], "--resume after --"),
        (["trainer_vanilla.py", "--grid", "lr=1", "--", "--lr", "2"], "--lr after --"),
        (
            ["trainer_vanilla.py", "--grid", "lr=0.1,-1"],
            "trainer_vanilla.py refused lr=-1: argument --lr: expected a finite number > 0",
        ),
        (
            ["trainer_vanilla.py", "--grid", "bilinear=True,False"],
            "trainer_vanilla.py refused bilinear=True: --bilinear (on the command line) is an "
            "option of --model_type UNet; this run's --model_type is Vanilla",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_info:
        run_main(
            lambda: main(
                [*argv, "--output_dir", str(tmp_path)]
                if "--" in argv
                else [*argv, "--", "--output_dir", str(tmp_path)]
            )
        )
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {expected}"), lines
    assert list(tmp_path.iterdir()) == []


def test_task_args_may_not_set_what_the_sweep_sets():
    check_task_args(["--output_dir", "x", "--epochs", "2"], ["lr", "resume"])
    with pytest.raises(UsageError, match="--seed after --"):
        check_task_args(["--seed=3"], ["seed"])
