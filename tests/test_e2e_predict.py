"""Prediction on image files, run as a user would: a checkpoint alone, no training data.

A classifier and a segmenter are trained briefly in-process; each checkpoint is then copied
alone into a folder of its own (no config.json beside it) and the run's data is deleted,
before the evaluator scripts predict image files with it.
"""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_script
from PIL import Image

import eval_seg_on_carvana
import eval_vanilla
from data.memory import normalize
from data.synthetic_carvana import write_synthetic_carvana
from eval_vanilla import VanillaEvaluator, build_vanilla_eval_parser
from trainer_seg_on_carvana import SegTrainer, build_seg_parser
from trainer_vanilla import VanillaTrainer, build_vanilla_parser
from utils.cli import run_main

CPU = ("--gpu_devices", "cpu", "--num_workers", "0")


def alone(checkpoint: Path, folder: Path) -> Path:
    """``checkpoint`` copied into ``folder`` with nothing beside it."""
    folder.mkdir()
    return Path(shutil.copy(checkpoint, folder))


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def classifier(fashion_mnist_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A FashionMNIST run, its evaluator's predictions on 100 test images, those images as
    PNG files, and a prediction run on them (plus a photo) from the checkpoint alone."""
    root = tmp_path_factory.mktemp("classifier")
    raw = root / "data" / "FashionMNIST" / "raw"  # this run's own, deleted below
    raw.mkdir(parents=True)
    for file in (fashion_mnist_root / "FashionMNIST" / "raw").iterdir():
        (raw / file.name).symlink_to(file)  # the files torchvision extracted there too
    options = ["--data_dir", root / "data", "--output_dir", root / "Results", *CPU]
    options += ["--epochs", "1", "--train_val_sample_rate", "0.03", "--test_sample_rate", "0.01"]
    trainer = VanillaTrainer(build_vanilla_parser().parse_args(list(map(str, options))))
    trainer.train()
    best = trainer.checkpoint_path("best")

    args = ["--model_path", str(best), "--gpu_devices", "cpu"]
    evaluator = VanillaEvaluator(build_vanilla_eval_parser().parse_args(args))
    metrics = evaluator.run()
    test = evaluator.data.test
    with torch.inference_mode():
        probs = evaluator.forward(normalize(test.images, test.scale, test.offset)).softmax(dim=1)
    images = root / "images"
    images.mkdir()
    for index, pixels in enumerate(test.images[:, 0].numpy()):
        Image.fromarray(pixels).save(images / f"{index:03d}.png")
    photo = root / "photo.jpg"
    Image.new("RGB", (64, 50), (240, 240, 240)).save(photo)

    checkpoint = alone(best, root / "alone")
    shutil.rmtree(root / "data")
    preds = root / "preds"
    result = run_script(
        "eval_vanilla.py",
        "--model_path",
        checkpoint,
        "--input",
        images,
        photo,
        "--save_path",
        preds,
        "--gpu_devices",
        "cpu",
        "--num_workers",
        "2",
    )
    return {
        "result": result,
        "checkpoint": checkpoint,
        "data_dir": root / "data",
        "images": images,
        "photo": photo,
        "rows": read_rows(preds / "predictions.csv") if result.returncode == 0 else [],
        "preds": preds,
        "class_names": evaluator.data_info.class_names,
        "metrics": metrics,
        "evaluated": torch.cat(evaluator.preds),  # the evaluator's class of each test image
        "probs": probs,
        "labels": test.targets,
    }


def test_prediction_needs_neither_config_json_nor_the_data(classifier):
    result = classifier["result"]
    assert result.returncode == 0, result.stderr[-3000:]
    assert not classifier["data_dir"].exists()
    assert [p.name for p in classifier["checkpoint"].parent.iterdir()] == ["Vanilla_best_ckpt.pth"]
    assert "predicted 101 images" in result.stdout and "images/s" in result.stdout
    assert len(classifier["rows"]) == 101


def test_csv_rows_match_the_evaluator_on_the_same_images(classifier):
    names = classifier["class_names"]
    rows = [row for row in classifier["rows"] if row["file"] != str(classifier["photo"])]
    assert [row["file"] for row in rows] == sorted(map(str, classifier["images"].iterdir()))
    for row, evaluated, probs in zip(
        rows, classifier["evaluated"], classifier["probs"], strict=True
    ):
        assert row["class"] == names[evaluated]
        top, classes = probs.topk(3)
        assert [row["class"], row["class_2"], row["class_3"]] == [names[c] for c in classes]
        shown = [float(row[key]) for key in ("probability", "probability_2", "probability_3")]
        assert shown == pytest.approx(top.tolist(), abs=2e-6)
    labels = [names[label] for label in classifier["labels"]]
    accuracy = np.mean([row["class"] == label for row, label in zip(rows, labels, strict=True)])
    assert accuracy == pytest.approx(classifier["metrics"]["accuracy"])


def test_a_photo_of_any_size_and_colour_is_classified(classifier):
    (row,) = [row for row in classifier["rows"] if row["file"] == str(classifier["photo"])]
    assert row["class"] in classifier["class_names"]
    shown = [float(row[key]) for key in ("probability", "probability_2", "probability_3")]
    assert shown == sorted(shown, reverse=True) and 0 < sum(shown) <= 1 + 1e-5


def predict_in_process(capsys, *argv: str | Path) -> tuple[int, str, str]:
    """Run eval_vanilla's main as its ``__main__`` does: exit status, stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: eval_vanilla.main([*map(str, argv), "--gpu_devices", "cpu"]))
        raise SystemExit(0)  # what the interpreter does when main returns
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_unreadable_files_are_listed_the_others_predicted_and_the_run_fails(
    classifier, tmp_path, capsys
):
    broken, truncated = tmp_path / "broken.png", tmp_path / "truncated.png"
    broken.write_text("not an image\n")
    truncated.write_bytes((classifier["images"] / "000.png").read_bytes()[:60])
    inputs = [broken, classifier["images"], truncated]
    code, out, err = predict_in_process(
        capsys,
        "--model_path",
        classifier["checkpoint"],
        "--input",
        *inputs,
        "--save_path",
        tmp_path,
    )
    assert code == 2
    assert err.splitlines() == [
        "error: 2 of 102 input files could not be read (listed above); the others were predicted"
    ]
    skipped = [line for line in out.splitlines() if "skipped: cannot read" in line]
    assert [str(broken) in skipped[0], str(truncated) in skipped[1]] == [True, True]
    assert len(read_rows(tmp_path / "predictions.csv")) == 100


def test_earlier_predictions_are_kept_unless_overwrite(classifier, capsys):
    csv_file = classifier["preds"] / "predictions.csv"
    csv_file.write_text("edited by hand\n")
    again = ["--model_path", classifier["checkpoint"], "--input", classifier["images"]]
    again += ["--save_path", classifier["preds"]]
    code, _, err = predict_in_process(capsys, *again)
    assert code == 2 and f"{csv_file} already exists; pass --overwrite True" in err
    assert csv_file.read_text() == "edited by hand\n"
    code, _, _ = predict_in_process(capsys, *again, "--overwrite", "True")
    assert code == 0
    images = [row for row in classifier["rows"] if row["file"] != str(classifier["photo"])]
    rewritten = read_rows(csv_file)
    assert [row["class"] for row in rewritten] == [row["class"] for row in images]
    for row, before in zip(rewritten, images, strict=True):
        assert float(row["probability"]) == pytest.approx(float(before["probability"]), abs=2e-6)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A UNet trained on odd-sized synthetic cars, alone, with its data deleted; images of
    several odd sizes and colour modes to segment."""
    root = tmp_path_factory.mktemp("segmenter")
    ids = write_synthetic_carvana(root / "data", cars=3, size=(97, 61), seed=2)
    options = ["--data_dir", root / "data", "--output_dir", root / "Results", *CPU]
    options += ["--cache_dir", root / "cache", "--epochs", "1", "--img_scale", "0.5"]
    options += ["--base_width", "4", "--batch_size", "8", "--patience", "0"]
    trainer = SegTrainer(build_seg_parser().parse_args(list(map(str, options))))
    trainer.train()

    images = root / "images"
    images.mkdir()
    for name in ids[:3]:
        shutil.copy(root / "data" / "train" / f"{name}.jpg", images)
    car = Image.open(images / f"{ids[0]}.jpg")
    car.resize((33, 47)).save(images / "tall.png")
    car.convert("L").resize((50, 31)).save(images / "grey.jpg")
    checkpoint = alone(trainer.checkpoint_path("last"), root / "alone")
    shutil.rmtree(root / "data")
    shutil.rmtree(root / "cache")
    return {"checkpoint": checkpoint, "images": images}


def test_masks_and_overlays_have_each_images_own_size(segmenter, tmp_path):
    eval_seg_on_carvana.main(
        [
            *("--model_path", str(segmenter["checkpoint"]), "--input", str(segmenter["images"])),
            *("--save_path", str(tmp_path), "--viz", "True", *CPU),
        ]
    )
    inputs = sorted(segmenter["images"].iterdir())
    assert len(inputs) == 5
    sizes = set()
    for image in inputs:
        size = Image.open(image).size
        sizes.add(size)
        with Image.open(tmp_path / f"{image.stem}_pred.png") as mask:
            assert (mask.size, mask.mode) == (size, "L")
            assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
        assert Image.open(tmp_path / f"{image.stem}_overlay.png").size == size
    assert sizes == {(97, 61), (33, 47), (50, 31)}
    assert len(list(tmp_path.iterdir())) == 2 * len(inputs)
