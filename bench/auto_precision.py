"""``--amp auto`` and ``--channels_last auto`` against every explicit choice, for the example
models on this device.

For each model, at its task's batch size and input size, a training step (forward, loss,
backward, Adam step, on one batch already on the device) is timed with every explicit choice:
``--amp`` off and bf16 (and fp16 on a GPU) times ``--channels_last`` False and True (True only
for the conv nets). Then the choice ``auto`` makes here (the rules on a CPU; on a GPU the
fastest of the steps the trainer times, timed again here) and its time against the fastest
explicit choice; the target is at most 1.05::

    python -m bench.auto_precision --gpu_devices cpu
"""

import argparse
import copy

import torch
from torch import nn

from model.model_entry import build_model
from trainer import build_parser
from utils.cli import positive_int, run_main
from utils.loop.amp import (
    Precision,
    autocast,
    candidates,
    describe_precision,
    resolve_amp,
    resolve_channels_last,
    time_candidates,
    timed_here,
)
from utils.loop.device import channels_last, select_device

# name: (model options, input shape, classes, batch size): the tasks' defaults.
MODELS = {
    "Vanilla MLP": (["--model_type", "Vanilla"], (1, 28, 28), 10, 64),
    "SmallCNN": (["--model_type", "SmallCNN"], (1, 28, 28), 10, 128),
    "UNet": (["--model_type", "UNet", "--base_width", "16"], (3, 320, 480), 1, 4),
}


def training_step(
    model: nn.Module, shape: tuple[int, ...], classes: int, batch: int, device: torch.device
):
    """``choice -> one training step`` of a copy of ``model`` on a random batch."""
    inputs = torch.randn(batch, *shape, device=device)
    if classes > 1:
        targets = torch.randint(0, classes, (batch,), device=device)
        criterion: nn.Module = nn.CrossEntropyLoss()
    else:
        targets = (torch.rand(batch, 1, *shape[1:], device=device) > 0.5).float()
        criterion = nn.BCEWithLogitsLoss()

    def step(choice: Precision):
        mode, layout = choice
        trial = build_copy(model, layout)
        optimizer = torch.optim.Adam(trial.parameters(), fused=device.type == "cuda" or None)
        batch_inputs = channels_last(inputs) if layout else inputs

        def run() -> None:
            with autocast(device, mode):
                outputs = trial(batch_inputs)
            criterion(outputs.float(), targets).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return run

    return step


def build_copy(model: nn.Module, layout: bool) -> nn.Module:
    """A copy of ``model``, so every choice starts from the same weights and statistics."""
    trial = copy.deepcopy(model)
    return trial.to(memory_format=torch.channels_last) if layout else trial


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu_devices", default="auto", help="'auto', 'cpu' or a GPU id")
    parser.add_argument("--steps", type=positive_int, default=5, help="steps per timed run")
    parser.add_argument("--rounds", type=positive_int, default=3, help="timed runs (median)")
    args = parser.parse_args(argv)
    device, _ = select_device(args.gpu_devices)
    low = ["bf16", "fp16"] if device.type == "cuda" else ["bf16"]
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':12s} | {'choice':24s} | {'step ms':>9s} | vs fastest")
    for name, (options, shape, classes, batch) in MODELS.items():
        opt = build_parser().parse_args(options)
        torch.manual_seed(0)
        model = build_model(opt, shape, classes).to(device).train()
        conv = resolve_channels_last("auto", model)
        explicit = [(mode, layout) for mode in ["off", *low] for layout in [False, True]]
        explicit = [c for c in explicit if conv or not c[1]]
        step = training_step(model, shape, classes, batch, device)
        steps = 1 if name == "UNet" and device.type == "cpu" else args.steps
        seconds = time_candidates(step, explicit, device, steps=steps, rounds=args.rounds)
        amp = resolve_amp("auto", device)
        auto: Precision = (amp[0], conv)
        if timed_here(device):  # as the trainer does: time the candidates, take the fastest
            trial = time_candidates(step, candidates(amp, "auto", "auto", model), device)
            auto = min(trial, key=trial.__getitem__)
        fastest = min(seconds.values())
        rows = [(describe_precision(c), t) for c, t in seconds.items()]
        rows.append((f"auto: {describe_precision(auto)}", seconds[auto]))
        for choice, time in rows:
            print(f"{name:12s} | {choice:24s} | {time * 1e3:9.2f} | {time / fastest:.3f}")


if __name__ == "__main__":
    run_main(main)
