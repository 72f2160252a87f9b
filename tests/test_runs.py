"""python -m utils.experiments.runs: every run under a directory, whatever state each is in."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_trainer import interrupting, options
from toy_task import ToyTrainer

from utils.cli import run_main
from utils.experiments.runs import main
from utils.records.status import RUNNING, read_status, write_status


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An output dir with a finished, an interrupted, a crashed, a killed, an empty and a
    corrupt run; returns each run dir by name."""
    out = tmp_path_factory.mktemp("Results")
    finished = ToyTrainer(options(out, "--epochs", "2"))
    finished.train()
    evaluation = {"checkpoint": "Vanilla_best_ckpt.pth", "metrics": {"accuracy": 0.8125, "n": 40}}
    (finished.run_dir / "Vanilla_best_ckpt_test_metrics.json").write_text(json.dumps(evaluation))
    interrupted = interrupting(13, "ctrl-c")(options(out, "--lr", "0.003"))
    with pytest.raises(KeyboardInterrupt):
        interrupted.train()
    crashed = interrupting(5, "error")(options(out, "--seed", "7"))
    with pytest.raises(RuntimeError):
        crashed.train()
    killed = ToyTrainer(options(out, "--seed", "8")).run_dir  # then SIGKILLed in training:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    write_status(killed, RUNNING, epoch=0)
    status = json.loads((killed / "status.json").read_text())
    (killed / "status.json").write_text(json.dumps({**status, "pid": int(gone.stdout)}))
    (out / "20200101-000000").mkdir()  # a run that died before writing anything
    (out / "20200101-000001").mkdir()
    (out / "20200101-000001" / "config.json").write_text('{"options": {"lr": 0.1')
    (out / "notes").mkdir()  # not a run, and holds none
    return {
        "out": out,
        "finished": finished.run_dir,
        "interrupted": interrupted.run_dir,
        "crashed": crashed.run_dir,
        "killed": killed,
    }


def listed(tmp_path: Path, capsys, *argv: str | Path) -> list[dict[str, str]]:
    """The rows ``python -m utils.experiments.runs argv`` lists, in order, read back from its
    CSV."""
    main([*map(str, argv), "--csv", str(tmp_path / "runs.csv")])
    capsys.readouterr()
    return read_csv(tmp_path / "runs.csv")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_run_is_listed_with_its_state(results, tmp_path, capsys):
    out = results["out"]
    main([str(out), "--csv", str(tmp_path / "runs.csv")])
    printed = capsys.readouterr().out
    rows = {row["run"]: row for row in read_csv(tmp_path / "runs.csv")}
    name = {key: results[key].name for key in ("finished", "interrupted", "crashed", "killed")}
    assert rows[name["finished"]]["status"] == "finished"
    assert rows[name["interrupted"]]["status"] == "interrupted (KeyboardInterrupt)"
    assert rows[name["crashed"]]["status"] == "crashed (RuntimeError: simulated failure)"
    assert rows[name["killed"]]["status"] == "killed"
    assert rows["20200101-000000"]["status"] == "broken (empty directory)"
    assert rows["20200101-000001"]["status"] == "broken (config.json is not a run's config)"
    assert "notes" not in rows
    assert [rows[name[k]]["epochs"] for k in name] == ["2/2", "1/3", "0/3", "0/3"]

    finished = rows[name["finished"]]
    assert float(finished["best val_acc"]) == read_status(results["finished"])["best"]
    with open(results["finished"] / "metrics.csv", newline="") as f:
        epoch_times = [float(row["epoch_time"]) for row in csv.DictReader(f)]
    assert float(finished["time_s"]) == sum(epoch_times)  # exactly
    assert finished["test_accuracy"] == "0.8125" and "test_n" not in finished
    # Only the options that differ between the runs; where a run is goes without saying.
    header = list(next(iter(rows.values())))
    assert header == [
        "run",
        "started",
        "status",
        "epochs",
        "best val_acc",
        "time_s",
        "memory_mib",
        "test_accuracy",
        "lr",
        "seed",
    ]
    assert f"written to {tmp_path / 'runs.csv'}" in printed


def test_filter_and_sort(results, tmp_path, capsys):
    out = results["out"]
    rows = listed(tmp_path, capsys, out, "--filter", "status=crashed")
    assert [row["run"] for row in rows] == [results["crashed"].name]
    rows = listed(tmp_path, capsys, out, "--filter", "lr=0.003", "--filter", "epochs=1/3")
    assert [row["run"] for row in rows] == [results["interrupted"].name]
    rows = listed(tmp_path, capsys, out, "--sort", "best")  # val_acc: highest first
    best = [float(row["best val_acc"]) for row in rows if row["best val_acc"]]
    assert len(best) == 2 and best == sorted(best, reverse=True)
    assert all(not row["best val_acc"] for row in rows[2:])  # runs without one last
    rows = listed(tmp_path, capsys, out, "--sort", "seed", "--reverse")
    assert [row["seed"] for row in rows[:4]] == ["42", "42", "8", "7"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["{out}", "--sort", "speed"], "no column 'speed' in this table; known: run, started"),
        (["{out}", "--filter", "status"], "--filter status: expected KEY=VALUE"),
        (["{out}/none"], "{out}/none: not a directory"),
        (["{out}/notes"], "no run found under {out}/notes"),
    ],
)
def test_bad_input_is_one_line(results, capsys, argv, expected):
    out = results["out"]
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: main([arg.format(out=out) for arg in argv]))
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"error: {expected.format(out=out)}"] or (
        len(lines) == 1 and lines[0].startswith(f"error: {expected.format(out=out)}")
    )
