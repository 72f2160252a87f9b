"""``--ema DECAY``: the average follows the rule step by step, validation and the best
checkpoint use it, and a stopped run resumes to the average of a run never stopped."""

import pytest
import torch
from test_trainer import interrupting, load, options, same_weights, without_time
from torch import nn
from toy_task import BATCHES_PER_EPOCH, ToyTrainer

from utils.errors import UsageError
from utils.signals import StopRequested

DECAY = "0.9"


class Recording(ToyTrainer):
    """Keeps the trained weights and buffers after every optimizer step; its model has batch
    norm, so float buffers (running statistics) and an integer one (the batch counter)."""

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)
        )

    def optimizer_step(self) -> None:
        super().optimizer_step()
        self.after_steps = getattr(self, "after_steps", [])
        state = self.net.state_dict()
        self.after_steps.append({k: v.detach().clone() for k, v in state.items()})


def test_the_average_is_the_decayed_sum_of_every_step_and_is_what_validation_scores(tmp_path):
    trainer = Recording(options(tmp_path, "--epochs", "2", "--ema", DECAY))
    trainer.train()
    steps = trainer.after_steps
    assert len(steps) == 2 * BATCHES_PER_EPOCH
    by_hand = {k: v.double() for k, v in steps[0].items()}  # the first step is taken as it is
    for state in steps[1:]:
        for key, value in state.items():
            if value.is_floating_point():
                by_hand[key] = 0.9 * by_hand[key] + 0.1 * value.double()
            else:
                by_hand[key] = value.double()  # counters follow the model
    averaged = trainer.ema.module.state_dict()
    assert averaged["2.num_batches_tracked"] == 2 * BATCHES_PER_EPOCH
    for key, value in by_hand.items():
        torch.testing.assert_close(averaged[key].double(), value, rtol=1e-5, atol=1e-6)
    trained = trainer.net.state_dict()
    assert not same_weights(averaged, trained)

    for kind in ("last", "best"):  # the best: the average at the best epoch
        state = load(trainer.run_dir / f"Vanilla_{kind}_ckpt.pth")
        assert set(state["trained_model"]) == set(state["model"])
    last = load(trainer.run_dir / "Vanilla_last_ckpt.pth")
    assert same_weights(last["model"], averaged) and same_weights(last["trained_model"], trained)
    assert last["ema_updates"] == 2 * BATCHES_PER_EPOCH
    scored = trainer.validate()  # validation runs the average, not the trained weights
    trainer.net.load_state_dict(averaged)
    trainer.ema = None
    assert trainer.validate() == pytest.approx(scored, rel=1e-6)


def test_a_stopped_run_resumes_to_the_average_of_a_run_never_stopped(tmp_path):
    reference = ToyTrainer(options(tmp_path / "reference", "--flip", "True", "--ema", DECAY))
    reference.train()
    stopped = interrupting(13, "sigterm")(
        options(tmp_path / "stopped", "--flip", "True", "--ema", DECAY)
    )
    with pytest.raises(StopRequested):
        stopped.train()
    checkpoint = stopped.run_dir / "Vanilla_interrupt_ckpt.pth"
    resumed = ToyTrainer(
        options(tmp_path / "stopped", "--flip", "True", "--ema", DECAY, "--resume", str(checkpoint))
    )
    resumed.train()
    assert same_weights(resumed.ema.module.state_dict(), reference.ema.module.state_dict())
    assert same_weights(resumed.net.state_dict(), reference.net.state_dict())
    assert resumed.ema.updates == reference.ema.updates
    assert without_time(resumed.metrics) == without_time(reference.metrics)


def test_turning_the_average_on_at_resume_starts_it_from_the_weights_reached(tmp_path):
    plain = ToyTrainer(options(tmp_path, "--epochs", "1"))
    plain.train()
    last = str(plain.run_dir / "Vanilla_last_ckpt.pth")
    with pytest.raises(UsageError, match=r"ema 0.0 -> 0.9"):
        ToyTrainer(options(tmp_path, "--epochs", "1", "--ema", DECAY, "--resume", last))
    allowed = ("--allow_config_change", "True")
    resumed = ToyTrainer(
        options(tmp_path, "--epochs", "1", "--ema", DECAY, "--resume", last, *allowed)
    )
    assert resumed.ema.updates == 0
    assert same_weights(resumed.ema.module.state_dict(), load(last)["model"])
