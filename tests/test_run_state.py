"""Tests for utils.loop.run_state: the checkpoint a run resumes, the state a checkpoint holds, and
the state an interrupt checkpoint rolls back to (whole runs: tests/test_trainer.py)."""

import pytest
import torch
from toy_task import TOY_ARGS, ToyTrainer, build_toy_parser

from utils.errors import UsageError
from utils.loop.distributed import DistInfo
from utils.loop.run_state import STATE_KEYS, open_run_dir, read_resume
from utils.records.checkpoint import save_checkpoint


def trainer(tmp_path, *extra: str) -> ToyTrainer:
    args = ["--output_dir", str(tmp_path), *TOY_ARGS, "--epochs", "1", *extra]
    return ToyTrainer(build_toy_parser().parse_args(args))


def test_a_checkpoint_holds_every_key_a_resume_needs(tmp_path):
    state = trainer(tmp_path).state_dict()
    assert set(STATE_KEYS) <= set(state)
    assert state["precision"] == {"amp": "off", "channels_last": False}


def test_weights_alone_are_refused_in_one_line(tmp_path):
    path = tmp_path / "weights.pth"
    save_checkpoint(path, {"model": {}})
    options = build_toy_parser().parse_args([*TOY_ARGS, "--resume", str(path)])
    with pytest.raises(UsageError, match=r"lacks optimizer, stopper.*weights alone"):
        read_resume(options, DistInfo())


def test_a_resumed_run_continues_in_its_checkpoints_run_dir(tmp_path):
    first = trainer(tmp_path)
    first.train()
    args = [*TOY_ARGS, "--output_dir", str(tmp_path), "--epochs", "1", "--resume", "auto"]
    resume = read_resume(build_toy_parser().parse_args(args), DistInfo())
    assert resume.path == first.checkpoint_path("last") and not resume.changes
    assert open_run_dir(first.opt, DistInfo(), resume) == first.run_dir


def test_a_rollback_returns_to_the_last_commit(tmp_path):
    run = trainer(tmp_path)
    run.epoch_meters.update({"loss": torch.tensor(1.0)}, 4)
    run.batch_in_epoch, run.global_step = 3, 3
    run.state.commit()
    run.epoch_meters.update({"loss": torch.tensor(9.0)}, 4)
    run.batch_in_epoch, run.global_step, run.epoch_skipped = 4, 4, 1
    run.state.rollback()
    assert (run.batch_in_epoch, run.global_step, run.epoch_skipped) == (3, 3, 0)
    assert run.epoch_meters.averages() == {"loss": 1.0}


def test_a_checkpoint_from_before_world_size_was_recorded_resumes_mid_epoch(tmp_path):
    """Checkpoints that do not say how many processes wrote them come from one process."""
    stopped = trainer(tmp_path, "--epochs", "2", "--save_every_n_steps", "3")
    stopped.train()
    last = stopped.checkpoint_path("last")
    state = torch.load(last, weights_only=True)
    state.pop("world_size")
    state["batch_in_epoch"], state["epoch"] = 3, 0  # as if written mid-epoch
    save_checkpoint(last, state)
    args = [*TOY_ARGS, "--output_dir", str(tmp_path), "--epochs", "2", "--save_every_n_steps"]
    resume = read_resume(
        build_toy_parser().parse_args([*args, "3", "--resume", str(last)]), DistInfo()
    )
    assert (resume.state["epoch"], resume.state["batch_in_epoch"]) == (0, 3)
