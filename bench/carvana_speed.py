"""Carvana training speed: the task's defaults before and now, side by side, and the data path.

Both train the same width-16 UNet at ``--img_scale 0.25`` (480x320) with batch 4 on the same
pairs (fold 0 of 3: the views of two cars), through the trainer's own epoch, alternating
epoch by epoch in one process so that both see the same machine. "before" is what the task
did by default before: fp32, NCHW, BatchNorm, a random flip of each batch. "now" is its
defaults today: ``--amp auto``, ``--channels_last auto``, ``--norm group`` and ``--augment
carvana`` (per-sample augmentation in the Dataset). Prints the median epoch time and images/s
of each and their ratio, and images/s of the loader alone, with and without the augmentation,
for 0 and 2 workers::

    python -m bench.carvana_speed --data_dir ../shared/data/carvana --epochs 3
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainer_seg_on_carvana import SegTrainer, build_seg_parser
from utils.cli import ArgumentParser, non_negative_int, positive_int, run_main

BEFORE = (
    *("--amp", "off", "--channels_last", "False", "--norm", "batch"),
    *("--augment", "none", "--flip", "True"),
)


def seg_trainer(args: list[str], out: Path, *extra: str) -> SegTrainer:
    options = build_seg_parser().parse_args([*args, "--output_dir", str(out), *extra])
    return SegTrainer(options)


def epoch_seconds(trainer: SegTrainer, epoch: int) -> float:
    """One training pass of the trainer (its loop, meters and checks included)."""
    trainer.epoch, trainer.batch_in_epoch = epoch, 0
    start = time.perf_counter()
    trainer.train_one_epoch()
    return time.perf_counter() - start


def loader_images_per_second(trainer: SegTrainer, epochs: int) -> float:
    """Images/s of the training loader alone (decode cache, augmentation, collate)."""
    seconds = []
    for epoch in range(epochs):
        trainer.train_loader.sampler.set_epoch(epoch)
        start = time.perf_counter()
        images = sum(len(images) for images, _ in trainer.train_loader)
        seconds.append(time.perf_counter() - start)
    return images / statistics.median(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="../shared/data/carvana", help="Kaggle layout")
    parser.add_argument("--epochs", type=positive_int, default=3, help="timed epochs of each")
    parser.add_argument("--num_workers", type=non_negative_int, default=2, help="loader procs")
    parser.add_argument("--gpu_devices", default="auto", help="'auto', 'cpu' or a GPU id")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        common = ["--data_dir", args.data_dir, "--cache_dir", f"{tmp}/cache", "--folds", "3"]
        common += ["--gpu_devices", args.gpu_devices, "--num_workers", str(args.num_workers)]
        before = seg_trainer(common, Path(tmp) / "before", *BEFORE)
        now = seg_trainer(common, Path(tmp) / "now")
        samples = len(before.data.train)
        print(
            f"UNet width {before.opt.base_width}, {samples} training images of "
            f"{before.data.input_shape[2]}x{before.data.input_shape[1]}, batch "
            f"{before.opt.batch_size}, {args.num_workers} workers, device {before.device}, "
            f"{torch.get_num_threads()} threads; now: amp {now.amp[0]} ({now.amp[1]}), "
            f"channels_last {now.channels_last}, augment {now.opt.augment}"
        )
        times: dict[str, list[float]] = {"before": [], "now": []}
        epoch_seconds(before, 0)  # warm-up: allocator, threads, workers
        epoch_seconds(now, 0)
        for epoch in range(1, args.epochs + 1):
            times["before"].append(epoch_seconds(before, epoch))
            times["now"].append(epoch_seconds(now, epoch))
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, median in medians.items():
            spread = ", ".join(f"{t:.1f}" for t in times[name])
            print(
                f"{name:>6}: epoch {median:.1f} s median ({spread}), "
                f"{samples / median:.1f} images/s"
            )
        print(f"now is {medians['before'] / medians['now']:.2f}x as fast as before")

        for workers in (0, 2):
            rates = {}
            for augment in ("none", "carvana"):
                extra = ("--augment", augment, "--num_workers", str(workers))
                trainer = seg_trainer(common, Path(tmp) / f"loader-{workers}-{augment}", *extra)
                rates[augment] = loader_images_per_second(trainer, args.epochs)
            print(
                f"loader alone, {workers} workers: {rates['none']:.0f} images/s without "
                f"augmentation, {rates['carvana']:.0f} with it"
            )


if __name__ == "__main__":
    run_main(main)
