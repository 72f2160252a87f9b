"""Resuming with changed options (--allow_config_change): every change takes effect, or is
refused in one line. Each test records what the optimizer really used, step by step."""

import math

import pytest
import torch
from test_trainer import interrupting, options
from toy_task import BATCHES_PER_EPOCH, ToyTrainer

from utils.errors import UsageError


class Probe(ToyTrainer):
    """Records, at every optimizer step, the optimizer, the hyperparameters of its first group
    and the sizes of the batches since the step before."""

    def __init__(self, opt) -> None:
        self.used: list[dict] = []
        self.batches: list[int] = []
        super().__init__(opt)

    def train_step(self, inputs, targets):
        self.batches.append(len(targets))
        return super().train_step(inputs, targets)

    def optimizer_step(self) -> None:
        group = self.optimizer.param_groups[0]
        used = {key: group[key] for key in ("lr", "weight_decay", "momentum") if key in group}
        self.used.append({"optimizer": type(self.optimizer).__name__, **used})
        super().optimizer_step()


def stopped_at(tmp_path, step: int, *extra: str):
    """The interrupt checkpoint of a run (with ``extra`` options) stopped after ``step`` steps."""
    trainer = interrupting(step, "ctrl-c")(options(tmp_path, *extra))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    return str(trainer.run_dir / "Vanilla_interrupt_ckpt.pth")


def resumed(tmp_path, checkpoint: str, *extra: str) -> Probe:
    return Probe(options(tmp_path, *extra, "--resume", checkpoint, "--allow_config_change", "True"))


SGD = ("--optimizer", "sgd", "--scheduler", "none")


def test_changed_hyperparameters_are_used_from_the_next_step(tmp_path):
    checkpoint = stopped_at(tmp_path, 13, *SGD, "--lr", "0.001", "--momentum", "0.9")
    trainer = resumed(
        tmp_path, checkpoint, *SGD, "--lr", "0.01", "--weight_decay", "0.1", "--momentum", "0.5"
    )
    assert trainer.optimizer.state  # the momentum buffers came back
    trainer.train()
    expected = {"optimizer": "SGD", "lr": 0.01, "weight_decay": 0.1, "momentum": 0.5}
    assert trainer.used == [expected] * (3 * BATCHES_PER_EPOCH - 13)
    log = (trainer.run_dir / "train.log").read_text()
    assert "resuming with changed options" in log and "0.001" in log


def test_another_optimizer_starts_with_empty_state(tmp_path):
    checkpoint = stopped_at(tmp_path, 13, "--optimizer", "adam")
    trainer = resumed(tmp_path, checkpoint, "--optimizer", "sgd")
    assert not trainer.optimizer.state
    trainer.train()
    assert {step["optimizer"] for step in trainer.used} == {"SGD"}
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    log = (trainer.run_dir / "train.log").read_text()
    assert "--optimizer changed on resume: its state (momenta, moments) starts empty" in log


@pytest.mark.parametrize(
    "change",
    [
        ("--epochs", "6"),
        ("--scheduler", "step", "--lr_step_epochs", "1", "--lr_gamma", "0.5"),
        ("--warmup_epochs", "2"),
        ("--scheduler", "onecycle"),
        ("--lr", "0.01"),
    ],
    ids=["more-epochs", "step", "warmup", "onecycle", "lr"],
)
def test_the_lr_follows_the_new_schedule_from_the_step_reached(tmp_path, change):
    """The lr after resuming is that of a run started with the new options, step for step; the
    old cosine does not come back up after its planned end."""
    checkpoint = stopped_at(tmp_path / "stopped", 13, "--scheduler", "cosine")
    trainer = resumed(tmp_path / "stopped", checkpoint, "--scheduler", "cosine", *change)
    trainer.train()
    fresh = Probe(options(tmp_path / "fresh", "--scheduler", "cosine", *change))
    fresh.train()
    assert [step["lr"] for step in trainer.used] == pytest.approx(
        [step["lr"] for step in fresh.used[13:]], rel=1e-12, abs=1e-15
    )


def test_batch_size_changes_at_an_epoch_end_only(tmp_path):
    mid_epoch = stopped_at(tmp_path / "mid", 13)
    with pytest.raises(
        UsageError,
        match=r"middle of epoch 2 \(after batch 3\), where batch_size 16 -> 8 would repeat or skip",
    ):
        resumed(tmp_path / "mid", mid_epoch, "--batch_size", "8")

    epoch_end = stopped_at(tmp_path / "end", 2 * BATCHES_PER_EPOCH)
    trainer = resumed(tmp_path / "end", epoch_end, "--batch_size", "8")
    trainer.train()
    assert trainer.batches == [8] * (2 * BATCHES_PER_EPOCH)  # epoch 3 in batches of 8
    fresh = Probe(options(tmp_path / "fresh", "--batch_size", "8"))
    fresh.train()
    lrs = [step["lr"] for step in trainer.used]
    assert lrs == pytest.approx([step["lr"] for step in fresh.used[-len(lrs) :]], rel=1e-12)


@pytest.mark.parametrize(
    "change",
    [("--monitor", "val_loss", "--monitor_mode", "min"), ("--monitor", "train_acc")],
    ids=["monitor-and-mode", "monitor"],
)
def test_another_monitor_starts_a_new_best(tmp_path, change):
    checkpoint = stopped_at(tmp_path, 2 * BATCHES_PER_EPOCH)  # after two epochs on val_acc
    trainer = resumed(tmp_path, checkpoint, *change)
    assert trainer.stopper.best == trainer.stopper.state_dict()["best"]
    assert abs(trainer.stopper.best) == math.inf and trainer.stopper.bad_epochs == 0
    trainer.train()
    assert trainer.stopper.best == trainer.metrics[change[1]]  # epoch 3 is the first, so best
    best = torch.load(trainer.run_dir / "Vanilla_best_ckpt.pth", weights_only=True)
    assert best["epoch"] == 3
    log = (trainer.run_dir / "train.log").read_text()
    assert "--monitor changed on resume: the best value and the patience count start afresh" in log


def test_another_seed_restarts_the_random_streams(tmp_path):
    checkpoint = stopped_at(tmp_path, 2 * BATCHES_PER_EPOCH)
    state = torch.load(checkpoint, weights_only=True)
    Probe(options(tmp_path, "--resume", checkpoint))
    assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])  # the same seed: restored
    resumed(tmp_path, checkpoint, "--seed", "7")
    assert torch.initial_seed() == 7


def test_seed_and_processes_cannot_change_mid_epoch(tmp_path):
    checkpoint = stopped_at(tmp_path, 13)
    with pytest.raises(UsageError, match="seed 42 -> 7 would repeat or skip samples"):
        resumed(tmp_path, checkpoint, "--seed", "7")
    with pytest.raises(UsageError, match="batch_size 16 -> 8, seed 42 -> 7 would repeat"):
        resumed(tmp_path, checkpoint, "--seed", "7", "--batch_size", "8")
    state = torch.load(checkpoint, weights_only=True)
    torch.save({**state, "world_size": 2}, checkpoint)  # as if written by 2 DDP processes
    with pytest.raises(UsageError, match="processes 2 -> 1 would repeat or skip samples"):
        resumed(tmp_path, checkpoint)
