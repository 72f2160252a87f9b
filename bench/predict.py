"""Prediction images/s of both tasks on image files, through the evaluators as a user runs them.

FashionMNIST: the first ``--images`` test images, written as 28x28 PNG files, classified into
``predictions.csv``. Carvana: every JPEG of ``--carvana_images`` (1918x1280 for Kaggle's) segmented
at ``--img_scale``, one full-size mask PNG each. The models are the task defaults (the MLP; a
width-16 UNet) freshly initialised, unless ``--vanilla_ckpt`` / ``--seg_ckpt`` name trained
checkpoints: a trained model's masks compress differently. Each pass is timed whole (loader
workers starting, decoding, the model, writing the outputs), ``--repeats`` times after a
warm-up pass; prints images/s of the median pass::

    python -m bench.predict --fashion_dir ./Dataset --carvana_images ./Dataset/Carvana
"""

import logging
import os
import statistics
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import torch
from PIL import Image

from data.fashion_mnist import load_split
from data.pairs import load_input
from data.splits import DataInfo
from eval import EvaluatorBase
from eval_seg_on_carvana import SegEvaluator, build_seg_eval_parser
from eval_vanilla import VanillaEvaluator, build_vanilla_eval_parser
from model.model_entry import build_model
from trainer_seg_on_carvana import build_seg_parser
from trainer_vanilla import build_vanilla_parser
from utils.cli import ArgumentParser, fraction, non_negative_int, positive_int, run_main
from utils.records.checkpoint import save_checkpoint


def fresh_checkpoint(path: Path, opt: Namespace, info: DataInfo) -> Path:
    """A checkpoint as a trainer writes it, of ``opt``'s model with its initial weights."""
    model = build_model(opt, info.input_shape, info.num_outputs)
    state = {"model": model.state_dict(), "config": vars(opt), "data": info.state_dict()}
    save_checkpoint(path, state)
    return path


def fashion_inputs(args: Namespace, folder: Path) -> tuple[Path, Path]:
    """The test images as PNG files in ``folder/images``, and the classifier's checkpoint."""
    test = load_split(Path(args.fashion_dir), train=False)
    (folder / "images").mkdir()
    for index in range(min(args.images, len(test))):
        Image.fromarray(test.data[index].numpy()).save(folder / "images" / f"{index:05d}.png")
    checkpoint = args.vanilla_ckpt
    if checkpoint is None:
        opt = build_vanilla_parser().parse_args([])
        info = DataInfo((1, 28, 28), len(test.classes), tuple(test.classes))
        checkpoint = fresh_checkpoint(folder / "Vanilla_ckpt.pth", opt, info)
    return folder / "images", Path(checkpoint)


def carvana_checkpoint(args: Namespace, folder: Path) -> Path:
    """The segmenter's checkpoint: ``--seg_ckpt`` or a fresh UNet of the task's defaults."""
    if args.seg_ckpt is not None:
        return Path(args.seg_ckpt)
    opt = build_seg_parser().parse_args(["--img_scale", str(args.img_scale)])
    first = next(Path(args.carvana_images).glob("*.jpg"))
    shape = tuple(load_input(first, opt, DataInfo((), 1, ("car",))).shape)
    info = DataInfo(shape, 1, ("car",))
    return fresh_checkpoint(folder / "UNet_ckpt.pth", opt, info)


def prediction_options(
    parser: ArgumentParser, checkpoint: Path, images: Path, folder: Path, args: Namespace
) -> Namespace:
    """An evaluator's options to predict ``images`` into ``folder/<checkpoint stem>``."""
    return parser.parse_args(
        [
            *("--model_path", str(checkpoint), "--input", str(images)),
            *("--save_path", str(folder / checkpoint.stem), "--overwrite", "True"),
            *("--gpu_devices", args.gpu_devices, "--num_workers", str(args.num_workers)),
        ]
    )


def pass_seconds(evaluator: EvaluatorBase) -> float:
    start = time.perf_counter()
    failed = evaluator.predict()
    if failed:
        raise RuntimeError(f"{failed} inputs could not be read")
    return time.perf_counter() - start


def measure(name: str, evaluator: EvaluatorBase, repeats: int) -> None:
    """Print images/s of the median of ``repeats`` passes, after one warm-up pass."""
    logging.getLogger().setLevel(logging.WARNING)  # no progress lines between the results
    pass_seconds(evaluator)
    times = [pass_seconds(evaluator) for _ in range(repeats)]
    images = len(evaluator.inputs)
    cfg = evaluator.cfg
    runs = ", ".join(f"{t:.2f}" for t in times)
    print(
        f"{name}: {images} images, {cfg.model_type}, batch {cfg.batch_size}, "
        f"{cfg.num_workers} workers: {images / statistics.median(times):.1f} images/s "
        f"(s per pass {runs})"
    )


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fashion_dir", default="./Dataset", help="holds FashionMNIST/raw")
    parser.add_argument("--carvana_images", default="./Dataset/Carvana/train", help="Carvana JPEGs")
    parser.add_argument("--images", type=positive_int, default=2000, help="FashionMNIST images")
    parser.add_argument("--img_scale", type=fraction, default=0.25, help="Carvana model scale")
    parser.add_argument("--vanilla_ckpt", default=None, help="a trained classifier checkpoint")
    parser.add_argument("--seg_ckpt", default=None, help="a trained segmenter checkpoint")
    parser.add_argument("--num_workers", type=non_negative_int, default=2, help="loader procs")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed passes of each")
    parser.add_argument("--gpu_devices", default="auto", help="'auto', 'cpu' or a GPU id")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        images, checkpoint = fashion_inputs(args, folder)
        parser = build_vanilla_eval_parser()
        vanilla = VanillaEvaluator(prediction_options(parser, checkpoint, images, folder, args))
        checkpoint, images = carvana_checkpoint(args, folder), Path(args.carvana_images)
        parser = build_seg_eval_parser()
        seg = SegEvaluator(prediction_options(parser, checkpoint, images, folder, args))
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"device {vanilla.device}, {torch.get_num_threads()} threads, torch "
            f"{torch.__version__}; {os.cpu_count()} CPUs, load average {load}"
        )
        measure("FashionMNIST PNGs -> predictions.csv", vanilla, args.repeats)
        size = "x".join(map(str, Image.open(seg.inputs[0]).size))
        measure(
            f"Carvana {size} JPEGs at img_scale {seg.cfg.img_scale:g} -> masks", seg, args.repeats
        )


if __name__ == "__main__":
    run_main(main)
