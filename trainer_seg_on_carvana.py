"""Train a segmentation model (UNet or UNet++) on Carvana car masks, or on your own
``images/`` + ``masks/`` folders (binary masks, or masks of classes 0..K-1).

    python trainer_seg_on_carvana.py --proj_name SegOnCarvana --model_type UNet \
        --data_type Carvana --output_dir ./Results/Carvana/ --gpu_devices 0 \
        --data_dir ./Dataset/Carvana/
    python trainer_seg_on_carvana.py --data_type SegFolder --data_dir ./my_data \
        --mask_suffix _mask --group_pattern '^([^_]+)_'
"""

import argparse

import torch
from torch import Tensor, nn
from torchvision.utils import make_grid

from data.augment import random_hflip
from loss.dice_loss import BCEDiceLoss, CEDiceLoss
from trainer import TrainerBase, build_parser
from utils.cli import run_main
from utils.loop.metrics import (
    class_dice_and_iou_per_image,
    dice_and_iou_per_image,
    predicted_classes,
)
from utils.plots import seg_panel

PANELS = 4  # validation images shown in TensorBoard


def final_logits(outputs: Tensor | list[Tensor]) -> Tensor:
    """The prediction: UNet++ with deep supervision returns every head while training and
    predicts with their mean in eval, so training metrics score that mean too."""
    return torch.stack(outputs).mean(dim=0) if isinstance(outputs, list) else outputs


class SegTrainer(TrainerBase):
    """Binary masks: BCE + Dice loss, Dice and IoU at threshold 0.5. Masks of ``K > 1``
    classes: cross-entropy + Dice over the classes, Dice and IoU of the arg-max averaged over
    the object classes (the background left out). Losses average over deep-supervision heads.
    """

    EVAL_SCRIPT = "eval_seg_on_carvana.py"

    @property
    def binary(self) -> bool:
        """Whether the masks are binary: one output channel, foreground or not."""
        return self.data.num_outputs == 1

    def build_loss(self) -> nn.Module:
        weights = self.class_weights  # --class_weights auto: background, then the classes
        if self.binary:
            return BCEDiceLoss(pos_weight=None if weights is None else weights[1] / weights[0])
        return CEDiceLoss(weight=weights)

    def compute_loss(self, outputs: Tensor | list[Tensor], targets: Tensor) -> Tensor:
        heads = outputs if isinstance(outputs, list) else [outputs]
        return sum(self.criterion(head, targets) for head in heads) / len(heads)

    def compute_metrics(self, outputs: Tensor | list[Tensor], targets: Tensor) -> dict[str, Tensor]:
        logits = final_logits(outputs)
        if self.binary:
            dice, iou = dice_and_iou_per_image(logits, targets)
            return {"dice": dice.mean(), "iou": iou.mean()}
        dice, iou = class_dice_and_iou_per_image(logits, targets)
        return {"dice": dice[:, 1:].mean(), "iou": iou[:, 1:].mean()}

    def augment(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """``--flip`` mirrors each chosen image together with its mask."""
        if self.opt.flip:
            inputs, targets = random_hflip(inputs, targets)
        return inputs, targets

    @torch.inference_mode()
    def log_images(self) -> None:
        """Image | mask | prediction panels of the first validation images, one a row."""
        samples = [self.data.val[i] for i in range(min(PANELS, len(self.data.val)))]
        images = torch.stack([image for image, _ in samples]).to(self.device)
        model = self.eval_model  # without DDP: only rank 0 runs this, with no collectives
        model.eval()
        preds = predicted_classes(final_logits(model(images))).cpu()
        top = max(1, self.data.num_outputs - 1)  # classes as grey levels, the last one white
        panels = [
            seg_panel(img, mask / top, pred / top)
            for (img, mask), pred in zip(samples, preds, strict=True)
        ]
        # One picture, a panel a row: side by side they made one strip too wide to read.
        grid = make_grid(torch.stack(panels), nrow=1, padding=2, pad_value=1.0)
        self.writer.add_images("val/panels", grid.unsqueeze(0), self.global_step)


def build_seg_parser() -> argparse.ArgumentParser:
    parser = build_parser("Train UNet / UNet++ on Carvana car masks or your own image folders.")
    parser.set_defaults(
        proj_name="SegOnCarvana",
        model_type="UNet",
        data_type="Carvana",
        data_dir="./Dataset/Carvana",
        output_dir="./Results/Carvana",
        batch_size=4,
        epochs=10,
        lr=1e-3,
        img_scale=0.25,
        base_width=16,
        augment="carvana",
        amp="auto",
        monitor="val_dice",
        monitor_mode="max",
        log_images_every=1,
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    SegTrainer(build_seg_parser().parse_args(argv)).train()


if __name__ == "__main__":
    run_main(main)
