"""Per-epoch cost of TrainerBase against a hand-written PyTorch loop doing the same work.

Both train the same model (same class, same seed) with the same optimizer, scheduler, loss, data
path and batch size, one epoch at a time, alternating trainer and hand-written loop in one
process so that both see the same machine state. Only the training pass is timed (validation
is the same forward pass in both). Prints the median epoch of each and their ratio; the
target is a ratio of at most 1.03::

    python -m bench.overhead --data_dir ./Dataset --repeats 5
"""

import statistics
import tempfile
import time

import torch
from torch import nn

from data.data_entry import build_loader
from trainer_vanilla import VanillaTrainer, build_vanilla_parser
from utils.cli import positive_int, run_main
from utils.loop.optimizer import build_optimizer
from utils.loop.scheduler import build_scheduler


class HandWrittenLoop:
    """The loop a user would write: forward, loss, backward, step, schedule, nothing else.

    It reuses the trainer's options, model class and data split, but builds its own model,
    optimizer, scheduler and loader, once, and keeps training them across epochs as the
    trainer does: both then time epochs of a model at the same stage of training (late
    epochs of Adam can be slower on a CPU, with denormal numbers in its state).
    """

    def __init__(self, trainer: VanillaTrainer) -> None:
        opt = trainer.opt
        self.device = trainer.device
        torch.manual_seed(opt.seed)
        self.model = trainer.build_model().to(self.device)
        self.optimizer = build_optimizer(self.model, opt)
        self.loader = build_loader(trainer.data.train, opt, shuffle=True, device=self.device)
        self.scheduler = build_scheduler(self.optimizer, opt, len(self.loader))
        self.criterion = nn.CrossEntropyLoss()

    def epoch(self, epoch: int) -> float:
        """Train one epoch; the seconds it took."""
        self.loader.sampler.set_epoch(epoch)
        self.model.train()
        total = torch.zeros((), device=self.device)
        start = time.perf_counter()
        for inputs, targets in self.loader:
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            loss = self.criterion(self.model(inputs), targets)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            total += loss.detach()
        total.item()  # waits for a GPU to finish, as the trainer's epoch summary does
        return time.perf_counter() - start


def trainer_epoch(trainer: VanillaTrainer, epoch: int) -> float:
    """One ``train_one_epoch`` of the trainer (meters, progress lines, checks included)."""
    trainer.epoch, trainer.batch_in_epoch = epoch, 0
    start = time.perf_counter()
    trainer.train_one_epoch()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = build_vanilla_parser()
    parser.description = __doc__.splitlines()[0]
    parser.add_argument("--repeats", type=positive_int, default=5, help="epochs of each")
    opt = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as out:
        opt.output_dir = out
        trainer = VanillaTrainer(opt)
        print(
            f"{opt.model_type} on {opt.data_type} ({len(trainer.data.train)} train samples), "
            f"batch {opt.batch_size}, in_memory {opt.in_memory}, amp {opt.amp}, device "
            f"{trainer.device}, torch {torch.__version__}, {torch.get_num_threads()} threads"
        )
        loop = HandWrittenLoop(trainer)
        loop.epoch(0)  # warm-up: allocator, kernels, lazy inits
        trainer_epoch(trainer, 0)
        mine, theirs = [], []
        for repeat in range(1, opt.repeats + 1):
            mine.append(trainer_epoch(trainer, repeat))
            theirs.append(loop.epoch(repeat))
            print(f"epoch {repeat + 1}: trainer {mine[-1]:.2f} s, hand-written {theirs[-1]:.2f} s")
    a, b = statistics.median(mine), statistics.median(theirs)
    print(f"median epoch: trainer {a:.2f} s, hand-written loop {b:.2f} s, ratio {a / b:.3f}")


if __name__ == "__main__":
    run_main(main)
