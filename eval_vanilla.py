"""Evaluate a FashionMNIST classifier checkpoint: accuracy, per-class accuracy, confusion matrix.

python eval_vanilla.py --model_path Results/Vanilla/<timestamp>/Vanilla_best_ckpt.pth
"""

import logging
from typing import Any

import torch
from torch import Tensor

from eval import EvaluatorBase, build_eval_parser
from utils.cli import run_main
from utils.metrics import confusion_matrix, per_class_accuracy
from utils.plots import save_confusion_matrix

log = logging.getLogger(__name__)
EXAMPLES = 10


class VanillaEvaluator(EvaluatorBase):
    """Collects predicted and true labels, then reports accuracy overall and per class."""

    def reset(self) -> None:
        self.preds: list[Tensor] = []
        self.targets: list[Tensor] = []

    def update(self, inputs: Tensor, outputs: Tensor, targets: Tensor) -> None:
        self.preds.append(outputs.argmax(dim=1).cpu())
        self.targets.append(targets.cpu())

    def compute(self) -> dict[str, Any]:
        preds, targets = torch.cat(self.preds), torch.cat(self.targets)
        self.confusion = confusion_matrix(preds, targets, self.data.num_classes)
        names = self.data.class_names
        self.examples = [
            (names[p], names[t])
            for p, t in zip(preds[:EXAMPLES].tolist(), targets[:EXAMPLES].tolist(), strict=True)
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
        for pred, label in self.examples:
            log.info("  predicted %-12s label %s", pred, label)
        path = self.output_path("confusion_matrix.png")
        title = f"{self.cfg.model_type} on {self.cfg.data_type} test: acc {metrics['accuracy']:.4f}"
        save_confusion_matrix(self.confusion, self.data.class_names, path, title)
        log.info("confusion matrix saved to %s", path)


def main(argv: list[str] | None = None) -> None:
    parser = build_eval_parser("Evaluate a FashionMNIST classifier checkpoint.")
    VanillaEvaluator(parser.parse_args(argv)).run()


if __name__ == "__main__":
    run_main(main)
