"""A tiny in-memory classification task on TrainerBase, for in-process and subprocess tests.

Run as a script (``python -m tests.toy_task --output_dir DIR ...``) it behaves like a task
script: the fault tests signal and kill it. Its augmentation draws from python's, numpy's and
torch's RNGs, and the MLP has dropout, so a resume is only bit-exact if every RNG is restored.

``TOY_FAULT`` in the environment (not an option, so a resumed run's options stay those of the
run) injects one fault: ``nan:STEP:RANK`` makes the training loss of batch STEP (1-based,
counted over the run) NaN on rank RANK; ``validate:EPOCH:RANK`` raises in the validation of
epoch EPOCH on rank RANK; ``kill-in-save:N:RANK`` SIGKILLs the process halfway through writing
the N-th checkpoint it saves.
"""

import argparse
import io
import math
import os
import random
import signal
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset, TensorDataset

from data.augment import sample_seed, seeded
from data.splits import DataSplits
from trainer_vanilla import VanillaTrainer, build_vanilla_parser
from utils.atomic import atomic_write
from utils.cli import non_negative_float, run_main, str2bool

BATCHES_PER_EPOCH = 10  # 160 train samples / batch 16
# The scalars a run of the toy task logs each epoch (TensorBoard tags).
SCALAR_TAGS = {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "epoch/time", "best/val_acc"}
SCALAR_TAGS |= {"memory/peak_mib"}
TOY_ARGS = ("--gpu_devices", "cpu", "--num_workers", "0", "--batch_size", "16")


def write_half_then_die(path: Path, state: dict) -> None:
    """Start writing a checkpoint as ``save_checkpoint`` does, and get SIGKILLed halfway."""

    def write(file) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        file.write(buffer.getbuffer()[: buffer.tell() // 2])
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    atomic_write(path, write)


def fault(kind: str) -> int | None:
    """The step or epoch of the ``TOY_FAULT`` of ``kind`` meant for this rank, if any."""
    spec = os.environ.get("TOY_FAULT", "")
    if not spec:
        return None
    name, at, rank = spec.split(":")
    return int(at) if name == kind and os.environ.get("RANK", "0") == rank else None


class SeededNoise(Dataset):
    """Training samples plus noise drawn for each sample and epoch in the Dataset, so in the
    DataLoader workers, as image augmentation does (``data.augment.seeded``): every
    exact-resume test covers draws made there. The same sample gets the same noise in any
    process, so DDP ranks and one process still see equal data."""

    epoch_keyed = True

    def __init__(self, samples: Dataset, seed: int) -> None:
        self.samples = samples
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor]:
        epoch, index = key
        x, y = self.samples[index]
        with seeded(sample_seed(self.seed, epoch, index)):
            return x + 0.05 * torch.randn_like(x), y


class ToyTrainer(VanillaTrainer):
    """Three classes that a linear map of 16 random features separates."""

    def build_data(self) -> DataSplits:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(240, 1, 4, 4, generator=g)
        y = (x.flatten(1) @ torch.randn(16, 3, generator=g)).argmax(dim=1)
        full = TensorDataset(x, y)
        return DataSplits(
            train=SeededNoise(Subset(full, range(160)), self.opt.seed),
            val=Subset(full, range(160, 200)),
            test=Subset(full, range(200, 240)),
            input_shape=(1, 4, 4),
            num_outputs=3,
            class_names=["a", "b", "c"],
        )

    def build_model(self) -> nn.Module:
        """The MLP with dropout, or with ``--linear True`` one linear layer (no randomness)."""
        if self.opt.linear:
            return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        return super().build_model()

    def augment(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """The base flip (torch RNG) plus a brightness jitter from python's and numpy's RNGs."""
        inputs, targets = super().augment(inputs, targets)
        if self.opt.linear:
            return inputs, targets
        jitter = 1 + 0.05 * (random.random() - 0.5) + 0.05 * (np.random.rand() - 0.5)
        return inputs * jitter, targets

    def train_step(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        time.sleep(self.opt.step_delay)
        return super().train_step(inputs, targets)

    def compute_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        loss = super().compute_loss(outputs, targets)
        nan_at = fault("nan")
        return loss * math.nan if self.model.training and nan_at == self.global_step + 1 else loss

    saves = 0  # checkpoints this process has saved

    def save(self, kind: str, every_rank_here: bool = True) -> Path:
        self.saves += 1
        if fault("kill-in-save") != self.saves:
            return super().save(kind, every_rank_here)
        with mock.patch("utils.loop.run_state.save_checkpoint", write_half_then_die):
            return super().save(kind, every_rank_here)

    def validate(self, max_batches: int | None = None) -> dict[str, float]:
        if max_batches is None and fault("validate") == self.epoch + 1:
            raise RuntimeError(f"simulated failure in the validation of epoch {self.epoch + 1}")
        return super().validate(max_batches)


def build_toy_parser() -> argparse.ArgumentParser:
    """The vanilla options with toy defaults, plus a delay that makes steps last long enough
    for a test to send a signal in the middle of training."""
    parser = build_vanilla_parser()
    parser.set_defaults(proj_name="Toy", batch_size=16, epochs=3)
    parser.add_argument("--step_delay", type=non_negative_float, default=0.0, help="s per step")
    parser.add_argument(
        "--linear", type=str2bool, default=False, help="a linear model and no jitter"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    ToyTrainer(build_toy_parser().parse_args(argv)).train()


if __name__ == "__main__":
    run_main(main)
