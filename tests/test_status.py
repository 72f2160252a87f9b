"""status.json: what the trainer writes as a run starts and ends, and killed runs told apart."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from test_trainer import interrupting, nan_loss_at, options
from toy_task import ToyTrainer

from utils.errors import NonFiniteLossError
from utils.records.status import (
    KILLED,
    RUNNING,
    STATUS_NAME,
    StatusError,
    current_state,
    read_status,
    write_status,
)
from utils.signals import StopRequested


class Watched(ToyTrainer):
    """Notes the state in status.json as each epoch starts."""

    seen: list[str]

    def train_one_epoch(self):
        self.seen = [*getattr(self, "seen", []), read_status(self.run_dir)["state"]]
        return super().train_one_epoch()


def test_a_run_is_running_then_records_its_end_its_process_and_its_best(tmp_path):
    trainer = Watched(options(tmp_path))
    trainer.train()
    assert trainer.seen == [RUNNING] * 3
    status = read_status(trainer.run_dir)
    best = torch.load(trainer.run_dir / "Vanilla_best_ckpt.pth", weights_only=True)["metrics"]
    assert status["state"] == "finished"
    assert (status["epoch"], status["epochs"], status["monitor"]) == (3, 3, "val_acc")
    assert status["best"] == best["val_acc"]
    assert (status["pid"], status["host"]) == (os.getpid(), socket.gethostname())
    assert status["error"] is None
    assert current_state(status) == "finished"


@pytest.mark.parametrize(
    ("make", "raised", "state", "error"),
    [
        (
            lambda out: interrupting(13, "ctrl-c")(options(out)),
            KeyboardInterrupt,
            "interrupted",
            "KeyboardInterrupt",
        ),
        (
            lambda out: interrupting(12, "sigterm")(options(out)),
            StopRequested,
            "interrupted",
            "SIGTERM received",
        ),
        (
            lambda out: interrupting(5, "error")(options(out)),
            RuntimeError,
            "crashed",
            "RuntimeError: simulated failure",
        ),
        (
            lambda out: nan_loss_at(13)(options(out)),
            NonFiniteLossError,
            "non-finite loss",
            "non-finite training loss at epoch 2, batch 4",
        ),
        (
            lambda out: ToyTrainer(
                options(out, "--epochs", "9", "--patience", "1", "--min_delta", "10")
            ),
            None,
            "stopped early",
            None,
        ),
    ],
    ids=["ctrl-c", "sigterm", "exception", "nan", "early-stop"],
)
def test_each_way_a_run_ends_is_recorded(tmp_path, make, raised, state, error):
    trainer = make(tmp_path)
    if raised is None:
        trainer.train()
    else:
        with pytest.raises(raised):
            trainer.train()
    status = read_status(trainer.run_dir)
    assert status["state"] == state
    assert status["epoch"] == trainer.epoch
    if error is None:
        assert status["error"] is None
    else:
        assert status["error"].startswith(error)


def test_a_resumed_run_keeps_its_start_time(tmp_path):
    trainer = interrupting(13, "ctrl-c")(options(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    first = read_status(trainer.run_dir)
    status_file = trainer.run_dir / STATUS_NAME
    status_file.write_text(json.dumps({**first, "started": "2020-01-01T00:00:00"}))
    resumed = ToyTrainer(options(tmp_path, "--resume", "auto"))
    resumed.train()
    status = read_status(trainer.run_dir)
    assert (status["state"], status["epoch"]) == ("finished", 3)
    assert status["started"] == "2020-01-01T00:00:00"


def test_a_running_status_whose_process_is_gone_is_killed(tmp_path):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    write_status(tmp_path, RUNNING)
    assert current_state(read_status(tmp_path)) == RUNNING  # this process
    status = {**read_status(tmp_path), "pid": int(gone.stdout)}
    assert current_state(status) == KILLED
    assert current_state({**status, "host": "another-host"}) == RUNNING  # cannot tell there


@pytest.mark.parametrize("text", ["", "{", "[]", '{"pid": 1}'])
def test_a_broken_status_file_says_why(tmp_path, text):
    (tmp_path / STATUS_NAME).write_text(text)
    with pytest.raises(StatusError, match=STATUS_NAME):
        read_status(tmp_path)
    assert read_status(tmp_path / "elsewhere") is None
