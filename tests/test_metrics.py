"""Tests for utils.metrics against hand-written loops."""

import math

import pytest
import torch

from utils.metrics import accuracy, confusion_matrix, per_class_accuracy


def _argmax(row):
    values = row.tolist()
    return values.index(max(values))


def test_accuracy_matches_hand_count():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 7, generator=gen)
    targets = torch.randint(0, 7, (200,), generator=gen)
    correct = sum(_argmax(row) == int(t) for row, t in zip(logits, targets, strict=True))
    assert accuracy(logits, targets) == pytest.approx(correct / 200)


def test_accuracy_extremes():
    logits = torch.eye(4)
    assert accuracy(logits, torch.arange(4)) == 1.0
    assert accuracy(logits, (torch.arange(4) + 1) % 4) == 0.0


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
