"""Tests for utils.plots: confusion matrices and mask overlays."""

import numpy as np
import pytest
import torch
from PIL import Image

from utils.plots import mask_overlay, save_confusion_matrix

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("num_classes", [1, 3, 10])
def test_writes_a_png(tmp_path, num_classes):
    Image = pytest.importorskip("PIL.Image")
    gen = torch.Generator().manual_seed(num_classes)
    confusion = torch.randint(0, 50, (num_classes, num_classes), generator=gen)
    names = [f"class {i}" for i in range(num_classes)]
    path = tmp_path / "confusion.png"
    save_confusion_matrix(confusion, names, path, title="test")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width > 0 and height > 0


def test_all_zero_matrix_and_str_path(tmp_path):
    path = tmp_path / "zeros.png"
    save_confusion_matrix(torch.zeros(2, 2, dtype=torch.int64), ["a", "b"], str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_mask_overlay_tints_only_the_masked_pixels():
    image = Image.new("RGB", (5, 4), (0, 100, 200))
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[1:3, 2:4] = 255
    overlay = np.asarray(mask_overlay(image, mask))
    assert overlay.shape == (4, 5, 3)
    assert (overlay[mask == 0] == (0, 100, 200)).all()
    halfway_to_red = np.array([127.5, 50, 100])
    assert (np.abs(overlay[mask > 0] - halfway_to_red) <= 1).all()
