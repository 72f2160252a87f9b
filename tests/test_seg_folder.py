"""``--data_type SegFolder``: images/ + masks/ of binary masks or of classes, grouped splits and
folds, every bad-input case, and the scripts end to end with masks of three classes."""

import json
import shutil
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_script
from PIL import Image

from data.memory import TensorSplit
from data.pairs import BINARY, PairDataset
from data.seg_folder import build_seg_folder, find_pairs
from data.synthetic_carvana import VIEWS, write_seg_folder, write_synthetic_carvana
from eval_seg_on_carvana import SegEvaluator, build_seg_eval_parser
from trainer_seg_on_carvana import SegTrainer, build_seg_parser
from utils.errors import UsageError

CARS = 4
CAR_ID = "^([^_]+)_"  # Carvana's <car>_<view>


@pytest.fixture(scope="module")
def cars(tmp_path_factory) -> Path:
    """Four synthetic cars of 32x24 pixels in Kaggle's layout."""
    root = tmp_path_factory.mktemp("carvana")
    write_synthetic_carvana(root, cars=CARS, size=(32, 24), seed=1)
    return root


@pytest.fixture
def binary(cars, tmp_path) -> Path:
    write_seg_folder(cars, tmp_path / "binary")
    return tmp_path / "binary"


@pytest.fixture
def halves(cars, tmp_path) -> Path:
    write_seg_folder(cars, tmp_path / "halves", halves=True)
    return tmp_path / "halves"


def options(data_dir: Path, *args: str) -> Namespace:
    return build_seg_parser().parse_args(
        ["--data_type", "SegFolder", "--data_dir", str(data_dir), "--mask_suffix", "_mask", *args]
    )


def test_masks_pair_with_images_by_stem_and_suffix(binary):
    pairs = find_pairs(binary, "_mask")
    assert len(pairs) == CARS * VIEWS
    for pair in pairs:
        assert pair.image == binary / "images" / f"{pair.id}.png"
        assert pair.mask == binary / "masks" / f"{pair.id}_mask.png"
        assert pair.group == pair.id  # no pattern: each image is its own group
    with pytest.raises(UsageError, match=r"has no mask: .* is there: pass --mask_suffix _mask$"):
        find_pairs(binary)  # without the suffix, no stem matches: the message names it
    with pytest.raises(
        UsageError, match=r"_m.png; .*_mask.png is there: pass --mask_suffix _mask$"
    ):
        find_pairs(binary, "_m")


def test_the_group_pattern_names_each_images_object(binary):
    pairs = find_pairs(binary, "_mask", CAR_ID)
    assert len({p.group for p in pairs}) == CARS
    assert all(p.id.startswith(p.group + "_") for p in pairs)


def test_a_grouped_split_keeps_each_object_in_one_split(binary):
    opt = options(binary, "--group_pattern", CAR_ID, "--in_memory", "False", "--cache", "False")
    data = build_seg_folder(opt)
    groups = [{p.group for p in split.pairs} for split in (data.train, data.val, data.test)]
    assert all(groups) and sum(len(g) for g in groups) == CARS
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_without_a_pattern_images_split_one_by_one(binary):
    data = build_seg_folder(options(binary, "--in_memory", "False", "--cache", "False"))
    ids = [set(split.ids) for split in (data.train, data.val, data.test)]
    assert sum(map(len, ids)) == CARS * VIEWS and not (ids[0] & ids[2] or ids[1] & ids[2])
    test_groups = {i.split("_")[0] for i in ids[2]}
    assert len(test_groups) > 1  # images of several cars in the test split: split by image


def test_folds_are_disjoint_by_group_and_cover_every_object(binary):
    tested = []
    for fold in range(2):
        opt = options(binary, "--group_pattern", CAR_ID, "--folds", "2", "--fold", str(fold))
        data = build_seg_folder(Namespace(**{**vars(opt), "in_memory": False, "cache": False}))
        test = {p.group for p in data.test.pairs}
        rest = {p.group for p in data.train.pairs} | {p.group for p in data.val.pairs}
        assert not test & rest
        tested.append(test)
    assert not tested[0] & tested[1] and len(tested[0] | tested[1]) == CARS


@pytest.mark.parametrize("white", [1, 255])
def test_binary_masks_are_read_as_zero_and_one(binary, white):
    if white == 1:  # the same masks written as 0/1
        for path in (binary / "masks").iterdir():
            Image.fromarray((np.array(Image.open(path)) > 0).astype(np.uint8)).save(path)
    data = build_seg_folder(options(binary, "--group_pattern", CAR_ID))
    assert data.num_outputs == BINARY and data.class_names == ["object"]
    assert isinstance(data.train, TensorSplit)
    assert set(data.train.targets.unique().tolist()) == {0, 1}


def test_masks_of_classes_are_read_as_their_indices(halves, caplog):
    with caplog.at_level("INFO"):
        data = build_seg_folder(options(halves, "--group_pattern", CAR_ID))
    assert "3 classes (0..2), read from the masks" in caplog.text
    assert data.num_outputs == 3
    assert data.class_names == ["background", "class_1", "class_2"]
    assert set(data.train.targets.unique().tolist()) == {0, 1, 2}
    per_sample = build_seg_folder(
        options(halves, "--group_pattern", CAR_ID, "--in_memory", "False")
    )
    assert isinstance(per_sample.train, PairDataset)
    for index in range(3):  # the two paths give the same masks (val: not augmented)
        assert torch.equal(per_sample.val[index][1], data.val[index][1])
    for mask in data.train.targets[:, 0]:  # the car's upper half 1, its lower half 2
        rows = (mask > 0).any(dim=1).nonzero().flatten()
        middle = (rows[0] + rows[-1] + 1) // 2
        assert 2 not in mask[: middle - 1].unique() and 1 not in mask[middle + 1 :].unique()


def test_class_names_and_counts_can_be_given(halves, binary):
    named = options(halves, "--num_classes", "3", "--class_names", "bg", "front", "back")
    assert build_seg_folder(named).class_names == ["bg", "front", "back"]
    assert build_seg_folder(options(binary, "--class_names", "car")).class_names == ["car"]
    assert build_seg_folder(options(binary, "--num_classes", "2")).num_outputs == BINARY
    with pytest.raises(UsageError, match="got 2 names; expected 3"):
        build_seg_folder(options(halves, "--class_names", "a", "b"))


def test_class_indices_are_not_mistaken_for_binary_masks(halves):
    with pytest.raises(UsageError, match=r"has values \[0, 1, 2\]; expected \{0,1\} or \{0,255\}"):
        build_seg_folder(options(halves, "--num_classes", "2"))


def test_a_mask_value_beyond_the_classes_is_named(halves):
    path = sorted((halves / "masks").iterdir())[5]
    labels = np.array(Image.open(path))
    labels[0, 0] = 3
    Image.fromarray(labels).save(path)
    with pytest.raises(UsageError, match=rf"mask {path} has the value 3; expected class indices"):
        build_seg_folder(options(halves, "--num_classes", "3"))
    uncached = options(halves, "--num_classes", "3", "--cache", "False", "--in_memory", "False")
    data = build_seg_folder(uncached)  # read one sample at a time: found when it is read
    with pytest.raises(UsageError, match=rf"mask {path} has the value 3"):
        for split in (data.train, data.val, data.test):
            for index in range(len(split)):
                split[index]


def test_grey_level_masks_are_refused(binary):
    path = next((binary / "masks").iterdir())
    labels = np.array(Image.open(path))
    labels[0, :3] = (7, 128, 200)
    Image.fromarray(labels).save(path)
    with pytest.raises(UsageError, match=r"expected \{0,255\} \(binary\) or class indices"):
        build_seg_folder(options(binary))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda root: shutil.rmtree(root / "masks"), "no masks/ folder; expected images/"),
        (lambda root: [p.unlink() for p in (root / "images").iterdir()], "no image files in"),
        (
            lambda root: sorted((root / "masks").iterdir())[0].unlink(),
            "images/[0-9a-f_]+.png has no mask: expected .*masks/[0-9a-f_]+_mask.png",
        ),
        (
            lambda root: sorted((root / "images").iterdir())[0].unlink(),
            "masks/[0-9a-f_]+_mask.png has no image",
        ),
        (
            lambda root: (
                shutil.copy(sorted((root / "images").iterdir())[0], root / "images/x.png")
                and shutil.copy(sorted((root / "images").iterdir())[0], root / "images/x.jpg")
            ),
            "share a name; expected one file each",
        ),
    ],
    ids=["no masks folder", "no images", "image without mask", "mask without image", "twins"],
)
def test_each_broken_layout_is_one_line_naming_it(binary, damage, message):
    damage(binary)
    with pytest.raises(UsageError, match=message):
        build_seg_folder(options(binary))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("([", "not a regular expression"),
        ("^car", "has no \\(group\\)"),
        ("^(zzz)", "does not match its name"),
    ],
)
def test_a_bad_group_pattern_is_one_line(binary, pattern, message):
    with pytest.raises(UsageError, match=message):
        find_pairs(binary, "_mask", pattern)


@pytest.mark.parametrize("in_memory", ["True", "False"])
def test_a_mask_of_another_size_is_named(binary, in_memory):
    path = sorted((binary / "masks").iterdir())[2]
    Image.new("L", (31, 24)).save(path)
    with pytest.raises(UsageError, match=rf"mask {path} is 31x24 but its image is 32x24"):
        build_seg_folder(options(binary, "--in_memory", in_memory, "--cache", "False"))


@pytest.mark.parametrize("in_memory", ["True", "False"])
def test_images_of_different_sizes_are_one_line(binary, in_memory):
    """Batches stack images: sizes that differ are refused before training, on either path
    (the test split, evaluated per sample, too)."""
    pairs = find_pairs(binary, "_mask")
    path, mask = pairs[1].image, pairs[1].mask
    Image.open(path).resize((40, 30)).save(path)
    Image.open(mask).resize((40, 30), Image.Resampling.NEAREST).save(mask)
    with pytest.raises(
        UsageError,
        match=rf"image {path} is 10x8 at --img_scale 0.25, but .* expected images of one size",
    ):
        build_seg_folder(options(binary, "--in_memory", in_memory, "--cache", "False"))


def test_bad_input_exits_2_with_one_line_and_writes_nothing(binary, tmp_path):
    sorted((binary / "masks").iterdir())[0].unlink()
    out = tmp_path / "Results"
    result = run_script(
        "trainer_seg_on_carvana.py",
        *("--data_type", "SegFolder", "--data_dir", binary, "--mask_suffix", "_mask"),
        *("--output_dir", out, "--gpu_devices", "cpu"),
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "has no mask" in result.stderr
    assert not out.exists()


def test_three_classes_train_evaluate_and_predict_from_the_checkpoint_alone(halves, tmp_path):
    """Train on masks of three classes, score each class, then predict index PNGs and colour
    overlays with the data folder gone."""
    cpu = ("--gpu_devices", "cpu", "--num_workers", "0")
    out = tmp_path / "Results"
    result = run_script(
        "trainer_seg_on_carvana.py",
        *("--data_type", "SegFolder", "--data_dir", halves, "--mask_suffix", "_mask"),
        *("--group_pattern", CAR_ID, "--img_scale", "1.0", "--base_width", "8"),
        *("--epochs", "2", "--output_dir", out, *cpu),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = out.iterdir()
    assert "classes background, class_1, class_2" in next(run.glob("*.log")).read_text()
    checkpoint = run / "UNet_best_ckpt.pth"
    result = run_script("eval_seg_on_carvana.py", "--model_path", checkpoint, *cpu)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "class_2" in result.stdout
    metrics = json.loads((run / "UNet_best_ckpt_test_metrics.json").read_text())["metrics"]
    per_class = metrics["per_class_dice"]
    assert list(per_class) == ["background", "class_1", "class_2"]
    assert metrics["dice"] == pytest.approx((per_class["class_1"] + per_class["class_2"]) / 2)
    photos = tmp_path / "photos"
    shutil.copytree(halves / "images", photos)
    shutil.rmtree(halves)
    preds = tmp_path / "preds"
    result = run_script(
        "eval_seg_on_carvana.py",
        *("--model_path", checkpoint, "--input", photos, "--save_path", preds, *cpu),
        *("--viz", "True", "--viz_freq", "16"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first = sorted(photos.iterdir())[0]
    mask = Image.open(preds / f"{first.stem}_pred.png")
    assert mask.mode == "P" and mask.size == (32, 24)
    assert set(np.unique(np.array(mask)).tolist()) <= {0, 1, 2}
    assert len(list(preds.glob("*_pred.png"))) == CARS * VIEWS
    assert len(list(preds.glob("*_overlay.png"))) == CARS


def test_a_folder_of_mixed_sizes_trains_at_img_size_and_is_scored_and_predicted_at_each_own(
    binary, tmp_path
):
    """Every other pair made larger (image bilinear, mask nearest): refused at one scale, it
    trains at --img_size, and each test image is scored and predicted at its own size."""
    sizes = {}
    for k, pair in enumerate(find_pairs(binary, "_mask")):
        if k % 2:
            Image.open(pair.image).resize((40, 30)).save(pair.image)
            Image.open(pair.mask).resize((40, 30), Image.Resampling.NEAREST).save(pair.mask)
        sizes[pair.id] = Image.open(pair.image).size
    with pytest.raises(UsageError, match=r"or --img_size HxW to resize each to one"):
        build_seg_folder(options(binary, "--cache", "False"))
    argv = ["--img_size", "16x24", "--group_pattern", CAR_ID, "--epochs", "1"]
    argv += ["--output_dir", str(tmp_path / "runs"), "--cache_dir", str(tmp_path / "cache")]
    argv += ["--gpu_devices", "cpu", "--num_workers", "0", "--base_width", "4"]
    trainer = SegTrainer(options(binary, *argv))
    assert trainer.data.input_shape == (3, 16, 24)
    trainer.train()
    checkpoint = trainer.checkpoint_path("last")
    evaluator = SegEvaluator(
        build_seg_eval_parser().parse_args(
            ["--model_path", str(checkpoint), "--gpu_devices", "cpu", "--num_workers", "0"]
        )
    )
    metrics = evaluator.run()
    tested = trainer.data.groups["test"]
    shown = {f"{w}x{h}" for pair_id, (w, h) in sizes.items() if pair_id.split("_")[0] in tested}
    assert set(metrics["resolution"].split(", ")) == shown and len(shown) == 2
    assert metrics["images"] == sum(1 for p in sizes if p.split("_")[0] in tested)
    out = tmp_path / "predicted"
    images = sorted((binary / "images").iterdir())[:2]
    predictor = SegEvaluator(
        build_seg_eval_parser().parse_args(
            [
                *("--model_path", str(checkpoint), "--gpu_devices", "cpu", "--num_workers", "0"),
                *("--input", *map(str, images), "--save_path", str(out)),
            ]
        )
    )
    predictor.run()
    for image in images:
        assert Image.open(out / f"{image.stem}_pred.png").size == sizes[image.stem]


@pytest.mark.parametrize("in_memory", ["True", "False"])
def test_aug_crop_trains_on_crops_and_validates_and_tests_whole_images(binary, tmp_path, in_memory):
    """--aug_crop: training batches come at the crop's size on either path; validation and
    the evaluator's test split come whole, and the evaluator scores at the images' size."""
    argv = ["--aug_crop", "16x16", "--group_pattern", CAR_ID, "--img_scale", "1.0"]
    argv += ["--epochs", "1", "--in_memory", in_memory, "--base_width", "4"]
    argv += ["--output_dir", str(tmp_path / "runs"), "--cache_dir", str(tmp_path / "cache")]
    argv += ["--gpu_devices", "cpu", "--num_workers", "0"]
    trainer = SegTrainer(options(binary, *argv))
    trainer.train_loader.sampler.set_epoch(0)
    images, masks = next(iter(trainer.train_loader))
    assert images.shape[1:] == (3, 16, 16) and masks.shape[1:] == (1, 16, 16)
    images, masks = next(iter(trainer.val_loader))
    assert images.shape[1:] == (3, 24, 32) and masks.shape[1:] == (1, 24, 32)
    assert trainer.data.input_shape == (3, 24, 32)
    trainer.train()
    evaluator = SegEvaluator(
        build_seg_eval_parser().parse_args(
            [
                *("--model_path", str(trainer.checkpoint_path("last"))),
                *("--gpu_devices", "cpu", "--num_workers", "0"),
            ]
        )
    )
    assert evaluator.run()["resolution"] == "32x24"


def test_a_crop_larger_than_the_images_or_on_class_folders_is_one_line(binary, tmp_path):
    with pytest.raises(
        UsageError,
        match=r"--aug_crop 12x40 does not fit in the training images, 24x32 at --img_scale 1; "
        r"expected a crop of at most 24x32",
    ):
        build_seg_folder(
            options(binary, "--aug_crop", "12x40", "--img_scale", "1", "--cache", "False")
        )
    with pytest.raises(UsageError, match=r"at --img_size 8x8; expected a crop of at most 8x8"):
        build_seg_folder(options(binary, "--aug_crop", "9", "--img_size", "8", "--cache", "False"))
