"""``--data_type SegFolder`` against the built-in Carvana: the same pairs, the same recipe.

Writes the Carvana pairs (Kaggle's layout) out as ``OUT/images/<id>.png`` +
``OUT/masks/<id>_mask.png``, pixel for pixel, and once more with masks of three classes (the
car's upper half class 1, its lower half class 2). Then trains the
segmentation task's recipe on one fold three times, with the same epochs and seed: on
``--data_type Carvana``, on the binary folders and on the three-class folders, the last two
with ``--group_pattern '^([^_]+)_'`` so that the folds are the same cars. Prints each best
checkpoint's test Dice at full resolution (per class for the three classes) and the difference
of the binary folders from Carvana; the target is at most 0.01::

    python -m bench.seg_folder_parity --carvana_dir ../shared/data/carvana --epochs 10
"""

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from data.synthetic_carvana import write_seg_folder
from eval_seg_on_carvana import SegEvaluator, build_seg_eval_parser
from trainer_seg_on_carvana import SegTrainer, build_seg_parser
from utils.cli import ArgumentParser, non_negative_int, positive_int, run_main
from utils.records.history import METRICS_NAME, read_metrics
from utils.table import aligned

CAR = "^([^_]+)_"  # Carvana's <car>_<view>: the car


def train_and_evaluate(args: list[str]) -> tuple[dict[str, Any], float]:
    """Train with ``args``, then evaluate the best checkpoint: its test metrics and the mean
    seconds of an epoch."""
    trainer = SegTrainer(build_seg_parser().parse_args(args))
    trainer.train()
    epochs = read_metrics(trainer.run_dir / METRICS_NAME)
    checkpoint = str(trainer.checkpoint_path("best"))
    evaluator = SegEvaluator(build_seg_eval_parser().parse_args(["--model_path", checkpoint]))
    return evaluator.run(), statistics.mean(row["epoch_time"] for row in epochs)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--carvana_dir", default="../shared/data/carvana", help="pairs in Kaggle's layout"
    )
    parser.add_argument("--epochs", type=positive_int, default=10, help="epochs of each run")
    parser.add_argument("--folds", type=positive_int, default=3, help="folds of the cars")
    parser.add_argument("--fold", type=non_negative_int, default=0, help="the fold tested")
    parser.add_argument("--seed", type=int, default=42, help="the seed of every run")
    parser.add_argument("--gpu_devices", default="auto", help="'auto', 'cpu' or a GPU id")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        count = write_seg_folder(Path(args.carvana_dir), work / "binary")
        write_seg_folder(Path(args.carvana_dir), work / "halves", halves=True)
        print(f"wrote {count} pairs twice as PNG folders in {time.perf_counter() - start:.1f} s")
        common = ["--epochs", str(args.epochs), "--seed", str(args.seed), "--num_workers", "0"]
        common += ["--folds", str(args.folds), "--fold", str(args.fold)]
        common += ["--gpu_devices", args.gpu_devices, "--output_dir", str(work / "Results")]
        folder = ["--data_type", "SegFolder", "--mask_suffix", "_mask", "--group_pattern", CAR]
        runs = {
            "Carvana": ["--data_type", "Carvana", "--data_dir", args.carvana_dir],
            "SegFolder binary": [*folder, "--data_dir", str(work / "binary")],
            "SegFolder 3 classes": [*folder, "--data_dir", str(work / "halves")],
        }
        results = {name: train_and_evaluate([*run, *common]) for name, run in runs.items()}
    rows = [["data", "test dice", "test iou", "per class dice", "epoch time"]]
    for name, (metrics, seconds) in results.items():
        per_class = metrics["per_class_dice"] if name.endswith("classes") else {}
        classes = ", ".join(f"{k} {v:.4f}" for k, v in per_class.items())
        rows.append(
            [name, f"{metrics['dice']:.4f}", f"{metrics['iou']:.4f}", classes, f"{seconds:.1f} s"]
        )
    print(f"UNet recipe of the task, fold {args.fold} of {args.folds}, {args.epochs} epochs")
    print(aligned(rows))
    difference = results["SegFolder binary"][0]["dice"] - results["Carvana"][0]["dice"]
    print(f"SegFolder binary - Carvana: {difference:+.4f} test Dice")


if __name__ == "__main__":
    run_main(main)
