"""Evaluate a classifier checkpoint (FashionMNIST or image folders), or classify image files
with it.

    python eval_vanilla.py --model_path Results/Vanilla/<timestamp>/Vanilla_best_ckpt.pth
    python eval_vanilla.py --model_path Results/Vanilla/<timestamp>/Vanilla_best_ckpt.pth \
        --input shirts/ more/*.png --save_path preds/

The first reports accuracy, per-class accuracy and a confusion matrix on the test split; the
second writes ``preds/predictions.csv``: each file's class, its probability and the runners-up.
"""

import argparse
import csv
import io
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from eval import EvaluatorBase, build_eval_parser
from utils.atomic import atomic_write
from utils.cli import positive_int, run_main
from utils.loop.export import Head
from utils.loop.metrics import confusion_matrix, per_class_accuracy
from utils.plots import save_confusion_matrix

log = logging.getLogger(__name__)
EXAMPLES = 10
PREDICTIONS = "predictions.csv"


def spread_indices(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``, first and last included: a test
    split ordered by class (class folders) shows examples of every part of it."""
    if total <= count:
        return list(range(total))
    step = (total - 1) / max(count - 1, 1)
    return [round(i * step) for i in range(count)]


class VanillaEvaluator(EvaluatorBase):
    """Collects predicted and true labels, then reports accuracy overall and per class."""

    def reset(self) -> None:
        self.preds: list[Tensor] = []
        self.targets: list[Tensor] = []
        self.rows: list[list[str]] = []

    def update(self, inputs: Tensor, outputs: Tensor, targets: Tensor) -> None:
        self.preds.append(outputs.argmax(dim=1).cpu())
        self.targets.append(targets.cpu())

    def compute(self) -> dict[str, Any]:
        preds, targets = torch.cat(self.preds), torch.cat(self.targets)
        self.confusion = confusion_matrix(preds, targets, self.data_info.num_outputs)
        names = self.data_info.class_names
        self.examples = [
            (i, names[preds[i]], names[targets[i]]) for i in spread_indices(len(targets), EXAMPLES)
        ]
        return {
            "accuracy": (preds == targets).double().mean().item(),
            "samples": len(targets),
            "per_class_accuracy": dict(
                zip(names, per_class_accuracy(self.confusion).tolist(), strict=True)
            ),
        }

    def report(self, metrics: dict[str, Any]) -> None:
        log.info("test accuracy %.4f on %d samples", metrics["accuracy"], metrics["samples"])
        for name, acc in metrics["per_class_accuracy"].items():
            log.info("  %-12s %.4f", name, acc)
        for index, pred, label in self.examples:
            mark = "" if pred == label else "  (wrong)"
            log.info("  test sample %-6d predicted %-12s label %s%s", index, pred, label, mark)
        path = self.output_path("confusion_matrix.png")
        title = f"{self.cfg.model_type} on {self.cfg.data_type} test: acc {metrics['accuracy']:.4f}"
        save_confusion_matrix(self.confusion, list(self.data_info.class_names), path, title)
        log.info("confusion matrix saved to %s", path)

    # ----- prediction ------------------------------------------------------------------------

    @property
    def activation(self) -> str:
        return "softmax"

    @property
    def top_k(self) -> int:
        return min(self.opt.top_k, self.data_info.num_outputs)

    def prediction_files(self) -> list[Path]:
        return [self.save_path / PREDICTIONS]

    def export_head(self) -> tuple[Head, str]:
        return (
            lambda logits, images: logits.softmax(dim=1),
            "class probabilities (N, K), in the order of class_names",
        )

    def save_predictions(
        self, paths: list[Path], outputs: Tensor, sizes: list[tuple[int, int]]
    ) -> None:
        """One row per image: the file, then the top classes with their probabilities."""
        probs, classes = outputs.softmax(dim=1).topk(self.top_k, dim=1)
        names = self.data_info.class_names
        for path, top_probs, top_classes in zip(
            paths, probs.tolist(), classes.tolist(), strict=True
        ):
            row = [str(path)]
            for index, prob in zip(top_classes, top_probs, strict=True):
                row += [names[index], f"{prob:.6f}"]
            self.rows.append(row)

    def finish_predictions(self) -> None:
        """``predictions.csv``: file, class, probability, then class_2, probability_2 ..."""
        header = ["file", "class", "probability"]
        for rank in range(2, self.top_k + 1):
            header += [f"class_{rank}", f"probability_{rank}"]
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([header, *self.rows])
        path = self.save_path / PREDICTIONS
        atomic_write(path, lambda f: f.write(text.getvalue().encode()))
        log.info("%d predictions saved to %s", len(self.rows), path)


def build_vanilla_eval_parser() -> argparse.ArgumentParser:
    parser = build_eval_parser(
        "Evaluate a classifier (FashionMNIST or image folders), or classify image files."
    )
    parser.add_argument(
        "--top_k", type=positive_int, default=3, help="with --input: classes listed per image"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    VanillaEvaluator(build_vanilla_eval_parser().parse_args(argv)).run()


if __name__ == "__main__":
    run_main(main)
