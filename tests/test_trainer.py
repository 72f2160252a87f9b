"""TrainerBase in-process on a small synthetic task: loop, logs, checkpoints, stop, resume."""

import copy
import json
import math
import multiprocessing
import os
import shlex
import signal
from pathlib import Path

import pytest
import torch
from conftest import REPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from toy_task import BATCHES_PER_EPOCH, TOY_ARGS, ToyTrainer, build_toy_parser

from data.data_entry import end_workers
from utils.errors import NonFiniteLossError, UsageError
from utils.records.checkpoint import save_checkpoint
from utils.signals import StopRequested

STOPS = {"ctrl-c": KeyboardInterrupt, "error": RuntimeError}


def interrupting(at_step: int, how: str) -> type[ToyTrainer]:
    """A ToyTrainer hit at the start of the step after ``at_step`` completed steps.

    ``ctrl-c``/``error`` raise there, before the step draws any random number; ``sigterm``
    sends the process a real SIGTERM, after which the step finishes and the loop stops.
    """

    class Interrupted(ToyTrainer):
        def augment(self, inputs, targets):
            if self.global_step == at_step:
                if how == "sigterm":
                    os.kill(os.getpid(), signal.SIGTERM)
                else:
                    raise STOPS[how]("simulated failure")
            return super().augment(inputs, targets)

    return Interrupted


def nan_loss_at(*steps: int) -> type[ToyTrainer]:
    """A ToyTrainer whose training loss is NaN in the step after each of ``steps``."""

    class NaNLoss(ToyTrainer):
        def compute_loss(self, outputs, targets):
            loss = super().compute_loss(outputs, targets)
            hit = self.model.training and self.global_step in steps
            return loss * math.nan if hit else loss

    return NaNLoss


def options(out: Path, *extra: str):
    return build_toy_parser().parse_args(
        ["--output_dir", str(out), *TOY_ARGS, "--deterministic", "True", *extra]
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


def test_unknown_monitor_fails_before_training_and_closes_what_train_opened(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--monitor", "val_dice"))
    with pytest.raises(UsageError, match=r"--monitor val_dice.*val_acc"):
        trainer.train()
    assert not list(trainer.run_dir.glob("*.pth"))
    assert trainer.writer.all_writers is None  # closed, as after a finished run


def gradients_at_each_step(trainer: ToyTrainer) -> list[list[torch.Tensor]]:
    """Copies of the gradients that each optimizer step of ``trainer.train()`` applies."""
    applied: list[list[torch.Tensor]] = []
    trainer.optimizer.register_step_pre_hook(
        lambda optimizer, args, kwargs: applied.append(
            [p.grad.clone() for group in optimizer.param_groups for p in group["params"]]
        )
    )
    trainer.train()
    return applied


def test_clip_grad_norm_bounds_the_applied_gradients(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--clip_grad_norm", "0.05"))
    norms = [
        torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item()
        for grads in gradients_at_each_step(trainer)
    ]
    assert len(norms) == 3 * BATCHES_PER_EPOCH
    assert max(norms) <= 0.05 * (1 + 1e-5)
    clipped = [n for n in norms if n == pytest.approx(0.05, rel=1e-4)]
    assert len(clipped) >= len(norms) // 2  # the toy's raw norms are above 0.05


def test_clip_grad_value_bounds_every_applied_gradient(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--clip_grad_value", "0.001"))
    largest = [
        max(g.abs().max().item() for g in grads) for grads in gradients_at_each_step(trainer)
    ]
    # Every step has gradients above 0.001, so its largest one sits exactly at the limit.
    assert largest == [torch.tensor(0.001).item()] * 3 * BATCHES_PER_EPOCH


def test_label_smoothing_reaches_the_training_loss(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--label_smoothing", "0.2"))
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    smoothed = 0.8 * nn.functional.one_hot(targets, 3) + 0.2 / 3
    expected = -(smoothed * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert trainer.compute_loss(logits, targets).item() == pytest.approx(expected.item())
    assert expected.item() != pytest.approx(nn.functional.cross_entropy(logits, targets).item())


def test_cosine_schedule_reaches_the_loop(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--scheduler", "cosine", "--epochs", "2"))
    trainer.train()
    # cosine over all 20 steps ends at lr 0
    assert trainer.lr == pytest.approx(0.0, abs=1e-12)
    assert scalars(trainer.run_dir, "lr")[-1][1] == pytest.approx(0.0, abs=1e-12)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def without_time(metrics: dict) -> dict:
    """What a run computes: its metrics without the time and memory they took."""
    return {k: v for k, v in metrics.items() if k not in ("epoch_time", "memory_peak_mib")}


@pytest.fixture
def reference(tmp_path) -> ToyTrainer:
    """An uninterrupted run with flips, dropout and python/numpy jitter."""
    trainer = ToyTrainer(options(tmp_path / "reference", "--flip", "True"))
    trainer.train()
    return trainer


@pytest.mark.parametrize(
    ("how", "at_step", "saved_step"),
    [("sigterm", 12, 13), ("sigterm", 19, 20), ("ctrl-c", 20, 20)],
    ids=["sigterm-mid-epoch", "sigterm-last-batch", "ctrl-c-epoch-boundary"],
)
def test_stop_then_resume_matches_an_uninterrupted_run(
    tmp_path, reference, how, at_step, saved_step
):
    stopped = interrupting(at_step, how)(options(tmp_path / "stopped", "--flip", "True"))
    with pytest.raises(StopRequested if how == "sigterm" else KeyboardInterrupt):
        stopped.train()
    checkpoint = stopped.run_dir / "Vanilla_interrupt_ckpt.pth"
    state = load(checkpoint)
    assert state["global_step"] == saved_step
    assert state["epoch"] * BATCHES_PER_EPOCH + state["batch_in_epoch"] == saved_step
    log = (stopped.run_dir / "train.log").read_text()
    assert "continue with:" in log
    assert f"--resume {checkpoint}" in log
    assert any("WARNING" in line and "saved" in line for line in log.splitlines())  # a stop

    resumed = ToyTrainer(
        options(tmp_path / "elsewhere", "--flip", "True", "--resume", str(checkpoint))
    )
    resumed.train()
    assert resumed.run_dir == stopped.run_dir
    assert not (tmp_path / "elsewhere").exists()
    assert same_weights(resumed.model.state_dict(), reference.model.state_dict())
    # The epoch averages survive the interruption too: the same numbers are reported.
    assert without_time(resumed.metrics) == without_time(reference.metrics)
    # Logs append, and TensorBoard shows each epoch once across both processes.
    log = (stopped.run_dir / "train.log").read_text()
    assert "resuming" in log
    assert "resuming with changed options" not in log  # none changed
    steps = [s for s, _ in scalars(stopped.run_dir, "val/acc")]
    assert steps == [BATCHES_PER_EPOCH * e for e in (1, 2, 3)]


def test_an_epoch_resumed_in_its_middle_reports_its_whole_time(tmp_path):
    """Steps of 0.1 s: epoch 2 stopped after 7 of its 10 steps and resumed takes at least
    1 s in all (the resumed process alone, about 0.3 s), and once the run has finished the
    interrupt checkpoint it went on from is removed, with a line saying so."""
    slow = ("--step_delay", "0.1", "--epochs", "2")
    stopped = interrupting(17, "ctrl-c")(options(tmp_path, *slow))
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    checkpoint = stopped.run_dir / "Vanilla_interrupt_ckpt.pth"
    assert load(checkpoint)["epoch_seconds"] >= 0.7
    resumed = ToyTrainer(options(tmp_path, *slow, "--resume", str(checkpoint)))
    resumed.train()
    assert resumed.metrics["epoch_time"] >= 1.0
    assert not checkpoint.exists()
    log = (stopped.run_dir / "train.log").read_text()
    assert "removed Vanilla_interrupt_ckpt.pth: the run went on from it to its end" in log


def test_loader_workers_end_with_training(tmp_path):
    """DataLoader workers are persistent through a run and end as train() returns, not when
    the garbage collector reaches the trainer."""
    before = set(multiprocessing.active_children())
    trainer = ToyTrainer(options(tmp_path, "--num_workers", "2", "--epochs", "1"))
    trainer.train()
    assert set(multiprocessing.active_children()) == before
    assert trainer.validate()["loss"] > 0  # iterating again starts workers anew
    end_workers(trainer.val_loader)
    assert set(multiprocessing.active_children()) == before


def test_any_exception_writes_an_interrupt_checkpoint(tmp_path):
    trainer = interrupting(5, "error")(options(tmp_path))
    with pytest.raises(RuntimeError, match="simulated"):
        trainer.train()
    assert load(trainer.run_dir / "Vanilla_interrupt_ckpt.pth")["global_step"] == 5
    log = (trainer.run_dir / "train.log").read_text().splitlines()
    assert any("ERROR RuntimeError in epoch 1 after batch 5" in line for line in log)
    assert any("continue with:" in line for line in log)


def test_periodic_checkpoints_resume_exactly(tmp_path, reference):
    trainer = interrupting(13, "ctrl-c")(
        options(tmp_path, "--flip", "True", "--save_every_n_steps", "4")
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    last = trainer.run_dir / "Vanilla_last_ckpt.pth"
    state = load(last)
    assert (state["epoch"], state["batch_in_epoch"], state["global_step"]) == (1, 2, 12)
    resumed = ToyTrainer(options(tmp_path, "--flip", "True", "--resume", str(last)))
    resumed.train()
    assert same_weights(resumed.model.state_dict(), reference.model.state_dict())


def test_nonfinite_loss_stops_and_keeps_the_good_checkpoints(tmp_path):
    trainer = nan_loss_at(13)(options(tmp_path, "--save_every_n_steps", "4"))
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 4 \(step 14\).*--nonfinite skip"):
        trainer.train()
    assert not (trainer.run_dir / "Vanilla_interrupt_ckpt.pth").exists()
    last = load(trainer.run_dir / "Vanilla_last_ckpt.pth")
    assert last["global_step"] == 12
    assert all(torch.isfinite(value).all() for value in last["model"].values())
    log = (trainer.run_dir / "train.log").read_text()
    assert "continue from the last checkpoint with: python" in log


def test_no_checkpoint_is_written_after_a_nonfinite_loss(tmp_path):
    trainer = ToyTrainer(options(tmp_path))
    trainer.guard.note(7, torch.tensor(math.nan))  # as the loop notes it, without waiting
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 7 \(step 7\)"):
        trainer.save("last")
    assert not list(trainer.run_dir.glob("*.pth"))


def test_nonfinite_loss_can_skip_batches_with_a_count(tmp_path):
    trainer = nan_loss_at(3, 14, 15)(options(tmp_path, "--nonfinite", "skip"))
    metrics = trainer.train()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert math.isfinite(metrics["train_loss"])
    assert "train_skipped" not in metrics  # epoch 3 had none
    assert [v for _, v in scalars(trainer.run_dir, "train/skipped")] == [1, 2]
    log = (trainer.run_dir / "train.log").read_text()
    assert "epoch 2, batch 5 (step 15): batch skipped" in log
    assert "train_skipped 2" in log


# The scheduler keeps stepping through skipped batches, before any optimizer step here.
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_skipping_every_batch_of_an_epoch_stops(tmp_path):
    trainer = nan_loss_at(*range(BATCHES_PER_EPOCH))(options(tmp_path, "--nonfinite", "skip"))
    with pytest.raises(NonFiniteLossError, match="every batch of epoch 1"):
        trainer.train()


def test_resume_auto_takes_the_newest_checkpoint_of_the_project(tmp_path, reference):
    stopped = interrupting(13, "ctrl-c")(options(tmp_path, "--flip", "True"))
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    ToyTrainer(options(tmp_path, "--proj_name", "Other", "--epochs", "1")).train()  # newer
    resumed = ToyTrainer(options(tmp_path, "--flip", "True", "--resume", "auto"))
    assert resumed.run_dir == stopped.run_dir
    assert resumed.global_step == 13
    resumed.train()
    assert same_weights(resumed.model.state_dict(), reference.model.state_dict())


def test_resume_auto_without_a_run_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no checkpoint of a 'Toy' run"):
        ToyTrainer(options(tmp_path, "--resume", "auto"))
    assert list(tmp_path.iterdir()) == []


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_resume_with_changed_options_is_refused_unless_allowed(tmp_path):
    trainer = interrupting(13, "ctrl-c")(options(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    checkpoint = str(trainer.run_dir / "Vanilla_interrupt_ckpt.pth")
    before = snapshot(trainer.run_dir)
    with pytest.raises(
        UsageError, match=r"options differ.*\(lr 0.001 -> 0.5\).*allow_config_change"
    ):
        ToyTrainer(options(tmp_path, "--lr", "0.5", "--resume", checkpoint))
    assert snapshot(trainer.run_dir) == before

    # Where the data or the workers are is not part of what a run computes.
    ToyTrainer(options(tmp_path, "--data_dir", "/elsewhere", "--resume", checkpoint))

    # What an allowed change does is tested in test_config_change.py.


def test_a_checkpoint_recording_other_entries_options_resumes_exactly(tmp_path):
    """Runs from before a run kept only its own entries' options recorded UNet's in a
    Vanilla run; they resume as they were, to the weights of a run never stopped."""
    reference = ToyTrainer(options(tmp_path / "reference"))
    reference.train()
    trainer = interrupting(13, "ctrl-c")(options(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    old = trainer.run_dir / "Vanilla_interrupt_ckpt.pth"
    state = load(old)
    state["config"] |= {"bilinear": True, "base_width": 32, "img_scale": 0.5}
    save_checkpoint(old, state)
    resumed = ToyTrainer(options(tmp_path, "--resume", str(old)))
    resumed.train()
    assert same_weights(resumed.model.state_dict(), reference.model.state_dict())


def test_resuming_a_finished_run_trains_nothing(tmp_path):
    trainer = ToyTrainer(
        options(tmp_path, "--epochs", "10", "--patience", "1", "--min_delta", "10")
    )
    metrics = trainer.train()
    last = trainer.run_dir / "Vanilla_last_ckpt.pth"
    written = last.stat().st_mtime_ns
    resumed = ToyTrainer(
        options(
            tmp_path,
            "--epochs",
            "10",
            "--patience",
            "1",
            "--min_delta",
            "10",
            "--resume",
            str(last),
        )
    )
    assert resumed.train() == metrics  # the last epoch's figures, from the checkpoint
    assert resumed.epoch == 2
    assert last.stat().st_mtime_ns == written


def test_resume_removes_what_a_killed_save_left(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--epochs", "1"))
    trainer.train()
    leftover = trainer.run_dir / ".Vanilla_last_ckpt.pth.0123abcd.tmp"
    leftover.write_bytes(b"half a checkpoint")
    ToyTrainer(
        options(
            tmp_path, "--epochs", "1", "--resume", str(trainer.run_dir / "Vanilla_last_ckpt.pth")
        )
    )
    assert not leftover.exists()
    assert (
        "removed .Vanilla_last_ckpt.pth.0123abcd.tmp" in (trainer.run_dir / "train.log").read_text()
    )


def test_resume_from_a_weights_only_checkpoint_names_what_is_missing(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--epochs", "1"))
    trainer.train()
    state = load(trainer.run_dir / "Vanilla_last_ckpt.pth")
    partial = trainer.run_dir / "weights_only.pth"
    save_checkpoint(partial, {"model": state["model"]})
    with pytest.raises(
        UsageError, match=r"lacks optimizer, .*, config, rng, scaler; expected a checkpoint"
    ):
        ToyTrainer(options(tmp_path, "--epochs", "1", "--resume", str(partial)))
    save_checkpoint(partial, {key: value for key, value in state.items() if key != "rng"})
    with pytest.raises(UsageError, match=r"weights_only.pth: lacks rng;"):
        ToyTrainer(options(tmp_path, "--epochs", "1", "--resume", str(partial)))
    assert "weights_only" not in (trainer.run_dir / "train.log").read_text()


def test_checkpoints_describe_the_data_and_still_resume_without_it(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--epochs", "1"))
    trainer.train()
    state = load(trainer.run_dir / "Vanilla_last_ckpt.pth")
    # What ToyTrainer.build_data declares, for prediction without the data.
    expected = {
        "input_shape": [1, 4, 4],
        "num_outputs": 3,
        "class_names": ["a", "b", "c"],
        "mean": [],  # the toy data measures no statistics
        "std": [],
    }
    assert state["data"] == expected
    older = trainer.run_dir / "before_data_ckpt.pth"
    save_checkpoint(older, {key: value for key, value in state.items() if key != "data"})
    more = ("--epochs", "2", "--allow_config_change", "True", "--resume", str(older))
    resumed = ToyTrainer(options(tmp_path, *more))
    resumed.train()
    assert resumed.epoch == 2
    assert load(trainer.run_dir / "Vanilla_last_ckpt.pth")["data"] == expected


def test_the_log_ends_with_the_command_that_evaluates_the_best_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    trainer = ToyTrainer(options(tmp_path, "--epochs", "1"))
    trainer.train()
    last = (trainer.run_dir / "train.log").read_text().splitlines()[-1]
    command = last.split("evaluate the best checkpoint with: ")[1]
    best = trainer.run_dir / "Vanilla_best_ckpt.pth"
    assert best.is_file()
    assert shlex.split(command) == ["python", "eval_vanilla.py", "--model_path", str(best)]


def test_mid_epoch_resume_with_another_number_of_processes_is_refused(tmp_path):
    trainer = interrupting(13, "ctrl-c")(options(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    checkpoint = trainer.run_dir / "Vanilla_interrupt_ckpt.pth"
    state = load(checkpoint)
    assert state["world_size"] == 1
    save_checkpoint(checkpoint, {**state, "world_size": 2})  # as if written under torchrun
    for allow in ("False", "True"):  # even allowed: samples of the epoch would repeat
        with pytest.raises(UsageError, match="processes 2 -> 1 would repeat or skip samples"):
            ToyTrainer(
                options(tmp_path, "--resume", str(checkpoint), "--allow_config_change", allow)
            )


def test_fp16_with_a_skipped_batch_trains_on(tmp_path):
    """The GradScaler has nothing to unscale in a cycle whose only batch was skipped."""
    trainer = nan_loss_at(3)(options(tmp_path, "--amp", "fp16", "--nonfinite", "skip"))
    metrics = trainer.train()
    assert math.isfinite(metrics["train_loss"])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert [v for _, v in scalars(trainer.run_dir, "train/skipped")] == [1]
    assert trainer.global_step == 3 * BATCHES_PER_EPOCH


def failing(point: str, at_step: int) -> type[ToyTrainer]:
    """A ToyTrainer that raises once, in batch ``at_step + 1``, at ``point``: ``forward`` (of a
    batch in the middle of an accumulation cycle), ``metrics`` (after the backward of the batch
    that ends a cycle, before its optimizer step) or ``after-step`` (right after that step)."""

    class Failing(ToyTrainer):
        def augment(self, inputs, targets):
            if point == "forward" and self.global_step == at_step:
                raise RuntimeError("simulated failure in the forward")
            return super().augment(inputs, targets)

        def compute_metrics(self, outputs, targets):
            if point == "metrics" and self.model.training and self.global_step == at_step + 1:
                raise RuntimeError("simulated failure in the metrics")
            return super().compute_metrics(outputs, targets)

        def optimizer_step(self):
            super().optimizer_step()
            if point == "after-step" and self.global_step == at_step + 1:
                raise RuntimeError("simulated failure after the optimizer step")

    return Failing


@pytest.mark.parametrize(
    ("point", "at_step", "saved_step"),
    [("forward", 13, 12), ("metrics", 13, 12), ("after-step", 13, 14)],
)
def test_an_exception_anywhere_in_a_step_resumes_without_repeating_or_losing_a_batch(
    tmp_path, point, at_step, saved_step
):
    """With cycles of two batches, the interrupt checkpoint holds the state after the last
    optimizer step: the batches since then are trained again, each exactly once."""
    run = ("--linear", "True", "--accum_steps", "2", "--optimizer", "sgd")
    reference = ToyTrainer(options(tmp_path / "reference", *run))
    reference.train()
    failed = failing(point, at_step)(options(tmp_path, *run))
    with pytest.raises(RuntimeError, match="simulated"):
        failed.train()
    checkpoint = failed.run_dir / "Vanilla_interrupt_ckpt.pth"
    state = load(checkpoint)
    assert (state["global_step"], state["batch_in_epoch"]) == (saved_step, saved_step - 10)
    resumed = ToyTrainer(options(tmp_path, *run, "--resume", str(checkpoint)))
    resumed.train()
    assert same_weights(resumed.model.state_dict(), reference.model.state_dict())
    assert without_time(resumed.metrics) == without_time(reference.metrics)


class Counted(ToyTrainer):
    """Notes whether each batch it scores is a training batch."""

    def batch_stats(self, loss, outputs, targets):
        self.scored = [*getattr(self, "scored", []), self.model.training]
        return super().batch_stats(loss, outputs, targets)


def test_fast_dev_run_runs_n_batches_of_each_split_and_writes_nothing(tmp_path, caplog):
    out = tmp_path / "Results"
    trainer = Counted(options(out, "--fast_dev_run", "2", "--save_every_n_steps", "1"))
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    metrics = trainer.train()
    # 2 training batches; 2 validation batches for the --monitor check, 2 of val, 2 of test.
    assert trainer.scored == [False] * 2 + [True] * 2 + [False] * 4
    assert trainer.global_step == 2
    assert any(not torch.equal(p, before[name]) for name, p in trainer.model.named_parameters())
    assert {"train_loss", "val_acc", "test_loss", "test_acc"} <= metrics.keys()
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert "fast_dev_run: nothing written" in caplog.text
    assert "2 training, 2 validation and 2 test batches" in caplog.text


def test_a_cycle_with_a_skipped_batch_averages_over_the_batches_it_kept(tmp_path):
    """``--nonfinite skip`` with ``--accum_steps 2``: each SGD step moves by the mean gradient
    of the batches its cycle kept, computed here by hand over the same batches; the cycle
    whose first batch is NaN steps by its second batch's gradient alone."""
    run = ("--linear", "True", "--accum_steps", "2", "--optimizer", "sgd", "--momentum", "0")
    run += ("--scheduler", "none", "--nonfinite", "skip", "--epochs", "1", "--lr", "0.5")
    trainer = nan_loss_at(0, 5)(options(tmp_path / "run", *run))  # steps 1 and 6: NaN
    model = copy.deepcopy(trainer.net)
    batches = list(ToyTrainer(options(tmp_path / "batches", *run)).train_loader)
    trainer.train()
    for cycle in range(0, len(batches), 2):
        kept = [b for i, b in enumerate(batches[cycle : cycle + 2]) if cycle + i not in (0, 5)]
        model.zero_grad()
        for inputs, targets in kept:
            (nn.functional.cross_entropy(model(inputs), targets) / len(kept)).backward()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter -= 0.5 * parameter.grad
    for key, value in model.state_dict().items():
        torch.testing.assert_close(trainer.net.state_dict()[key], value, rtol=1e-5, atol=1e-6)
