"""TrainerBase in-process on a small synthetic task: loop, logs, checkpoints, stop, resume."""

import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import Subset, TensorDataset

from data.splits import DataSplits
from trainer_vanilla import VanillaTrainer, build_vanilla_parser
from utils.errors import UsageError

BATCHES_PER_EPOCH = 10  # 160 train samples / batch 16


class ToyTrainer(VanillaTrainer):
    """Three classes that a linear map of 16 random features separates."""

    def build_data(self) -> DataSplits:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(240, 1, 4, 4, generator=g)
        y = (x.flatten(1) @ torch.randn(16, 3, generator=g)).argmax(dim=1)
        full = TensorDataset(x, y)
        return DataSplits(
            train=Subset(full, range(160)),
            val=Subset(full, range(160, 200)),
            test=Subset(full, range(200, 240)),
            input_shape=(1, 4, 4),
            num_classes=3,
            class_names=["a", "b", "c"],
        )


class FailingTrainer(ToyTrainer):
    """Raises ``error`` at the start of the step after ``fail_after`` completed steps."""

    fail_after = 0
    error: type[BaseException] = KeyboardInterrupt

    def train_step(self, inputs, targets):
        if self.global_step == self.fail_after:
            raise self.error("simulated failure")
        return super().train_step(inputs, targets)


def options(out: Path, *extra: str):
    return build_vanilla_parser().parse_args(
        [
            *("--output_dir", str(out), "--gpu_devices", "cpu", "--num_workers", "0"),
            *("--batch_size", "16", "--epochs", "3", "--deterministic", "True"),
            *extra,
        ]
    )


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def test_run_dir_holds_config_log_events_and_checkpoints(tmp_path):
    trainer = ToyTrainer(options(tmp_path))
    metrics = trainer.train()
    run = trainer.run_dir
    assert run.parent == tmp_path

    config = json.loads((run / "config.json").read_text())
    assert config["options"]["epochs"] == 3
    assert config["options"]["output_dir"] == str(tmp_path)
    assert config["environment"]["torch"] == torch.__version__

    log = (run / "train.log").read_text()
    assert "parameters:" in log
    assert "epoch 3/3" in log

    steps = [BATCHES_PER_EPOCH * e for e in (1, 2, 3)]
    assert [s for s, _ in scalars(run, "val/acc")] == steps
    assert [s for s, _ in scalars(run, "train/loss")] == steps
    assert scalars(run, "val/acc")[-1][1] == pytest.approx(metrics["val_acc"])

    last = torch.load(run / "Vanilla_last_ckpt.pth", weights_only=True)
    best = torch.load(run / "Vanilla_best_ckpt.pth", weights_only=True)
    assert last["epoch"] == 3
    assert last["global_step"] == 3 * BATCHES_PER_EPOCH
    assert best["metrics"]["val_acc"] == pytest.approx(max(v for _, v in scalars(run, "val/acc")))
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(last["model"][key], value)


def test_learns_the_toy_task(tmp_path):
    metrics = ToyTrainer(options(tmp_path, "--epochs", "15", "--lr", "0.01")).train()
    assert metrics["val_acc"] >= 0.75  # chance is 1/3
    assert metrics["train_loss"] < 0.5


def test_two_runs_get_separate_run_dirs(tmp_path):
    first = ToyTrainer(options(tmp_path, "--epochs", "1"))
    second = ToyTrainer(options(tmp_path, "--epochs", "1"))
    assert first.run_dir != second.run_dir
    assert sorted(tmp_path.iterdir()) == sorted([first.run_dir, second.run_dir])


def test_early_stopping_ends_the_run(tmp_path):
    # Nothing beats the first epoch by 10 points of accuracy, so patience 1 stops after epoch 2.
    trainer = ToyTrainer(
        options(tmp_path, "--epochs", "10", "--patience", "1", "--min_delta", "10")
    )
    trainer.train()
    assert trainer.epoch == 2
    assert "early stop" in (trainer.run_dir / "train.log").read_text()


def test_unknown_monitor_fails_before_training(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--monitor", "val_dice"))
    with pytest.raises(UsageError, match=r"--monitor val_dice.*val_acc"):
        trainer.train()
    assert not list(trainer.run_dir.glob("*.pth"))


@pytest.mark.parametrize("fail_after", [13, 2 * BATCHES_PER_EPOCH], ids=["mid-epoch", "boundary"])
def test_interrupt_then_resume_matches_an_uninterrupted_run(tmp_path, fail_after):
    reference = ToyTrainer(options(tmp_path / "reference"))
    reference.train()

    FailingTrainer.fail_after = fail_after
    failing = FailingTrainer(options(tmp_path / "interrupted"))
    with pytest.raises(KeyboardInterrupt):
        failing.train()
    checkpoint = failing.run_dir / "Vanilla_interrupt_ckpt.pth"
    state = torch.load(checkpoint, weights_only=True)
    assert state["global_step"] == fail_after
    assert state["epoch"] * BATCHES_PER_EPOCH + state["batch_in_epoch"] == fail_after
    log = (failing.run_dir / "train.log").read_text()
    assert "continue with:" in log
    assert f"--resume {checkpoint}" in log

    resumed = ToyTrainer(options(tmp_path / "elsewhere", "--resume", str(checkpoint)))
    resumed.train()
    assert resumed.run_dir == failing.run_dir
    assert not (tmp_path / "elsewhere").exists()
    for key, value in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    # Logs append, and TensorBoard shows each epoch once across both processes.
    assert "resuming" in (failing.run_dir / "train.log").read_text()
    steps = [s for s, _ in scalars(failing.run_dir, "val/acc")]
    assert steps == [BATCHES_PER_EPOCH * e for e in (1, 2, 3)]


def test_any_exception_writes_an_interrupt_checkpoint(tmp_path):
    FailingTrainer.fail_after, FailingTrainer.error = 5, RuntimeError
    trainer = FailingTrainer(options(tmp_path))
    try:
        with pytest.raises(RuntimeError, match="simulated"):
            trainer.train()
    finally:
        FailingTrainer.error = KeyboardInterrupt
    state = torch.load(trainer.run_dir / "Vanilla_interrupt_ckpt.pth", weights_only=True)
    assert state["global_step"] == 5


def test_clipping_and_schedule_options_reach_the_loop(tmp_path):
    trainer = ToyTrainer(
        options(tmp_path, "--clip_grad_norm", "0.5", "--scheduler", "cosine", "--epochs", "2")
    )
    trainer.train()
    assert trainer.clipper.max_norm == 0.5
    # cosine over all 20 steps ends at lr 0
    assert trainer.lr == pytest.approx(0.0, abs=1e-12)
    assert scalars(trainer.run_dir, "lr")[-1][1] == pytest.approx(0.0, abs=1e-12)
