"""Tests for utils.plots: the confusion matrix, the segmentation panel and mask overlays."""

import numpy as np
import pytest
import torch
from PIL import Image

from utils.plots import class_colours, index_image, mask_overlay, save_confusion_matrix, seg_panel

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("num_classes", [1, 3, 10])
def test_every_cell_shows_its_count_with_the_class_names_on_both_axes(tmp_path, num_classes):
    gen = torch.Generator().manual_seed(num_classes)
    confusion = torch.randint(0, 50, (num_classes, num_classes), generator=gen)
    names = [f"class {i}" for i in range(num_classes)]
    path = tmp_path / "confusion.png"
    figure = save_confusion_matrix(confusion, names, path, title="test")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    (axes,) = figure.axes
    assert np.array_equal(axes.images[0].get_array(), confusion.numpy())
    written = {text.get_position(): text.get_text() for text in axes.texts}
    assert written == {
        (col, row): str(int(confusion[row, col]))
        for row in range(num_classes)
        for col in range(num_classes)
    }
    assert [label.get_text() for label in axes.get_xticklabels()] == names  # predicted
    assert [label.get_text() for label in axes.get_yticklabels()] == names  # true
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == ("predicted", "true", "test")


def test_counts_above_half_the_maximum_are_written_in_white(tmp_path):
    figure = save_confusion_matrix(torch.tensor([[9, 1], [4, 5]]), ["a", "b"], tmp_path / "c.png")
    colors = {text.get_text(): text.get_color() for text in figure.axes[0].texts}
    assert colors == {"9": "white", "5": "white", "1": "black", "4": "black"}


def test_all_zero_matrix_and_str_path(tmp_path):
    path = tmp_path / "zeros.png"
    save_confusion_matrix(torch.zeros(2, 2, dtype=torch.int64), ["a", "b"], str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_seg_panel_puts_image_mask_and_prediction_side_by_side():
    image = torch.rand(3, 4, 5)
    mask, pred = torch.ones(1, 4, 5), torch.zeros(1, 4, 5)
    panel = seg_panel(image, mask, pred)
    assert panel.shape == (3, 4, 15)
    assert torch.equal(panel[:, :, :5], image)
    assert torch.equal(panel[:, :, 5:10], torch.ones(3, 4, 5))
    assert torch.equal(panel[:, :, 10:], torch.zeros(3, 4, 5))


def test_mask_overlay_tints_only_the_masked_pixels():
    image = Image.new("RGB", (5, 4), (0, 100, 200))
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[1:3, 2:4] = 255
    overlay = np.asarray(mask_overlay(image, mask))
    assert overlay.shape == (4, 5, 3)
    assert (overlay[mask == 0] == (0, 100, 200)).all()
    halfway_to_red = np.array([127.5, 50, 100])
    assert (np.abs(overlay[mask > 0] - halfway_to_red) <= 1).all()


def test_an_index_image_holds_the_classes_and_shows_their_colours(tmp_path):
    classes = np.array([[0, 1, 2], [3, 3, 0]], dtype=np.uint8)
    index_image(classes, 4).save(tmp_path / "pred.png")
    back = Image.open(tmp_path / "pred.png")
    assert back.mode == "P" and np.array_equal(np.asarray(back), classes)
    shown = np.asarray(back.convert("RGB"))
    assert np.array_equal(shown, class_colours(4)[classes])
    assert len({tuple(c) for c in class_colours(12)}) == 12  # every class its own colour


def test_mask_overlay_tints_each_class_toward_its_colour():
    image = Image.new("RGB", (3, 1), (0, 0, 0))
    classes = np.array([[0, 1, 2]], dtype=np.uint8)
    overlay = np.asarray(mask_overlay(image, classes, num_classes=3)).astype(int)
    colours = class_colours(3).astype(int)
    assert (overlay[0, 0] == 0).all()
    assert (np.abs(overlay[0, 1:] - colours[1:] / 2) <= 1).all()
