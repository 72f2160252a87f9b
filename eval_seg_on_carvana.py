"""Evaluate a segmentation checkpoint (Carvana, or your own image/mask folders), or segment
image files with it.

    python eval_seg_on_carvana.py --model_path ./Results/Carvana/<ts>/UNet_best_ckpt.pth \
        --save_path ./test_viz/ --viz True
    python eval_seg_on_carvana.py --model_path ./Results/Carvana/<ts>/UNet_best_ckpt.pth \
        --input my_photos/ other.jpg --save_path masks/

Evaluation scores the test cars at the masks' own resolution (the logits upsampled to it, as
the Carvana competition scores) and at the training scale; masks of several classes get
Dice and IoU per class, and their mean over the object classes. Prediction writes one
``<name>_pred.png`` per image, of exactly the image's size: a 0/255 mask for binary masks, else
a palette PNG whose pixels are the class indices.
"""

import argparse
import functools
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.utils import save_image

from data.image_files import open_image
from data.pairs import PairDataset
from eval import EvaluatorBase, build_eval_parser
from utils.cli import open_fraction, positive_int, run_main, str2bool
from utils.loop.export import Head
from utils.loop.metrics import (
    class_dice_and_iou_per_image,
    dice_and_iou_per_image,
    predicted_classes,
)
from utils.plots import index_image, mask_overlay, seg_panel, titled_panel

log = logging.getLogger(__name__)


def upsample(logits: Tensor, size: tuple[int, int]) -> Tensor:
    """Logits ``[N, C, h, w]`` resized (bilinear) to ``size`` ``(H, W)``: thresholded after
    this, and not before, the mask follows the object's edge at that resolution."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class WithOriginalMasks(Dataset):
    """A Carvana split whose targets are ``(mask at the training scale, mask at the data's own
    resolution)``, so the loader's workers decode the original masks one batch at a time."""

    def __init__(self, split: PairDataset) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        image, mask = self.split[index]
        return image, (mask, self.split.original_mask(index))

    @staticmethod
    def collate_fn(
        samples: list[tuple[Tensor, tuple[Tensor, Tensor]]],
    ) -> tuple[Tensor, tuple[Tensor, Tensor | list[Tensor]]]:
        """A batch; its original masks stacked where they have one size, else a list (images
        of several sizes, made one by ``--img_size``)."""
        images = torch.stack([image for image, _ in samples])
        masks = torch.stack([mask for _, (mask, _) in samples])
        originals = [original for _, (_, original) in samples]
        one_size = all(o.shape == originals[0].shape for o in originals)
        return images, (masks, torch.stack(originals) if one_size else originals)


class SegEvaluator(EvaluatorBase):
    """Per-image Dice and IoU (binary masks at ``--threshold``; masks of classes per class, of
    the arg-max), averaged over the test split, at the masks' own resolution (the headline) and
    at the training scale. The headline of masks of classes is the mean over the object classes.

    With ``--viz True`` one test image in every ``--viz_freq`` is saved in
    ``<checkpoint stem>_pictures/`` as ``<id>_image.png``, ``<id>_mask.png``, ``<id>_pred.png``
    and ``<id>_panel.png``, the three side by side with titles and the image's Dice (training
    scale); with ``--input``, one image in every ``--viz_freq`` gets ``<name>_overlay.png``.
    """

    @property
    def binary(self) -> bool:
        return self.data_info.num_outputs == 1

    @property
    def activation(self) -> str:
        return "sigmoid" if self.binary else "softmax"

    @property
    def objects(self) -> slice:
        """The columns of the per-class scores that are objects: all but the background."""
        return slice(0, None) if self.binary else slice(1, None)

    def build_test_set(self) -> Dataset:
        return WithOriginalMasks(self.data.test)

    def reset(self) -> None:
        names = ("dice", "iou", "dice_at_train_scale", "iou_at_train_scale")
        self.scores: dict[str, list[Tensor]] = {name: [] for name in names}
        self.resolutions: set[str] = set()
        self.seen = 0

    def update(
        self, inputs: Tensor, outputs: Tensor, targets: tuple[Tensor, Tensor | list[Tensor]]
    ) -> None:
        masks, originals = targets
        if isinstance(originals, Tensor):
            self.add_scores("", upsample(outputs, originals.shape[-2:]), originals)
        else:  # images of several sizes: each scored at its own
            for k, original in enumerate(originals):
                self.add_scores(
                    "", upsample(outputs[k : k + 1], original.shape[-2:]), original[None]
                )
        self.add_scores("_at_train_scale", outputs, masks)
        self.resolutions.update(f"{o.shape[-1]}x{o.shape[-2]}" for o in originals)
        if self.opt.viz:
            preds = predicted_classes(outputs, self.opt.threshold)
            dice = self.scores["dice_at_train_scale"][-1][:, self.objects].mean(1).tolist()
            for k in range(len(inputs)):
                if (self.seen + k) % self.opt.viz_freq == 0:
                    self.save_pictures(self.seen + k, inputs[k], masks[k], preds[k], dice[k])
        self.seen += len(inputs)

    def add_scores(self, suffix: str, logits: Tensor, masks: Tensor) -> None:
        """``[N, classes]`` scores of a batch: one column (the object) for binary masks."""
        if self.binary:
            dice, iou = dice_and_iou_per_image(logits, masks, self.opt.threshold)
            dice, iou = dice[:, None], iou[:, None]
        else:
            dice, iou = class_dice_and_iou_per_image(logits, masks)
        self.scores[f"dice{suffix}"].append(dice.cpu())
        self.scores[f"iou{suffix}"].append(iou.cpu())

    @property
    def pictures(self) -> Path:
        """``<save_path>/<checkpoint stem>_pictures/``: a folder of their own, so that the
        run dir keeps its checkpoints and records at a glance."""
        folder = self.output_path("pictures")
        folder.mkdir(exist_ok=True)
        return folder

    def save_pictures(
        self, index: int, image: Tensor, mask: Tensor, pred: Tensor, dice: float
    ) -> None:
        """The image, its mask and the prediction as they are (what a program reads back),
        and a panel of the three with titles and the image's Dice at the training scale."""
        stem = self.pictures / self.data.test.ids[index]
        top = max(1, self.data_info.num_outputs - 1)  # classes as grey levels, the last white
        mask, pred = mask / top, pred / top
        save_image(image, f"{stem}_image.png")
        save_image(mask, f"{stem}_mask.png")
        save_image(pred, f"{stem}_pred.png")
        titled_panel(seg_panel(image, mask, pred), f"dice {dice:.4f}").save(f"{stem}_panel.png")

    def compute(self) -> dict[str, Any]:
        scores = {name: torch.cat(values) for name, values in self.scores.items()}
        names = self.data_info.class_names
        return {
            **{name: values[:, self.objects].mean().item() for name, values in scores.items()},
            "images": len(scores["dice"]),
            "threshold": self.opt.threshold,
            "resolution": ", ".join(sorted(self.resolutions)),
            "img_scale": self.cfg.img_scale,
            "img_size": getattr(self.cfg, "img_size", None),  # runs before it had none
            "per_class_dice": dict(zip(names, scores["dice"].mean(0).tolist(), strict=True)),
            "per_class_iou": dict(zip(names, scores["iou"].mean(0).tolist(), strict=True)),
            "per_image_dice": dict(
                zip(
                    self.data.test.ids,
                    scores["dice"][:, self.objects].mean(1).tolist(),
                    strict=True,
                )
            ),
        }

    def report(self, metrics: dict[str, Any]) -> None:
        log.info(
            "test dice %.4f  iou %.4f at full resolution (%s) on %d images, threshold %g",
            metrics["dice"],
            metrics["iou"],
            metrics["resolution"],
            metrics["images"],
            metrics["threshold"],
        )
        trained_at = (
            f"img_size {metrics['img_size']}"
            if metrics["img_size"]
            else f"img_scale {metrics['img_scale']:g}"
        )
        log.info(
            "test dice %.4f  iou %.4f at the training scale (%s)",
            metrics["dice_at_train_scale"],
            metrics["iou_at_train_scale"],
            trained_at,
        )
        if not self.binary:
            log.info("per class (dice, iou at full resolution); the mean is of the objects:")
            for name, dice in metrics["per_class_dice"].items():
                log.info("  %-16s %.4f  %.4f", name, dice, metrics["per_class_iou"][name])
        worst = sorted(metrics["per_image_dice"].items(), key=lambda item: item[1])[:3]
        log.info("lowest dice: %s", ", ".join(f"{name} {value:.4f}" for name, value in worst))
        if self.opt.viz:
            freq = self.opt.viz_freq
            which = "every test image" if freq == 1 else f"one test image in every {freq}"
            log.info("pictures of %s (image, mask, prediction, panel) in %s", which, self.pictures)

    # ----- prediction ------------------------------------------------------------------------

    def mask_path(self, image: Path) -> Path:
        return self.save_path / f"{image.stem}_pred.png"

    def overlay_path(self, image: Path) -> Path:
        return self.save_path / f"{image.stem}_overlay.png"

    @functools.cached_property
    def pictured(self) -> set[Path]:
        """The inputs that get an overlay: every ``--viz_freq``-th, with ``--viz True``."""
        return set(self.inputs[:: self.opt.viz_freq]) if self.opt.viz else set()

    def prediction_files(self) -> list[Path]:
        masks = [self.mask_path(image) for image in self.inputs]
        return masks + [self.overlay_path(image) for image in self.inputs if image in self.pictured]

    def export_head(self) -> tuple[Head, str]:
        """Per-pixel outputs at each image's own size (logits upsampled, as in prediction)."""
        if self.binary:
            return (
                lambda logits, images: torch.sigmoid(upsample(logits, images.shape[-2:])),
                "the object's probability per pixel (N, 1, H, W), at the input's size",
            )
        return (
            lambda logits, images: upsample(logits, images.shape[-2:]).argmax(dim=1),
            "the class index per pixel (N, H, W), int64, at the input's size",
        )

    def save_predictions(
        self, paths: list[Path], outputs: Tensor, sizes: list[tuple[int, int]]
    ) -> None:
        for path, logits, size in zip(paths, outputs, sizes, strict=True):
            pred = predicted_classes(upsample(logits.unsqueeze(0), size), self.opt.threshold)
            classes = pred[0, 0].cpu().numpy()
            if self.binary:
                Image.fromarray(classes * 255).save(self.mask_path(path))
            else:
                index_image(classes, self.data_info.num_outputs).save(self.mask_path(path))
            if path in self.pictured:
                photo = open_image(path).convert("RGB")
                overlay = mask_overlay(photo, classes, max(2, self.data_info.num_outputs))
                overlay.save(self.overlay_path(path))


def build_seg_eval_parser() -> argparse.ArgumentParser:
    parser = build_eval_parser("Evaluate a segmentation checkpoint, or segment image files.")
    parser.add_argument(
        "--threshold",
        type=open_fraction,
        default=0.5,
        help="binary masks: probability above which a pixel is the object, in scores and masks",
    )
    parser.add_argument(
        "--viz",
        type=str2bool,
        default=False,
        help="save pictures: test image/mask/pred/panel PNGs, or with --input an overlay",
    )
    parser.add_argument("--viz_freq", type=positive_int, default=1, help="picture every N images")
    return parser


def main(argv: list[str] | None = None) -> None:
    SegEvaluator(build_seg_eval_parser().parse_args(argv)).run()


if __name__ == "__main__":
    run_main(main)
