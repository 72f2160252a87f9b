"""Tests for utils.loop.resume: --resume auto, the option check and the logged resume command."""

import os
import sys

import pytest

from utils.errors import UsageError
from utils.loop.resume import (
    RESUME_FREE_OPTIONS,
    check_resume_options,
    find_latest_checkpoint,
    option_changes,
    resume_command,
)
from utils.records.config import save_config


def make_run(out, name, proj, checkpoints=(), age=0):
    """A run dir whose config.json is ``age`` seconds old, with checkpoints of increasing age."""
    run = out / name
    run.mkdir(parents=True)
    save_config(run / "config.json", {"proj_name": proj}, {})
    now = 1_700_000_000
    os.utime(run / "config.json", (now - age, now - age))
    for i, kind in enumerate(checkpoints):
        path = run / f"M_{kind}_ckpt.pth"
        path.write_bytes(b"x")
        os.utime(path, (now - age + 10 - i, now - age + 10 - i))
    return run


def test_auto_takes_the_newest_checkpoint_of_the_newest_run(tmp_path):
    make_run(tmp_path, "old", "P", ["last"], age=100)
    new = make_run(tmp_path, "new", "P", ["interrupt", "last", "best"], age=50)
    assert find_latest_checkpoint(tmp_path, "P") == new / "M_interrupt_ckpt.pth"


def test_auto_ignores_other_projects_runs_without_checkpoints_and_best(tmp_path):
    mine = make_run(tmp_path, "mine", "P", ["last"], age=100)
    make_run(tmp_path, "other", "Q", ["last"], age=10)
    make_run(tmp_path, "died_at_start", "P", [], age=5)
    make_run(tmp_path, "best_only", "P", ["best"], age=1)
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    assert find_latest_checkpoint(tmp_path, "P") == mine / "M_last_ckpt.pth"


@pytest.mark.parametrize("setup", ["missing", "empty", "other_project"])
def test_auto_without_a_checkpoint_names_where_it_looked(tmp_path, setup):
    if setup != "missing":
        tmp_path.mkdir(exist_ok=True)
    if setup == "other_project":
        make_run(tmp_path, "other", "Q", ["last"])
    out = tmp_path / "nowhere" if setup == "missing" else tmp_path
    with pytest.raises(UsageError, match=f"no checkpoint of a 'P' run in {out}"):
        find_latest_checkpoint(out, "P")


def test_option_changes_skip_where_things_run():
    saved = {"lr": 0.1, "epochs": 3, "gpu_devices": "0", "num_workers": 2, "resume": None}
    current = {**saved, "lr": 0.2, "gpu_devices": "cpu", "num_workers": 0, "resume": "auto"}
    assert option_changes(saved, current) == [("lr", 0.1, 0.2)]
    assert {"gpu_devices", "num_workers", "data_dir", "output_dir"} <= RESUME_FREE_OPTIONS
    assert not {"lr", "model_type", "epochs", "batch_size", "seed"} & RESUME_FREE_OPTIONS


def test_new_option_counts_as_a_change():
    assert option_changes({"lr": 0.1}, {"lr": 0.1, "amp": "bf16"}) == [("amp", "<absent>", "bf16")]


def test_an_option_the_run_no_longer_has_is_no_change():
    """A checkpoint from before entries owned their options records UNet's ``bilinear`` in a
    Vanilla run; the run does not read it."""
    saved = {"lr": 0.1, "model_type": "Vanilla", "bilinear": True}
    assert option_changes(saved, {"lr": 0.1, "model_type": "Vanilla"}) == []


def test_check_refuses_changes_in_one_line_unless_allowed(tmp_path):
    saved, current = {"lr": 0.1, "model_type": "A"}, {"lr": 0.1, "model_type": "B"}
    with pytest.raises(UsageError) as info:
        check_resume_options(tmp_path / "c.pth", saved, current, allow=False)
    message = str(info.value)
    assert "\n" not in message
    assert "model_type A -> B" in message and "--allow_config_change True" in message
    assert check_resume_options(tmp_path / "c.pth", saved, current, allow=True) == [
        ("model_type", "A", "B")
    ]
    assert check_resume_options(tmp_path / "c.pth", saved, dict(saved), allow=False) == []


def test_resume_command_replaces_any_earlier_resume(monkeypatch, tmp_path):
    monkeypatch.setattr(
        sys, "argv", ["train.py", "--lr", "0.1", "--resume", "old.pth", "--resume=older.pth"]
    )
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None)
    assert resume_command(tmp_path / "new ckpt.pth") == (
        f"python train.py --lr 0.1 --resume '{tmp_path / 'new ckpt.pth'}'"
    )
