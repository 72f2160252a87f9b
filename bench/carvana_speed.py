"""Carvana training speed: the data path on the device against the per-sample one, and both
against what the model alone can do.

All parts use the task's defaults (UNet width 16 at ``--img_scale 0.25`` = 480x320, batch 4,
``--augment carvana``) on fold 0 of 3 (the views of two cars), in one process:

1. the training loader alone, images/s: the per-sample DataLoader (``--in_memory False``:
   decode cache, torchvision transforms per pair, collate) with 0 and ``--num_workers``
   workers, against the pairs held as tensors on the device and augmented a batch at a time
   (``--in_memory True``, the default), a pass of each in turn, ``2 * --epochs`` times;
2. a training epoch of the trainer with each path, alternating epoch by epoch;
3. the model alone: forward, backward and optimizer step on one batch already on the device,
   over and over; an epoch limited by the model reaches its images/s.

    python -m bench.carvana_speed --data_dir ../shared/data/carvana --epochs 3
"""

import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainer_seg_on_carvana import SegTrainer, build_seg_parser
from utils.cli import ArgumentParser, non_negative_int, positive_int, run_main
from utils.loop.amp import synchronize


def seg_trainer(args: list[str], out: Path, *extra: str) -> SegTrainer:
    options = build_seg_parser().parse_args([*args, "--output_dir", str(out), *extra])
    return SegTrainer(options)


def median_rate(images: int, seconds: list[float]) -> float:
    return images / statistics.median(seconds)


def loader_seconds(trainer: SegTrainer, epoch: int) -> float:
    """Seconds of one pass of the training loader alone; the pass waits for the device, where
    the in-memory path augments."""
    trainer.train_loader.sampler.set_epoch(epoch)
    start = time.perf_counter()
    for _ in trainer.train_loader:
        pass
    synchronize(trainer.device)
    return time.perf_counter() - start


def epoch_seconds(trainer: SegTrainer, epoch: int) -> float:
    """One training pass of the trainer (its loop, meters and checks included)."""
    trainer.epoch, trainer.batch_in_epoch = epoch, 0
    start = time.perf_counter()
    trainer.train_one_epoch()
    synchronize(trainer.device)
    return time.perf_counter() - start


def model_seconds(trainer: SegTrainer, steps: int) -> float:
    """Seconds per step of the model alone on one batch already on the device."""
    inputs, targets = trainer.to_device(next(iter(trainer.train_loader)))

    def step() -> None:
        with trainer.autocast():
            loss = trainer.compute_loss(trainer.model(inputs), targets)
        loss.backward()
        trainer.optimizer.step()
        trainer.optimizer.zero_grad(set_to_none=True)

    step()
    synchronize(trainer.device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(trainer.device)
    return (time.perf_counter() - start) / steps


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
        device = seg_trainer(common, Path(tmp) / "device")
        workers = seg_trainer(common, Path(tmp) / "workers", "--in_memory", "False")
        inline = seg_trainer(
            common, Path(tmp) / "inline", "--in_memory", "False", "--num_workers", "0"
        )
        samples = len(device.data.train)
        print(
            f"UNet width {device.opt.base_width}, {samples} training images of "
            f"{device.data.input_shape[2]}x{device.data.input_shape[1]}, batch "
            f"{device.opt.batch_size}, augment {device.opt.augment}, device {device.device}, "
            f"{torch.get_num_threads()} threads, amp {device.amp[0]} ({device.amp[1]}), "
            f"channels_last {device.channels_last}"
        )

        loaders = {
            "per sample, 0 workers": inline,
            f"per sample, {args.num_workers} workers": workers,
            "on the device": device,
        }
        passes: dict[str, list[float]] = {name: [] for name in loaders}
        for epoch in range(2 * args.epochs + 1):  # alternating; the first pass warms up
            for name, trainer in loaders.items():
                passes[name].append(loader_seconds(trainer, epoch))
        rates = {name: median_rate(samples, seconds[1:]) for name, seconds in passes.items()}
        for name, rate in rates.items():
            print(f"loader alone, {name}: {rate:.0f} images/s")
        fastest_per_sample = max(v for k, v in rates.items() if k.startswith("per sample"))
        print(
            f"on the device: {rates['on the device'] / fastest_per_sample:.2f}x the faster "
            "per-sample loader"
        )

        times: dict[str, list[float]] = {"per sample": [], "on the device": []}
        epoch_seconds(workers, 0)  # warm-up: allocator, threads, workers
        epoch_seconds(device, 0)
        for epoch in range(1, args.epochs + 1):
            times["per sample"].append(epoch_seconds(workers, epoch))
            times["on the device"].append(epoch_seconds(device, epoch))
        for name, seconds in times.items():
            spread = ", ".join(f"{t:.2f}" for t in seconds)
            print(
                f"training epoch, {name}: {statistics.median(seconds):.2f} s median ({spread}), "
                f"{median_rate(samples, seconds):.1f} images/s"
            )
        model = device.opt.batch_size / model_seconds(
            device, steps=max(4, 2 * len(device.train_loader))
        )
        epoch = median_rate(samples, times["on the device"])
        print(
            f"model alone: {model:.1f} images/s; a training epoch on the device reaches "
            f"{epoch / model:.0%} of it"
        )


if __name__ == "__main__":
    run_main(main)
