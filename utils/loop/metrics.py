"""Metrics: classification (accuracy, confusion matrix) and segmentation (Dice, IoU), binary
and over classes."""

import torch


def correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Whether each sample's arg-max class equals its label, as a 1-D bool tensor.

    The training loop's accuracy: a meter counts these outcomes when it reads them, so a step
    spends two kernels on accuracy rather than three (``--profile`` shows the step's ops).
    """
    return logits.argmax(dim=1) == targets


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of samples whose arg-max class equals the label, as a 0-dim tensor.

    A tensor, not a float: reading it would make the training loop wait for the device. The
    mean casts as it reduces: three kernels, not four.
    """
    return correct(logits, targets).mean(dtype=torch.float32)


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[num_classes, num_classes]`` counts; row = true class, column = predicted class."""
    index = targets.long() * num_classes + preds.long()
    counts = torch.bincount(index.flatten(), minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Recall of each class (diagonal over row sums); NaN for a class with no samples."""
    totals = confusion.sum(dim=1).double()
    return confusion.diagonal().double() / totals


def _binary_counts(
    logits: torch.Tensor, masks: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image ``(|P & T|, |P|, |T|)`` as floats, P = ``sigmoid(logits) > threshold``."""
    if logits.shape != masks.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and masks {tuple(masks.shape)} differ")
    preds = (torch.sigmoid(logits) > threshold).flatten(1)
    truth = masks.bool().flatten(1)
    intersection = (preds & truth).sum(dim=1).float()
    return intersection, preds.sum(dim=1).float(), truth.sum(dim=1).float()


def dice_and_iou_per_image(
    logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N,)`` Dice ``2|P & T| / (|P| + |T|)`` and IoU ``|P & T| / |P | T|`` of each image.

    Nonzero mask pixels are foreground. An empty image predicted empty is a perfect answer, so
    it scores 1 instead of the undefined 0/0. Both come from one thresholding pass.
    """
    intersection, pred_count, true_count = _binary_counts(logits, masks, threshold)
    total = pred_count + true_count
    union = total - intersection
    ones = torch.ones_like(total)
    dice = torch.where(total > 0, 2 * intersection / total.clamp(min=1), ones)
    iou = torch.where(union > 0, intersection / union.clamp(min=1), ones)
    return dice, iou


def dice_per_image(
    logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """``(N,)`` Dice of each image, as in :func:`dice_and_iou_per_image`."""
    return dice_and_iou_per_image(logits, masks, threshold)[0]


def iou_per_image(
    logits: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    """``(N,)`` IoU of each image, as in :func:`dice_and_iou_per_image`."""
    return dice_and_iou_per_image(logits, masks, threshold)[1]


def predicted_classes(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """``(N, 1, H, W)`` uint8 masks from logits: ``sigmoid > threshold`` for one channel (binary),
    the arg-max class for several."""
    if logits.shape[1] == 1:
        return (torch.sigmoid(logits) > threshold).to(torch.uint8)
    return logits.argmax(dim=1, keepdim=True).to(torch.uint8)


def class_dice_and_iou_per_image(
    logits: torch.Tensor, masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, K)`` Dice and IoU of each image and class, for ``(N, K, H, W)`` logits (arg-max)
    and ``(N, 1, H, W)`` masks of class indices. A class absent from an image and from its
    prediction scores 1, as an empty binary mask predicted empty does."""
    classes = logits.shape[1]
    preds = torch.nn.functional.one_hot(logits.argmax(dim=1).flatten(1), classes).bool()
    truth = torch.nn.functional.one_hot(masks[:, 0].long().flatten(1), classes).bool()
    intersection = (preds & truth).sum(dim=1).float()
    total = preds.sum(dim=1).float() + truth.sum(dim=1).float()
    union = total - intersection
    ones = torch.ones_like(total)
    dice = torch.where(total > 0, 2 * intersection / total.clamp(min=1), ones)
    iou = torch.where(union > 0, intersection / union.clamp(min=1), ones)
    return dice, iou
