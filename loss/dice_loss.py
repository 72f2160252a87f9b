"""Soft Dice loss for segmentation: binary (alone and with BCE) and over classes (with
cross-entropy)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def soft_dice_loss(logits: Tensor, targets: Tensor, smooth: float = 1.0) -> Tensor:
    """One minus the mean per-image soft Dice between ``sigmoid(logits)`` and ``targets``.

    Both are ``(N, 1, H, W)`` with ``targets`` in {0, 1}. Each image is scored on its own so a
    small object counts as much as a large one. ``smooth`` keeps the ratio finite when an image
    has an empty mask and an empty prediction, and then scores that agreement as a match.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    if smooth <= 0:
        raise ValueError(f"smooth must be positive, got {smooth}")
    probs = torch.sigmoid(logits).flatten(1)
    targets = targets.to(probs.dtype).flatten(1)
    intersection = (probs * targets).sum(dim=1)
    dice = (2 * intersection + smooth) / (probs.sum(dim=1) + targets.sum(dim=1) + smooth)
    return 1 - dice.mean()


class DiceLoss(nn.Module):
    """Module form of :func:`soft_dice_loss`."""

    def __init__(self, smooth: float = 1.0) -> None:
        super().__init__()
        self.smooth = smooth

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return soft_dice_loss(logits, targets, self.smooth)


class BCEDiceLoss(nn.Module):
    """Weighted sum of pixel-wise BCE (``pos_weight``: the object pixels' weight, as in
    :class:`~torch.nn.BCEWithLogitsLoss`) and soft Dice.

    BCE gives every pixel a well-scaled gradient; Dice counters the foreground/background
    imbalance that BCE alone is blind to.
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.smooth = smooth
        self.bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        bce = self.bce(logits, targets.to(logits.dtype))
        dice = soft_dice_loss(logits, targets, self.smooth)
        return self.bce_weight * bce + self.dice_weight * dice


def soft_dice_loss_over_classes(logits: Tensor, targets: Tensor, smooth: float = 1.0) -> Tensor:
    """One minus the soft Dice between ``softmax(logits)`` and one-hot ``targets``, averaged
    over images and classes (the background included), each image and class scored alone.

    ``logits`` are ``(N, K, H, W)``, ``targets`` ``(N, H, W)`` class indices.
    """
    if smooth <= 0:
        raise ValueError(f"smooth must be positive, got {smooth}")
    probs = torch.softmax(logits, dim=1).flatten(2)
    one_hot = F.one_hot(targets.flatten(1), logits.shape[1]).transpose(1, 2).to(probs.dtype)
    intersection = (probs * one_hot).sum(dim=2)
    dice = (2 * intersection + smooth) / (probs.sum(dim=2) + one_hot.sum(dim=2) + smooth)
    return 1 - dice.mean()


class CEDiceLoss(nn.Module):
    """Cross-entropy (``weight``: one per class) plus soft Dice over classes, each class
    scored alone so a rare one counts as much as the background, for masks of ``K > 1``
    classes.

    Takes the masks as the data gives them, ``(N, 1, H, W)`` float class indices.
    """

    def __init__(
        self,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        weight: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.smooth = smooth
        self.register_buffer("weight", weight)  # of each class in the cross-entropy, or None

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        classes = targets[:, 0].long()
        ce = F.cross_entropy(logits, classes, weight=self.weight)
        dice = soft_dice_loss_over_classes(logits, classes, self.smooth)
        return self.ce_weight * ce + self.dice_weight * dice
