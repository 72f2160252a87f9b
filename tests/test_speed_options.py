"""--accum_steps, --amp, --channels_last and --compile in the base loop, on the CPU; CUDA
graphs and the fused optimizer where a GPU is there."""

import argparse
import dataclasses
import logging
from typing import ClassVar

import pytest
import torch
from test_trainer import interrupting, same_weights
from torch import nn
from toy_task import BATCHES_PER_EPOCH, TOY_ARGS, ToyTrainer, build_toy_parser

import trainer as trainer_module
import utils.loop.amp
from utils.errors import UsageError
from utils.loop.amp import CPU_BF16_ENV, describe_precision
from utils.loop.compile import compile_choice, compile_mode
from utils.records.checkpoint import load_checkpoint


def options(out, *extra: str):
    return build_toy_parser().parse_args(
        [
            "--output_dir",
            str(out),
            *TOY_ARGS,
            "--deterministic",
            "True",
            "--linear",
            "True",
            "--epochs",
            "2",
            *extra,
        ]
    )


def trained(out, *extra: str) -> ToyTrainer:
    trainer = ToyTrainer(options(out, *extra))
    trainer.train()
    return trainer


def test_accumulating_two_half_batches_equals_one_whole_batch(tmp_path):
    whole = trained(tmp_path / "whole", "--batch_size", "16")
    halves = trained(tmp_path / "halves", "--batch_size", "8", "--accum_steps", "2")
    assert halves.global_step == 2 * whole.global_step  # batches
    assert halves.scheduler.last_epoch == whole.scheduler.last_epoch  # optimizer steps
    for key, value in whole.model.state_dict().items():
        assert torch.allclose(halves.model.state_dict()[key], value, atol=1e-6), key


def test_accumulation_steps_at_the_end_of_a_short_epoch(tmp_path):
    # 10 batches per epoch with cycles of 3: steps after batches 3, 6, 9 and 10.
    trainer = trained(tmp_path, "--accum_steps", "3", "--epochs", "1")
    assert trainer.scheduler.last_epoch == 4
    assert trainer.optimizer.state_dict()["state"][0]["step"].item() == 4


def test_the_epochs_last_short_cycle_averages_over_its_own_batches(tmp_path):
    """Cycles of 3 over 10 batches: [1-3], [4-6], [7-9] and [10]; each optimizer step follows
    the mean loss of the batches in its own cycle, the last one of batch 10 alone."""
    sgd = ("--accum_steps", "3", "--epochs", "1", "--optimizer", "sgd", "--momentum", "0")
    sgd += ("--scheduler", "none", "--lr", "0.5")
    trainer = trained(tmp_path / "trained", *sgd)

    fresh = ToyTrainer(options(tmp_path / "by-hand", *sgd))  # same initial weights and order
    model, batches = fresh.model, list(fresh.train_loader)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for cycle in (batches[0:3], batches[3:6], batches[6:9], batches[9:10]):
        optimizer.zero_grad()
        for inputs, targets in cycle:
            (nn.functional.cross_entropy(model(inputs), targets) / len(cycle)).backward()
        optimizer.step()
    for key, value in model.state_dict().items():
        assert torch.allclose(trainer.model.state_dict()[key], value, atol=1e-6), key


class DtypeProbe(ToyTrainer):
    """Records the dtype of the model's outputs in training steps."""

    seen: ClassVar[set[torch.dtype]] = set()

    def compute_loss(self, outputs, targets):
        if self.model.training:
            DtypeProbe.seen.add(outputs.dtype)
        return super().compute_loss(outputs, targets)


@pytest.mark.parametrize(("amp", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_amp_runs_the_forward_in_low_precision(tmp_path, amp, dtype):
    DtypeProbe.seen = set()
    trainer = DtypeProbe(options(tmp_path, "--amp", amp, "--lr", "0.05", "--epochs", "4"))
    metrics = trainer.train()
    assert DtypeProbe.seen == {dtype}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert metrics["val_acc"] >= 0.75  # chance is 1/3; float32 reaches 0.85
    state = load_checkpoint(trainer.run_dir / "Vanilla_last_ckpt.pth")
    assert bool(state["scaler"]) == (amp == "fp16")  # the GradScaler only for fp16


def test_fp16_scaler_state_is_resumed(tmp_path):
    first = trained(tmp_path, "--amp", "fp16", "--epochs", "1")
    scale = first.scaler.get_scale()
    last = first.run_dir / "Vanilla_last_ckpt.pth"
    resumed = ToyTrainer(options(tmp_path, "--amp", "fp16", "--epochs", "1", "--resume", str(last)))
    assert resumed.scaler.get_scale() == scale
    assert resumed.scaler.state_dict() == first.scaler.state_dict()


class ConvToy(ToyTrainer):
    def build_model(self) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1),
            nn.Flatten(),
            nn.Linear(64, 3),
        )


def test_channels_last_converts_model_and_batches(tmp_path):
    trainer = ConvToy(options(tmp_path, "--channels_last", "True"))
    conv = trainer.net[2].weight  # 4 input channels: the two layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    inputs, _ = trainer.to_device((torch.randn(2, 3, 4, 4), torch.zeros(2)))
    assert not inputs.is_contiguous()
    assert inputs.is_contiguous(memory_format=torch.channels_last)
    reference = ConvToy(options(tmp_path / "reference"))
    reference.train()
    trainer.train()
    for key, value in reference.model.state_dict().items():
        assert torch.allclose(trainer.model.state_dict()[key], value, atol=1e-5), key


def test_compiled_model_trains_and_saves_plain_keys(tmp_path):
    eager = trained(tmp_path / "eager", "--epochs", "1")
    compiled = trained(tmp_path / "compiled", "--epochs", "1", "--compile", "True")
    assert hasattr(compiled.net, "_orig_mod")  # really the torch.compile wrapper
    state = load_checkpoint(compiled.run_dir / "Vanilla_last_ckpt.pth")
    assert set(state["model"]) == {"1.weight", "1.bias"}  # no _orig_mod. prefix
    assert state["global_step"] == BATCHES_PER_EPOCH
    for key, value in eager.model.state_dict().items():
        assert torch.allclose(state["model"][key], value, atol=1e-5), key


def test_compile_takes_a_mode_and_the_booleans_runs_recorded_before():
    parse = build_toy_parser().parse_args
    assert parse(["--compile", "reduce-overhead"]).compile == "reduce-overhead"
    assert parse(["--compile", "max-autotune"]).compile == "max-autotune"
    assert parse(["--compile", "True"]).compile is True and parse([]).compile is False
    assert compile_mode(True) == "default" and compile_mode(False) is None


def test_compile_refuses_another_word():
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected False, True or a mode"):
        compile_choice("fast")


def test_a_compiled_run_resumes_exactly(tmp_path):
    """The MLP with dropout, compiled (on a CPU: fused kernels, no CUDA graphs), stopped by a
    Ctrl-C in epoch 2 and resumed, ends with the weights of the compiled run never stopped."""
    mlp = ("--linear", "False", "--flip", "True", "--compile", "reduce-overhead")
    whole = trained(tmp_path / "whole", *mlp)
    assert hasattr(whole.net, "_orig_mod") and not whole.cuda_graphs
    stopped = interrupting(13, "ctrl-c")(options(tmp_path / "stopped", *mlp))
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    checkpoint = stopped.run_dir / "Vanilla_interrupt_ckpt.pth"
    resumed = ToyTrainer(options(tmp_path / "stopped", *mlp, "--resume", str(checkpoint)))
    resumed.train()
    assert same_weights(resumed.model.state_dict(), whole.model.state_dict())


def test_compile_over_dataparallel_is_refused_before_a_run_dir(tmp_path, monkeypatch):
    """DataParallel's replication writes empty parameter tables through the compile wrapper
    onto the real model (below), so ``--compile`` with several GPUs is one line, no run dir."""
    model = nn.Sequential(nn.Linear(2, 2))
    torch.compile(model)._replicate_for_data_parallel()
    assert [name for name, _ in model.named_parameters()] == []  # the model lost its weights

    two_gpus = (torch.device("cpu"), [0, 1])
    monkeypatch.setattr(trainer_module, "select_device", lambda spec: two_gpus)
    with pytest.raises(UsageError, match=r"--compile True with --gpu_devices 0,1: .*torchrun"):
        ToyTrainer(options(tmp_path / "runs", "--compile", "True"))
    assert not (tmp_path / "runs").exists()


def test_graph_replays_keep_gradients_allocated_through_accumulation(tmp_path, monkeypatch):
    """Where steps replay CUDA graphs, each parameter keeps one gradient tensor for the whole
    run, zeroed in place after each optimizer step (a gradient the first backward of a cycle
    left in the graphs' pool would be overwritten before the second adds to it), and the
    weights are those of a run that drops its gradients."""
    plain = trained(tmp_path / "plain", "--batch_size", "8", "--accum_steps", "2")
    monkeypatch.setattr(trainer_module, "replays_cuda_graphs", lambda choice, device: True)
    graphed = ToyTrainer(options(tmp_path / "graphed", "--batch_size", "8", "--accum_steps", "2"))
    grads = [p.grad for p in graphed.net.parameters()]
    assert all(g is not None and not g.any() for g in grads)
    graphed.train()
    assert all(p.grad is g for p, g in zip(graphed.net.parameters(), grads, strict=True))
    assert all(not g.any() for g in grads)  # zeroed after the last step
    assert same_weights(graphed.model.state_dict(), plain.model.state_dict())


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@GPU
def test_adam_runs_fused_on_a_gpu_and_not_on_the_cpu(tmp_path):
    gpu = ToyTrainer(options(tmp_path / "gpu", "--gpu_devices", "0"))
    cpu = ToyTrainer(options(tmp_path / "cpu"))
    assert gpu.optimizer.defaults["fused"] is True and not cpu.optimizer.defaults["fused"]


@GPU
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_a_graphed_run_on_a_gpu_resumes_exactly(tmp_path, mode):
    """On a GPU, reduce-overhead replays each step as CUDA graphs, with fused Adam; a Ctrl-C
    in epoch 2 and a resume end where the run never stopped ends."""
    gpu = ("--gpu_devices", "0", "--linear", "False", "--flip", "True", "--compile", mode)
    whole = trained(tmp_path / "whole", *gpu)
    assert whole.cuda_graphs == (mode == "reduce-overhead")
    stopped = interrupting(13, "ctrl-c")(options(tmp_path / "stopped", *gpu))
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    checkpoint = stopped.run_dir / "Vanilla_interrupt_ckpt.pth"
    resumed = ToyTrainer(options(tmp_path / "stopped", *gpu, "--resume", str(checkpoint)))
    resumed.train()
    assert same_weights(resumed.model.state_dict(), whole.model.state_dict())


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_a_run_makes_its_gpu_the_current_one(tmp_path):
    """So that what asks the current GPU (bf16 support for --amp auto...) asks the run's."""
    ToyTrainer(options(tmp_path, "--gpu_devices", "1"))
    assert torch.cuda.current_device() == 1


@GPU
def test_a_graphed_run_accumulates_over_batches_on_a_gpu(tmp_path):
    """reduce-overhead with --accum_steps 2: each cycle's second backward adds to gradients
    that the graphs' next replay has not overwritten; the weights follow the eager run."""
    gpu = ("--gpu_devices", "0", "--batch_size", "8", "--accum_steps", "2")
    eager = trained(tmp_path / "eager", *gpu)
    graphed = trained(tmp_path / "graphed", *gpu, "--compile", "reduce-overhead")
    assert graphed.cuda_graphs
    for key, value in eager.model.state_dict().items():
        assert torch.allclose(graphed.net.state_dict()[key], value, atol=1e-4), key


class TimedConv(ConvToy):
    """ConvToy whose loss is the plain criterion: the toy's fault hook reads ``self.model``,
    which does not exist yet while auto times its candidates."""

    def compute_loss(self, outputs, targets):
        return self.criterion(outputs, targets)


AUTO = ("--amp", "auto", "--channels_last", "auto", "--epochs", "1")


@pytest.fixture
def as_on_a_gpu(monkeypatch):
    """Auto times its candidates here as it does on a GPU, from a bf16 CPU's rule."""
    monkeypatch.setattr(utils.loop.amp, "timed_here", lambda device: True)
    monkeypatch.setenv(CPU_BF16_ENV, "1")


def test_auto_times_each_candidate_and_leaves_the_run_as_it_was(tmp_path, as_on_a_gpu, caplog):
    with caplog.at_level(logging.INFO, logger="utils.loop.amp"):
        timed = TimedConv(options(tmp_path / "timed", *AUTO))
    (line,) = [r.getMessage() for r in caplog.records if "a training step on cpu" in r.getMessage()]
    for name in ("bf16+channels_last", "bf16 ", "off+channels_last", "off "):
        assert name in line
    picked = {"amp": timed.amp[0], "channels_last": timed.channels_last}
    assert line.endswith(f"picked {describe_precision((picked['amp'], picked['channels_last']))}")
    assert timed.state_dict()["precision"] == picked
    rng = torch.get_rng_state()
    plain = TimedConv(options(tmp_path / "plain", "--amp", picked["amp"], "--epochs", "1"))
    assert torch.equal(rng, torch.get_rng_state())  # timing drew nothing from the run's streams
    assert same_weights(timed.net.state_dict(), plain.net.state_dict())


class Drawing(torch.utils.data.Dataset):
    """Samples that draw from torch's global RNG when read, as random transforms do."""

    def __init__(self, samples: torch.utils.data.Dataset) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.samples[index]
        return x + 0.01 * torch.rand(()), y


class DrawingConv(TimedConv):
    def build_data(self):
        splits = super().build_data()
        return dataclasses.replace(splits, train=Drawing(splits.train.samples))


def test_timing_draws_its_batch_from_a_forked_rng(tmp_path, as_on_a_gpu):
    """The batch auto times is read under the forked RNG: after timing, torch's stream is
    where it is in a run that timed nothing."""
    DrawingConv(options(tmp_path / "timed", *AUTO))
    timed = torch.get_rng_state()
    DrawingConv(options(tmp_path / "plain", "--amp", "off", "--channels_last", "False"))
    assert torch.equal(timed, torch.get_rng_state())


def test_auto_follows_the_rules_for_a_compiled_model(tmp_path, as_on_a_gpu, monkeypatch):
    """Eager timings do not hold for a compiled model: auto takes the rules' bf16 and
    channels_last without timing anything."""

    def untimed(step, choices, device):
        raise AssertionError("timed under --compile")

    monkeypatch.setattr(utils.loop.amp, "time_candidates", untimed)
    compiled = TimedConv(options(tmp_path, *AUTO, "--compile", "True"))
    assert (compiled.amp[0], compiled.channels_last) == ("bf16", True)


def test_auto_takes_the_fastest_and_a_resumed_run_keeps_its_pick(
    tmp_path, as_on_a_gpu, monkeypatch
):
    def timings(fastest):
        return lambda step, choices, device: {c: 1.0 if c == fastest else 2.0 for c in choices}

    monkeypatch.setattr(utils.loop.amp, "time_candidates", timings(("off", False)))
    first = TimedConv(options(tmp_path, *AUTO))
    assert (first.amp[0], first.channels_last) == ("off", False)
    first.train()
    monkeypatch.setattr(utils.loop.amp, "time_candidates", timings(("bf16", True)))
    assert (TimedConv(options(tmp_path / "new", *AUTO)).amp[0]) == "bf16"
    last = first.run_dir / "Vanilla_last_ckpt.pth"
    resumed = TimedConv(options(tmp_path, *AUTO, "--resume", str(last)))
    assert (resumed.amp[0], resumed.channels_last) == ("off", False)
    assert resumed.amp[1] == resumed.layout_why == "auto: as the run picked when it started"
