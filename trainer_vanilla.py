"""Train a classifier on FashionMNIST, or on your own images in class folders (the MLP
``Vanilla`` by default).

    python trainer_vanilla.py --model_type Vanilla --data_type FashionMNIST \
        --output_dir ./Results/Vanilla/ --gpu_devices 0 --data_dir ./Dataset
    python trainer_vanilla.py --model_type SmallCNN --data_type ImageFolder --data_dir photos/

``--data_type ImageFolder`` reads ``photos/<class>/<image>`` (or ``photos/train/<class>/``
with optional ``val/`` and ``test/``); see ``data/image_folder.py``.
"""

import argparse

from torch import Tensor

from trainer import TrainerBase, build_parser
from utils.cli import run_main
from utils.loop.metrics import correct


class VanillaTrainer(TrainerBase):
    """Cross-entropy classification, reporting accuracy beside the loss."""

    EVAL_SCRIPT = "eval_vanilla.py"

    def compute_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        return {"acc": correct(outputs, targets)}


def build_vanilla_parser() -> argparse.ArgumentParser:
    parser = build_parser(
        "Train a classifier on FashionMNIST, or on image folders (--data_type ImageFolder)."
    )
    parser.set_defaults(
        proj_name="Vanilla",
        model_type="Vanilla",
        data_type="FashionMNIST",
        data_dir="./Dataset",
        output_dir="./Results/Vanilla",
        monitor="val_acc",
        monitor_mode="max",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    VanillaTrainer(build_vanilla_parser().parse_args(argv)).train()


if __name__ == "__main__":
    run_main(main)
