"""``--tta flip``: the mean of the image's and its mirror's probabilities, per-pixel outputs
flipped back; equal to the plain prediction for a model that a mirror does not change."""

import json

import pytest
import torch
from test_eval import evaluator, run  # noqa: F401  (the module's trained UNet)
from torch import nn

from utils.errors import UsageError
from utils.loop.tta import flip_average


def pooled_classifier() -> nn.Module:
    """Global average pooling first: a mirrored image gives the same logits."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))


@pytest.mark.parametrize(
    ("model", "activation", "per_pixel"),
    [
        (pooled_classifier(), "softmax", False),
        (nn.Conv2d(3, 1, kernel_size=1), "sigmoid", True),  # pointwise: mirrors with the image
        (nn.Conv2d(3, 4, kernel_size=1), "softmax", True),
    ],
)
def test_a_model_a_mirror_does_not_change_predicts_as_without(model, activation, per_pixel):
    images = torch.randn(2, 3, 8, 6)
    with torch.no_grad():
        plain, averaged = model(images), flip_average(model, images, activation, per_pixel)
    probs = torch.sigmoid if activation == "sigmoid" else lambda x: x.softmax(dim=1)
    torch.testing.assert_close(probs(averaged), probs(plain))


def test_the_prediction_is_the_mean_of_both_probabilities():
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 6, 5))  # sees left from right
    segmenter = nn.Conv2d(3, 1, kernel_size=3, padding=1)
    images = torch.randn(2, 3, 8, 6)
    with torch.no_grad():
        logits = flip_average(classifier, images, "softmax", per_pixel=False)
        by_hand = (classifier(images).softmax(1) + classifier(images.flip(-1)).softmax(1)) / 2
        torch.testing.assert_close(logits.softmax(1), by_hand)
        assert not torch.allclose(logits.softmax(1), classifier(images).softmax(1), atol=1e-3)
        logits = flip_average(segmenter, images, "sigmoid", per_pixel=True)
        mirrored = torch.sigmoid(segmenter(images.flip(-1))).flip(-1)
        torch.testing.assert_close(
            torch.sigmoid(logits), (torch.sigmoid(segmenter(images)) + mirrored) / 2
        )


def certain(images: torch.Tensor) -> torch.Tensor:
    """Logits so large that their sigmoid is exactly 1."""
    return torch.full((1, 1, 2, 2), 1e4)


def test_a_certain_pixel_stays_finite_through_upsampling():
    logits = flip_average(certain, torch.zeros(1, 3, 2, 2), "sigmoid", per_pixel=True)
    resized = nn.functional.interpolate(logits, size=(5, 5), mode="bilinear")
    assert torch.isfinite(resized).all() and (torch.sigmoid(resized) > 0.5).all()


def test_the_evaluator_reports_both_and_its_forward_is_the_flipped_mean(run, tmp_path):  # noqa: F811
    plain = evaluator(run, tmp_path / "plain").run()
    ev = evaluator(run, tmp_path / "tta", "--tta", "flip", "--viz", "True")
    assert ev.run() == plain  # the plain figures stay what they are
    pictures = tmp_path / "tta" / f"{run.stem}_pictures"
    augmented_pictures = tmp_path / "tta" / f"{run.stem}_tta_flip_pictures"
    names = sorted(p.name for p in pictures.iterdir())
    assert names and names == sorted(p.name for p in augmented_pictures.iterdir())
    record = json.loads((tmp_path / "tta" / f"{run.stem}_test_metrics.json").read_text())
    assert record["metrics"] == json.loads(json.dumps(plain))
    assert set(record["metrics_tta_flip"]) == set(plain)
    assert record["metrics_tta_flip"]["dice"] != plain["dice"]
    images = torch.rand(2, 3, 24, 32)
    with torch.no_grad():
        mirrored = torch.sigmoid(ev.forward(images.flip(-1))).flip(-1)
        by_hand = (torch.sigmoid(ev.forward(images)) + mirrored) / 2
        torch.testing.assert_close(torch.sigmoid(ev.forward(images, "flip")), by_hand)


def test_export_with_tta_is_one_line(run, tmp_path):  # noqa: F811
    ev = evaluator(run, tmp_path, "--tta", "flip", "--export", str(tmp_path / "m.pt2"))
    with pytest.raises(UsageError, match="--tta flip with --export"):
        ev.run()
    assert not (tmp_path / "m.pt2").exists()
