"""Tests for utils.loop.metrics against hand-written loops."""

import math

import numpy as np
import pytest
import torch

from utils.loop.metrics import (
    accuracy,
    class_dice_and_iou_per_image,
    confusion_matrix,
    correct,
    dice_per_image,
    iou_per_image,
    per_class_accuracy,
    predicted_classes,
)


def _argmax(row):
    values = row.tolist()
    return values.index(max(values))


def test_accuracy_matches_hand_count():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 7, generator=gen)
    targets = torch.randint(0, 7, (200,), generator=gen)
    correct = sum(_argmax(row) == int(t) for row, t in zip(logits, targets, strict=True))
    assert accuracy(logits, targets).item() == pytest.approx(correct / 200)


def test_accuracy_extremes():
    logits = torch.eye(4)
    assert accuracy(logits, torch.arange(4)).item() == 1.0
    assert accuracy(logits, (torch.arange(4) + 1) % 4).item() == 0.0


def test_confusion_matrix_matches_loop():
    gen = torch.Generator().manual_seed(1)
    num_classes = 5
    preds = torch.randint(0, num_classes, (300,), generator=gen)
    targets = torch.randint(0, num_classes, (300,), generator=gen)
    expected = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for p, t in zip(preds.tolist(), targets.tolist(), strict=True):
        expected[t, p] += 1
    result = confusion_matrix(preds, targets, num_classes)
    assert result.shape == (num_classes, num_classes)
    assert torch.equal(result, expected)


def test_confusion_matrix_rows_are_true_classes():
    result = confusion_matrix(torch.tensor([2]), torch.tensor([0]), 3)
    assert result[0, 2] == 1 and result.sum() == 1


def test_confusion_matrix_of_no_samples_is_zero():
    result = confusion_matrix(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 3)
    assert torch.equal(result, torch.zeros(3, 3, dtype=result.dtype))


def test_per_class_accuracy_is_diagonal_over_row_sums():
    gen = torch.Generator().manual_seed(2)
    confusion = torch.randint(1, 20, (4, 4), generator=gen)
    result = per_class_accuracy(confusion)
    for i in range(4):
        row = confusion[i].tolist()
        assert float(result[i]) == pytest.approx(row[i] / sum(row))


def test_per_class_accuracy_empty_class_is_nan():
    confusion = torch.tensor([[3, 1, 0], [0, 0, 0], [1, 0, 4]])
    result = per_class_accuracy(confusion)
    assert math.isnan(float(result[1]))
    assert float(result[0]) == pytest.approx(3 / 4)
    assert float(result[2]) == pytest.approx(4 / 5)


def _segmentation_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and masks, plus an image where both are empty and one with an empty guess."""
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 1, 12, 12, generator=gen)
    masks = (torch.rand(6, 1, 12, 12, generator=gen) > 0.5).float()
    logits[4] = -5.0
    masks[4] = 0.0
    logits[5] = -5.0
    masks[5, :, 3:7, 3:7] = 1.0
    return logits, masks


def _numpy_scores(
    logits: torch.Tensor, masks: torch.Tensor, threshold: float
) -> tuple[list[float], list[float]]:
    preds = (1 / (1 + np.exp(-logits.numpy().astype(np.float64)))) > threshold
    truth = masks.numpy() != 0
    dice, iou = [], []
    for pred, true in zip(preds, truth, strict=True):
        both = np.logical_and(pred, true).sum()
        either = np.logical_or(pred, true).sum()
        sizes = pred.sum() + true.sum()
        dice.append(2 * both / sizes if sizes else 1.0)
        iou.append(both / either if either else 1.0)
    return dice, iou


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
def test_dice_and_iou_match_numpy_sets(threshold):
    logits, masks = _segmentation_batch()
    expected_dice, expected_iou = _numpy_scores(logits, masks, threshold)
    dice = dice_per_image(logits, masks, threshold)
    iou = iou_per_image(logits, masks, threshold)
    assert dice.shape == iou.shape == (6,)
    assert dice.dtype.is_floating_point and iou.dtype.is_floating_point
    assert dice.tolist() == pytest.approx(expected_dice)
    assert iou.tolist() == pytest.approx(expected_iou)


def test_empty_cases():
    logits, masks = _segmentation_batch()
    dice = dice_per_image(logits, masks)
    iou = iou_per_image(logits, masks)
    assert dice[4].item() == iou[4].item() == 1.0
    assert dice[5].item() == iou[5].item() == 0.0


def test_threshold_is_strict():
    masks = torch.ones(1, 1, 2, 2)
    at_boundary = torch.zeros(1, 1, 2, 2)
    assert dice_per_image(at_boundary, masks).item() == 0.0
    assert iou_per_image(at_boundary, masks).item() == 0.0
    just_above = torch.full((1, 1, 2, 2), 1e-3)
    assert dice_per_image(just_above, masks).item() == 1.0
    assert iou_per_image(just_above, masks).item() == 1.0


def test_dice_equals_two_iou_over_one_plus_iou():
    logits, masks = _segmentation_batch()
    dice = dice_per_image(logits, masks)
    iou = iou_per_image(logits, masks)
    assert torch.allclose(dice, 2 * iou / (1 + iou))


def test_segmentation_metrics_reject_mismatched_shapes():
    logits, masks = _segmentation_batch()
    with pytest.raises(ValueError, match="differ"):
        dice_per_image(logits, masks[:, 0])


def test_dice_and_iou_per_class_match_a_hand_count():
    """One 2x3 image of classes 0..2: the arg-max against the mask, class by class."""
    mask = torch.tensor([[[0, 1, 1], [2, 2, 0]]])[None]  # [1, 1, 2, 3]
    pred = torch.tensor([[0, 1, 2], [2, 0, 0]])
    logits = torch.nn.functional.one_hot(pred, 3).permute(2, 0, 1)[None].float()
    dice, iou = class_dice_and_iou_per_image(logits, mask)
    # class 0: pred {0,4,5}, true {0,5}; class 1: pred {1}, true {1,2}; class 2: {2,3} vs {3,4}
    torch.testing.assert_close(dice, torch.tensor([[4 / 5, 2 / 3, 1 / 2]]))
    torch.testing.assert_close(iou, torch.tensor([[2 / 3, 1 / 2, 1 / 3]]))


def test_a_class_absent_from_mask_and_prediction_scores_one():
    mask = torch.zeros(1, 1, 2, 2)
    logits = torch.tensor([5.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    dice, iou = class_dice_and_iou_per_image(logits, mask)
    assert dice.tolist() == [[1.0, 1.0, 1.0]] and iou.tolist() == [[1.0, 1.0, 1.0]]


def test_predicted_classes_threshold_one_channel_and_take_the_arg_max_of_several():
    one = torch.tensor([-1.0, 0.2, 3.0]).view(1, 1, 1, 3)
    assert predicted_classes(one).flatten().tolist() == [0, 1, 1]
    assert predicted_classes(one, threshold=0.6).flatten().tolist() == [0, 0, 1]
    several = torch.tensor([[0.0, 2.0], [1.0, 0.0], [3.0, 1.0]]).view(1, 3, 1, 2)
    assert predicted_classes(several).flatten().tolist() == [2, 0]
    assert predicted_classes(several).dtype == torch.uint8


def test_correct_marks_each_sample_its_accuracy_averages():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(50, 4, generator=gen)
    targets = torch.randint(0, 4, (50,), generator=gen)
    marks = correct(logits, targets)
    expected = [_argmax(row) == int(t) for row, t in zip(logits, targets, strict=True)]
    assert marks.dtype == torch.bool and marks.tolist() == expected
    assert accuracy(logits, targets).item() == pytest.approx(sum(expected) / 50)
