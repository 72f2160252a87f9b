"""The Carvana scripts run as a user would, on synthetic cars and on the real samples."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import real_data_dir, run_script
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import eval_seg_on_carvana
from data.synthetic_carvana import VIEWS, write_synthetic_carvana

CPU = ("--gpu_devices", "cpu", "--num_workers", "0")


def train(data_dir: Path, out: Path, *extra: str) -> Path:
    result = run_script(
        "trainer_seg_on_carvana.py",
        "--data_dir",
        data_dir,
        "--output_dir",
        out,
        "--base_width",
        "8",
        "--patience",
        "0",
        *CPU,
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = out.iterdir()
    return run_dir


def evaluate_with_pictures(checkpoint: Path, save_path: Path, *extra: str) -> dict:
    result = run_script(
        "eval_seg_on_carvana.py",
        "--model_path",
        checkpoint,
        "--save_path",
        save_path,
        "--viz",
        "True",
        "--gpu_devices",
        "cpu",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test dice" in result.stdout
    return json.loads((save_path / f"{checkpoint.stem}_test_metrics.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_carvana(root, cars=6, size=(96, 64), seed=3)
    return root


def test_unet_trains_and_evaluates_on_synthetic_cars(synthetic, tmp_path):
    """In whatever precision --amp auto picks here. Flips alone: in these 60 steps the Kaggle
    set (tested in test_seg_trainer.py) leaves test Dice near 0.6 in fp32 and in bf16 alike,
    where flips reach about 0.85 in both."""
    run = train(
        synthetic,
        tmp_path / "Results",
        "--epochs",
        "6",
        "--img_scale",
        "1.0",
        "--batch_size",
        "8",
        "--lr",
        "3e-3",
        "--augment",
        "flip",
        "--cache_dir",
        tmp_path / "cache",
    )
    events = EventAccumulator(str(run))
    events.Reload()
    assert {"val/dice", "val/iou", "train/dice"} <= set(events.Tags()["scalars"])
    assert "val/panels" in events.Tags()["images"]
    (panels,) = {(e.width, e.height) for e in events.Images("val/panels")}
    assert panels == (3 * 96 + 4, 4 * 64 + 5 * 2)  # 4 panels of 3 columns, one a row
    assert len(events.Scalars("val/dice")) == 6

    metrics = evaluate_with_pictures(run / "UNet_best_ckpt.pth", tmp_path, "--viz_freq", "2")
    viz = tmp_path / "UNet_best_ckpt_pictures"
    assert metrics["images"] == VIEWS  # one of six cars is the test split
    assert metrics["dice"] > 0.7 and 0 < metrics["iou"] <= metrics["dice"]
    pictured = sorted(metrics["per_image_dice"])[::2]
    for name in pictured:
        for kind in ("image", "mask", "pred", "panel"):
            assert (viz / f"{name}_{kind}.png").is_file()
    assert len(list(viz.glob("*.png"))) == 4 * len(pictured)
    with Image.open(viz / f"{pictured[0]}_panel.png") as panel:  # titles over 3 columns
        assert panel.size == (3 * 160, round(64 * 160 / 96) + 16)


def test_unetpp_with_deep_supervision_trains(synthetic, tmp_path):
    run = train(
        synthetic,
        tmp_path / "Results",
        "--model_type",
        "UNetpp",
        "--deep_supervision",
        "True",
        "--epochs",
        "1",
        "--img_scale",
        "0.5",
        "--cache_dir",
        tmp_path / "cache",
    )
    config = json.loads((run / "config.json").read_text())["options"]
    assert config["model_type"] == "UNetpp" and config["deep_supervision"] is True
    evaluate_with_pictures(run / "UNetpp_last_ckpt.pth", tmp_path / "viz")  # head averaging:
    # tests/test_unet.py and tests/test_seg_trainer.py


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> dict:
    """A UNet trained for a few epochs on the real samples at scale 0.1, then evaluated."""
    root = real_data_dir() / "carvana"
    if not (root / "train").is_dir():
        pytest.skip(f"real Carvana samples not in {root}; set TEMPLATE_DATA_DIR")
    tmp = tmp_path_factory.mktemp("real")
    run = train(
        root,
        tmp / "Results",
        *("--epochs", "6", "--lr", "3e-3", "--img_scale", "0.1", "--cache_dir", tmp / "cache"),
    )
    checkpoint = run / "UNet_best_ckpt.pth"
    metrics = evaluate_with_pictures(checkpoint, tmp / "viz", "--viz_freq", "8")
    return {
        "root": root,
        "cache": tmp / "cache",
        "checkpoint": checkpoint,
        "metrics": metrics,
        "viz": tmp / "viz" / "UNet_best_ckpt_pictures",
    }


def test_real_samples_train_and_evaluate(real_run):
    assert len(list((real_run["cache"] / "scale_0.1").glob("*.npz"))) == 48
    metrics = real_run["metrics"]
    assert metrics["images"] == VIEWS and 0 <= metrics["dice"] <= 1
    assert metrics["resolution"] == "1918x1280"
    assert len(list(real_run["viz"].glob("*_panel.png"))) == 2


def test_full_resolution_dice_of_the_written_masks_is_the_evaluated_one(real_run, tmp_path):
    """Masks predicted for the test car, scored against the original 1918x1280 GIFs here,
    give the Dice that evaluation reports at full resolution, image by image."""
    root, metrics = real_run["root"], real_run["metrics"]
    (car,) = {name.rsplit("_", 1)[0] for name in metrics["per_image_dice"]}
    # In-process: the scripts' command lines are proven by the runs above.
    eval_seg_on_carvana.main(
        [
            *("--model_path", str(real_run["checkpoint"]), "--gpu_devices", "cpu"),
            *("--input", str(root / "train" / f"{car}_*.jpg"), "--save_path", str(tmp_path)),
        ]
    )
    for name, reported in metrics["per_image_dice"].items():
        pred = np.asarray(Image.open(tmp_path / f"{name}_pred.png")) > 0
        truth = np.asarray(Image.open(root / "train_masks" / f"{name}_mask.gif")) > 0
        assert pred.shape == truth.shape == (1280, 1918)
        dice = 2 * (pred & truth).sum() / (pred.sum() + truth.sum())
        assert dice == pytest.approx(reported, abs=1e-6), name
        assert 0 < dice < 1  # the masks have edges to get right
    assert metrics["dice"] == pytest.approx(np.mean(list(metrics["per_image_dice"].values())))
    assert metrics["dice"] != metrics["dice_at_train_scale"]


def test_bad_carvana_input_is_one_line(synthetic, tmp_path):
    broken = tmp_path / "broken"
    write_synthetic_carvana(broken, cars=3, size=(32, 24))
    next((broken / "train_masks").iterdir()).unlink()
    result = run_script(
        "trainer_seg_on_carvana.py",
        "--data_dir",
        broken,
        "--output_dir",
        tmp_path / "Results",
        *CPU,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "has no mask" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "Results").exists()
