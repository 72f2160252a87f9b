"""Evaluate a Carvana segmentation checkpoint: Dice and IoU on the test cars, optional pictures.

    python eval_seg_on_carvana.py --model_path ./Results/Carvana/<ts>/UNet_best_ckpt.pth \
        --save_path ./test_viz/ --viz True
"""

import logging
from typing import Any

import torch
from torch import Tensor
from torchvision.utils import save_image

from eval import EvaluatorBase, build_eval_parser
from utils.cli import positive_int, run_main, str2bool
from utils.metrics import dice_and_iou_per_image
from utils.plots import seg_panel

log = logging.getLogger(__name__)


class SegEvaluator(EvaluatorBase):
    """Per-image Dice and IoU at threshold 0.5, averaged over the test split.

    With ``--viz True`` every ``--viz_freq``-th test image is saved as ``<id>_image.png``,
    ``<id>_mask.png``, ``<id>_pred.png`` and the side-by-side ``<id>_panel.png``.
    """

    def reset(self) -> None:
        self.dice: list[Tensor] = []
        self.iou: list[Tensor] = []
        self.seen = 0

    def update(self, inputs: Tensor, outputs: Tensor, targets: Tensor) -> None:
        dice, iou = dice_and_iou_per_image(outputs, targets)
        self.dice.append(dice.cpu())
        self.iou.append(iou.cpu())
        if self.opt.viz:
            preds = (outputs.sigmoid() > 0.5).float()
            for k in range(len(inputs)):
                if (self.seen + k) % self.opt.viz_freq == 0:
                    self.save_pictures(self.seen + k, inputs[k], targets[k], preds[k])
        self.seen += len(inputs)

    def save_pictures(self, index: int, image: Tensor, mask: Tensor, pred: Tensor) -> None:
        stem = self.save_path / self.data.test.ids[index]
        save_image(image, f"{stem}_image.png")
        save_image(mask, f"{stem}_mask.png")
        save_image(pred, f"{stem}_pred.png")
        save_image(seg_panel(image, mask, pred), f"{stem}_panel.png")

    def compute(self) -> dict[str, Any]:
        dice, iou = torch.cat(self.dice), torch.cat(self.iou)
        return {
            "dice": dice.mean().item(),
            "iou": iou.mean().item(),
            "images": len(dice),
            "per_image_dice": dict(zip(self.data.test.ids, dice.tolist(), strict=True)),
        }

    def report(self, metrics: dict[str, Any]) -> None:
        log.info(
            "test dice %.4f  iou %.4f on %d images",
            metrics["dice"],
            metrics["iou"],
            metrics["images"],
        )
        worst = sorted(metrics["per_image_dice"].items(), key=lambda item: item[1])[:3]
        log.info("lowest dice: %s", ", ".join(f"{name} {value:.4f}" for name, value in worst))
        if self.opt.viz:
            log.info(
                "pictures of every %d-th test image saved to %s", self.opt.viz_freq, self.save_path
            )


def build_seg_eval_parser():
    parser = build_eval_parser("Evaluate a Carvana segmentation checkpoint.")
    parser.add_argument("--viz", type=str2bool, default=False, help="save image/mask/pred PNGs")
    parser.add_argument("--viz_freq", type=positive_int, default=1, help="picture every N images")
    return parser


def main(argv: list[str] | None = None) -> None:
    SegEvaluator(build_seg_eval_parser().parse_args(argv)).run()


if __name__ == "__main__":
    run_main(main)
