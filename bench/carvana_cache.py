"""Carvana images/s with and without the decode cache: the data path alone, and training.

Over every pair in ``--data_dir``, alternating the two ways of reading (cached uint8 arrays, or
decoding each JPEG/GIF pair on every access), it times passes of the DataLoader alone (what a
fast GPU would wait for) and epochs of UNet training on this machine. Prints the time to build
the cache, images/s and seconds of each, and the ratios::

    python -m bench.carvana_cache --data_dir ../shared/data/carvana --img_scale 0.25
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from data.carvana import find_pairs
from data.pairs import PairDataset
from loss.dice_loss import BCEDiceLoss
from model.unet import UNet
from utils.cli import ArgumentParser, fraction, non_negative_int, positive_int, run_main


def epoch_seconds(
    loader: DataLoader, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> float:
    """One training epoch, timed from the first batch request to the last step."""
    criterion = BCEDiceLoss()
    start = time.perf_counter()
    for images, masks in loader:
        loss = criterion(model(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def loader_seconds(loader: DataLoader) -> float:
    """One pass over the loader without a model: the cost of the data path alone."""
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def report(what: str, times: dict[str, list[float]], images: int) -> None:
    for name, values in times.items():
        mean = statistics.mean(values)
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"{what} with {name:6s}: {mean:.2f} s ({images / mean:.1f} images/s), runs {runs}")
    ratio = statistics.mean(times["decode"]) / statistics.mean(times["cache"])
    print(f"{what}: decode / cache time {ratio:.2f}x")


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="../shared/data/carvana", help="Kaggle layout")
    parser.add_argument("--img_scale", type=fraction, default=0.25, help="resize factor")
    parser.add_argument("--base_width", type=positive_int, default=16, help="UNet width")
    parser.add_argument("--batch_size", type=positive_int, default=4, help="images per step")
    parser.add_argument("--num_workers", type=non_negative_int, default=0, help="loader procs")
    parser.add_argument("--epochs", type=positive_int, default=2, help="timed passes of each")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    pairs = find_pairs(Path(args.data_dir))
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        cached = PairDataset(pairs, args.img_scale, Path(cache_dir))
        cold = time.perf_counter() - start
        start = time.perf_counter()
        PairDataset(pairs, args.img_scale, Path(cache_dir))
        warm = time.perf_counter() - start
        uncached = PairDataset(pairs, args.img_scale, cache_dir=None)
        height, width = cached.arrays(0)[1].shape

        model = UNet(3, 1, base_width=args.base_width)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loaders = {
            name: DataLoader(data, args.batch_size, shuffle=True, num_workers=args.num_workers)
            for name, data in (("cache", cached), ("decode", uncached))
        }
        passes: dict[str, list[float]] = {"cache": [], "decode": []}
        epochs: dict[str, list[float]] = {"cache": [], "decode": []}
        epoch_seconds(loaders["cache"], model, optimizer)  # warm-up: allocator, threads
        for _ in range(args.epochs):
            for name, loader in loaders.items():
                passes[name].append(loader_seconds(loader))
                epochs[name].append(epoch_seconds(loader, model, optimizer))

    print(
        f"{len(pairs)} pairs at scale {args.img_scale} ({width}x{height}), UNet width "
        f"{args.base_width}, batch {args.batch_size}, {args.num_workers} workers, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"build cache: {cold:.2f} s cold ({len(pairs) / cold:.1f} pairs/s), {warm:.2f} s warm")
    report("data pass", passes, len(pairs))
    report("training epoch", epochs, len(pairs))


if __name__ == "__main__":
    run_main(main)
