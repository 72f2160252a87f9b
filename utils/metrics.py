"""Classification metrics computed from logits and integer labels."""

import torch


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of samples whose arg-max class equals the label."""
    return (logits.argmax(dim=1) == targets).float().mean().item()


def confusion_matrix(preds: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[num_classes, num_classes]`` counts; row = true class, column = predicted class."""
    index = targets.long() * num_classes + preds.long()
    counts = torch.bincount(index.flatten(), minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Recall of each class (diagonal over row sums); NaN for a class with no samples."""
    totals = confusion.sum(dim=1).double()
    return confusion.diagonal().double() / totals
