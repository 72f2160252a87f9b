"""FashionMNIST samples/s of the data path alone: in memory vs torchvision's per-sample loader.

Times one shuffled pass over the train split, batch by batch as the trainer gets them (on the
device), consuming each batch with a sum only, so the model's cost is left out. The in-memory
path (``TensorSplit`` + ``MemoryLoader``) and torchvision's per-sample DataLoader (PIL image,
``ToTensor``, ``Normalize`` per sample) with each ``--workers`` count are run in turn,
``--repeats`` times, after a short warm-up of each. Prints samples/s of the median pass and
the ratios::

    python -m bench.loader --data_dir ./Dataset
"""

import argparse
import os
import statistics
import time
from argparse import Namespace
from collections.abc import Iterable

import torch

from data.data_entry import build_loader
from data.fashion_mnist import build_fashion_mnist
from utils.cli import ArgumentParser, positive_int, run_main
from utils.loop.device import move_to, select_device

WARMUP_BATCHES = 20


def pass_seconds(loader: Iterable, device: torch.device, max_batches: int | None = None) -> float:
    """One pass (or its first ``max_batches``), each batch moved to ``device`` and summed.

    The sums add up on the device and are read once at the end, which also waits for a GPU.
    """
    total = torch.zeros((), device=device)
    start = time.perf_counter()
    for step, batch in enumerate(loader, start=1):
        inputs, targets = move_to(batch, device)
        total += inputs.sum() + targets.sum()
        if step == max_batches:
            break
    total.item()
    return time.perf_counter() - start


def build_loaders(
    args: argparse.Namespace, device: torch.device
) -> tuple[dict[str, Iterable], int]:
    """The train-split loaders to compare, by name, and the number of samples in a pass."""
    opt = Namespace(
        data_dir=args.data_dir,
        seed=0,
        val_ratio=0.1,
        train_val_sample_rate=1.0,
        test_sample_rate=1.0,
        batch_size=args.batch_size,
    )
    loaders: dict[str, Iterable] = {}
    memory = build_fashion_mnist(Namespace(**vars(opt), in_memory=True)).train
    loaders["in memory"] = build_loader(
        memory, Namespace(**vars(opt), num_workers=0), shuffle=True, device=device
    )
    per_sample = build_fashion_mnist(Namespace(**vars(opt), in_memory=False)).train
    for workers in args.workers:
        loaders[f"per-sample, {workers} workers"] = build_loader(
            per_sample, Namespace(**vars(opt), num_workers=workers), shuffle=True, device=device
        )
    return loaders, len(memory)


def worker_counts(text: str) -> list[int]:
    """``"0,2"`` -> ``[0, 2]``: the DataLoader worker counts to time."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts such as 0,2, got {text!r}") from None
    if any(count < 0 for count in counts):
        raise argparse.ArgumentTypeError(f"worker counts must be >= 0, got {text!r}")
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="./Dataset", help="holds FashionMNIST/raw")
    parser.add_argument("--batch_size", type=positive_int, default=64, help="samples per batch")
    parser.add_argument("--workers", type=worker_counts, default=[0, 2], help="per-sample path")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed passes of each")
    parser.add_argument(
        "--gpu_devices", default="auto", help="where batches go: 'auto', 'cpu' or a GPU id"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch intra-op threads (default: torch's); on a busy machine 1 avoids threads "
        "waiting for each other in every small batch op",
    )
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device, _ = select_device(args.gpu_devices)
    loaders, samples = build_loaders(args, device)
    for loader in loaders.values():  # worker start-up, allocator, first-touch of the data
        pass_seconds(loader, device, max_batches=WARMUP_BATCHES)
    times: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(args.repeats):
        for name, loader in loaders.items():
            times[name].append(pass_seconds(loader, device))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"FashionMNIST train split: {samples} samples, batch {args.batch_size}, device {device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; "
        f"{os.cpu_count()} CPUs, load average {load}"
    )
    # The median: on a shared machine one pass can stall for seconds and swamp a mean.
    rates = {name: samples / statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(f"{name:22s}: {rates[name]:10.0f} samples/s, s per pass {runs}")
    for name in loaders:
        if name != "in memory":
            print(f"in memory / {name}: {rates['in memory'] / rates[name]:.1f}x")


if __name__ == "__main__":
    run_main(main)
