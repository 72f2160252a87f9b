"""``--data_type ImageFolder`` against the built-in FashionMNIST: the same images, the same model.

Writes the official FashionMNIST train and test sets out as PNG class folders,
``OUT/train/<class>/<index>.png`` and ``OUT/test/<class>/<index>.png``, then trains the same
model with the same epochs and seed twice, once on ``--data_type FashionMNIST`` and once on
``--data_type ImageFolder --data_dir OUT``, and evaluates each best checkpoint on its test set
as ``eval_vanilla.py`` does. Prints test accuracy, the mean epoch time, and the difference in
points; the target is at most 0.5 points::

    python -m bench.image_folder_parity --fashion_dir ../shared/data/fashion-mnist --epochs 5
"""

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from data.fashion_mnist import FILES, load_split
from eval_vanilla import VanillaEvaluator, build_vanilla_eval_parser
from trainer_vanilla import VanillaTrainer, build_vanilla_parser
from utils.cli import ArgumentParser, positive_int, run_main
from utils.errors import UsageError
from utils.records.history import METRICS_NAME, read_metrics
from utils.table import aligned


def link_fashion_mnist(source: Path, root: Path) -> Path:
    """``root`` laid out as torchvision expects, its raw files links to those in ``source``."""
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        raise UsageError(f"--fashion_dir {source}: no {missing[0]}; expected {', '.join(FILES)}")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        (raw / name).symlink_to(source.resolve() / name)
    return root


def folder_name(class_name: str) -> str:
    """A class name as a folder name: ``T-shirt/top`` -> ``T-shirt_top``."""
    return class_name.replace("/", "_")


def save_png(pixels: np.ndarray, path: Path) -> None:
    Image.fromarray(pixels).save(path)


def write_class_folders(root: Path, out: Path) -> None:
    """The FashionMNIST train and test sets under ``root`` as ``out/<split>/<class>/<i>.png``."""
    for split, train in (("train", True), ("test", False)):
        data = load_split(root, train)
        folders = [out / split / folder_name(name) for name in data.classes]
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)

        labels = data.targets.tolist()
        paths = [folders[label] / f"{index:05d}.png" for index, label in enumerate(labels)]
        with ThreadPoolExecutor(max_workers=4) as pool:  # PIL encodes without the GIL
            list(pool.map(save_png, data.data.numpy(), paths))


def train_and_evaluate(args: list[str]) -> tuple[float, float]:
    """Train with ``args``, then evaluate the best checkpoint: test accuracy and the mean
    seconds of an epoch."""
    trainer = VanillaTrainer(build_vanilla_parser().parse_args(args))
    trainer.train()
    epochs = read_metrics(trainer.run_dir / METRICS_NAME)
    checkpoint = str(trainer.checkpoint_path("best"))
    evaluator = VanillaEvaluator(
        build_vanilla_eval_parser().parse_args(["--model_path", checkpoint])
    )
    metrics = evaluator.run()
    return metrics["accuracy"], statistics.mean(row["epoch_time"] for row in epochs)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fashion_dir", default="../shared/data/fashion-mnist", help="the official gz files"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="where the PNG folders go (kept, and reused if there); default: a temporary folder",
    )
    parser.add_argument("--model_type", default="Vanilla", help="the model both runs train")
    parser.add_argument("--epochs", type=positive_int, default=5, help="epochs of each run")
    parser.add_argument("--seed", type=int, default=42, help="the seed of both runs")
    parser.add_argument("--gpu_devices", default="auto", help="'auto', 'cpu' or a GPU id")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = link_fashion_mnist(Path(args.fashion_dir), work / "fashion")
        out = Path(args.out) if args.out else work / "folders"
        if not (out / "test").is_dir():
            start = time.perf_counter()
            write_class_folders(root, out)
            print(f"wrote 70000 PNG files to {out} in {time.perf_counter() - start:.1f} s")
        common = ["--model_type", args.model_type, "--epochs", str(args.epochs)]
        common += ["--seed", str(args.seed), "--gpu_devices", args.gpu_devices]
        common += ["--output_dir", str(work / "Results")]
        results = {
            "FashionMNIST": train_and_evaluate(
                ["--data_type", "FashionMNIST", "--data_dir", str(root), *common]
            ),
            "ImageFolder": train_and_evaluate(
                ["--data_type", "ImageFolder", "--data_dir", str(out), *common]
            ),
        }
    rows = [["data_type", "test accuracy", "epoch time"]]
    rows += [[name, f"{acc:.4f}", f"{seconds:.1f} s"] for name, (acc, seconds) in results.items()]
    print(f"{args.model_type}, {args.epochs} epochs, seed {args.seed}")
    print(aligned(rows))
    difference = 100 * (results["ImageFolder"][0] - results["FashionMNIST"][0])
    print(f"ImageFolder - FashionMNIST: {difference:+.2f} points of test accuracy")


if __name__ == "__main__":
    run_main(main)
