"""``--data_type ImageFolder``: class folders of a few tiny PNGs, written in tmp_path."""

import argparse
import csv
import logging
import os
import shutil
from argparse import Namespace
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_script
from PIL import Image

import eval_vanilla
import trainer_vanilla
from data import image_folder
from data.data_entry import build_datasets, build_loader, input_loader
from data.image_files import image_size
from data.image_folder import build_image_folder, load_input, pixel_stats
from data.memory import TensorSplit
from data.splits import DataInfo, stratified_kfold, stratified_split, stratified_subsample
from trainer_vanilla import build_vanilla_parser
from utils.errors import UsageError

CLASSES = ("cat", "dog", "eel")


def write_images(folder: Path, counts: dict[str, int], size=(5, 4), mode="L", seed=0) -> None:
    """``counts[name]`` PNGs of ``size`` (width, height) in ``folder/<name>``; class ``k`` of
    the sorted names is dark to light, ``k * 100`` plus noise, so the classes separate."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(sorted(counts)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(counts[name]):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            pixels = (k * 100 + rng.integers(0, 40, shape)).astype(np.uint8)
            Image.fromarray(pixels, mode).save(folder / name / f"{i:02d}.png")


def options(data_dir: Path, **changes) -> Namespace:
    """The options the trainer's parser gives ImageFolder, with ``changes``."""
    argv = ["--data_type", "ImageFolder", "--data_dir", str(data_dir)]
    opt = build_vanilla_parser().parse_args(argv)
    return Namespace(**{**vars(opt), **changes})


def files(split) -> list[Path]:
    return [s.path for s in split.samples]


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    write_images(tmp_path / "flat", dict.fromkeys(CLASSES, 10))
    return tmp_path / "flat"


# ----- layouts -------------------------------------------------------------------------------


def test_flat_class_folders_are_the_sorted_classes_in_every_split(flat):
    for _ in range(2):  # the second build finds the cache folder beside the classes
        data = build_image_folder(options(flat))
        assert data.class_names == list(CLASSES) and data.num_outputs == 3
        sizes = [len(data.train), len(data.val), len(data.test)]
        assert sizes == [21, 3, 6]  # test 0.2 of 10 a class, val 0.1 of the 8 left: 1
        for split in (data.train, data.val, data.test):
            assert set(split.targets.tolist()) == {0, 1, 2}
    assert (flat / ".cache" / "image_folder").is_dir()


def test_train_val_and_test_folders_are_used_as_they_are(tmp_path):
    write_images(tmp_path / "train", dict.fromkeys(CLASSES, 4))
    write_images(tmp_path / "val", dict.fromkeys(CLASSES, 2), seed=1)
    write_images(tmp_path / "test", {"dog": 3, "eel": 1}, seed=2)  # a class may be missing
    data = build_image_folder(options(tmp_path, in_memory=False))
    assert files(data.train) == sorted((tmp_path / "train").rglob("*.png"))
    assert files(data.val) == sorted((tmp_path / "val").rglob("*.png"))
    assert files(data.test) == sorted((tmp_path / "test").rglob("*.png"))
    assert [label for _, label in data.test] == [1, 1, 1, 2]  # the training classes' indices


def test_a_train_folder_alone_gives_val_and_test_drawn_from_it(tmp_path):
    write_images(tmp_path / "train", dict.fromkeys(CLASSES, 10))
    write_images(tmp_path / "test", dict.fromkeys(CLASSES, 2), seed=1)
    alone = tmp_path / "alone"
    shutil.copytree(tmp_path / "train", alone / "train")
    data = build_image_folder(options(alone, in_memory=False))
    drawn = [files(data.train), files(data.val), files(data.test)]
    assert [len(f) for f in drawn] == [21, 3, 6]
    assert sorted(p for f in drawn for p in f) == sorted((alone / "train").rglob("*.png"))
    with_test = build_image_folder(options(tmp_path, in_memory=False))
    assert files(with_test.test) == sorted((tmp_path / "test").rglob("*.png"))
    assert len(with_test.train) + len(with_test.val) == 30


# ----- stratified splits and folds ---------------------------------------------------------


LABELS = [0] * 20 + [1] * 10 + [2] * 5


def test_stratified_split_holds_a_share_of_every_class_seeded_and_disjoint():
    kept, held = stratified_split(LABELS, 0.2, seed=3)
    assert Counter(LABELS[i] for i in held) == {0: 4, 1: 2, 2: 1}
    assert sorted(kept + held) == list(range(len(LABELS))) and not set(kept) & set(held)
    assert stratified_split(LABELS, 0.2, seed=3) == (kept, held)
    assert stratified_split(LABELS, 0.2, seed=4)[1] != held
    few = [0, 0, 1]
    rest, tiny = stratified_split(few, 0.01, seed=0)
    assert [few[i] for i in tiny] == [0] and 2 in rest  # a lone sample stays to train on


def test_stratified_subsample_keeps_every_class():
    kept = stratified_subsample(LABELS, 0.1, seed=0)
    assert Counter(LABELS[i] for i in kept) == {0: 2, 1: 1, 2: 1}
    assert stratified_subsample(LABELS, 1.0, seed=0) == list(range(len(LABELS)))


def test_stratified_folds_are_disjoint_cover_the_pool_and_spread_each_class():
    folds = [stratified_kfold(LABELS, 3, fold, seed=1) for fold in range(3)]
    held = [h for _, h in folds]
    assert sorted(p for h in held for p in h) == list(range(len(LABELS)))
    for rest, h in folds:
        assert sorted(rest + h) == list(range(len(LABELS)))
    assert max(map(len, held)) - min(map(len, held)) <= 1
    for label, count in Counter(LABELS).items():
        per_fold = [sum(LABELS[i] == label for i in h) for h in held]
        assert sum(per_fold) == count and max(per_fold) - min(per_fold) <= 1
    with pytest.raises(UsageError, match="--fold 3"):
        stratified_kfold(LABELS, 3, 3, seed=1)


def test_folds_deal_the_training_images_and_val_is_drawn_from_the_rest(flat):
    tests = []
    for fold in range(3):
        data = build_image_folder(options(flat, folds=3, fold=fold, in_memory=False))
        assert not set(files(data.test)) & set(files(data.train) + files(data.val))
        assert {label for _, label in data.test} == {0, 1, 2}
        tests.append(set(files(data.test)))
    assert not tests[0] & tests[1] and not tests[1] & tests[2]
    assert set().union(*tests) == set(flat.rglob("*.png"))


def test_sample_rates_keep_a_share_of_each_class(flat):
    data = build_image_folder(options(flat, train_val_sample_rate=0.5, test_sample_rate=0.5))
    assert [len(data.train), len(data.val), len(data.test)] == [9, 3, 3]
    assert set(data.train.targets.tolist()) == {0, 1, 2}


# ----- the input shape -----------------------------------------------------------------------


def test_channels_and_size_come_from_the_data_unless_given(tmp_path, caplog):
    write_images(tmp_path / "grey", dict.fromkeys(CLASSES, 3), size=(5, 4))
    with caplog.at_level(logging.INFO):
        assert build_image_folder(options(tmp_path / "grey")).input_shape == (1, 4, 5)
    assert "--img_size not given: 4x5, the size of " + str(tmp_path / "grey/cat/00.png") in (
        caplog.text
    )
    write_images(tmp_path / "grey", {"cat": 1}, size=(9, 9), mode="RGB", seed=1)  # one colour
    assert build_image_folder(options(tmp_path / "grey")).input_shape == (3, 9, 9)
    shaped = build_image_folder(options(tmp_path / "grey", channels=1, img_size="6x8"))
    assert shaped.input_shape == (1, 6, 8) and shaped.train.images.shape[1:] == (1, 6, 8)


def test_img_size_takes_n_or_h_x_w():
    assert image_size("7") == "7x7" and image_size("3X4") == "3x4"
    for bad in ("0", "x3", "1x2x3", "big"):
        with pytest.raises(argparse.ArgumentTypeError, match="N or HxW"):
            image_size(bad)
    argv = ["--data_type", "ImageFolder", "--img_size", "5", "--channels", "3"]
    opt = build_vanilla_parser().parse_args(argv)
    assert (opt.img_size, opt.channels) == ("5x5", 3)


def test_sixteen_bit_greys_are_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 32896, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    info = DataInfo((1, 1, 3), 2, ("a", "b"), (0.0,), (1 / 255,))
    assert load_input(path, Namespace(), info).flatten().tolist() == [0, 128, 255]


# ----- normalisation, the two paths, prediction ---------------------------------------------


def test_mean_and_std_are_measured_on_the_training_split_and_carried_in_data_info(flat):
    data = build_image_folder(options(flat))
    pixels = data.train.images.double() / 255
    assert data.mean == pytest.approx((pixels.mean().item(),))
    assert data.std == pytest.approx((pixels.std(unbiased=False).item(),))
    assert (data.info.mean, data.info.std) == (data.mean, data.std)
    assert data.train.mean == data.mean and data.test.std == data.std
    assert pixel_stats(torch.full((2, 1, 3, 3), 7, dtype=torch.uint8))[1] == (1.0,)


def test_in_memory_and_per_sample_inputs_are_equal(tmp_path):
    write_images(tmp_path, dict.fromkeys(CLASSES, 6), size=(7, 5), mode="RGB")
    memory = build_image_folder(options(tmp_path, img_size="4x6"))
    per_sample = build_image_folder(options(tmp_path, img_size="4x6", in_memory=False))
    assert isinstance(memory.train, TensorSplit) and not isinstance(per_sample.train, TensorSplit)
    assert (memory.mean, memory.std) == (per_sample.mean, per_sample.std)
    for fast, slow in ((memory.train, per_sample.train), (memory.test, per_sample.test)):
        assert len(fast) == len(slow)
        for (x, y), (x_ref, y_ref) in zip(fast, slow, strict=True):
            torch.testing.assert_close(x, x_ref, rtol=0, atol=1e-5)
            assert y == y_ref


def test_load_input_is_the_datasets_input_for_the_same_file(tmp_path):
    write_images(tmp_path, dict.fromkeys(CLASSES, 4), size=(6, 6), mode="RGB")
    opt = options(tmp_path, img_size="3x5", in_memory=False)
    data = build_image_folder(opt)
    load = input_loader(opt, data.info)
    for index, sample in enumerate(data.test.samples):
        assert torch.equal(load(sample.path), data.test[index][0])
    memory = build_image_folder(options(tmp_path, img_size="3x5"))
    torch.testing.assert_close(
        load(data.test.samples[0].path), memory.test[0][0], atol=1e-5, rtol=0
    )


def test_the_cache_is_reused_and_redone_when_a_file_changes(flat, monkeypatch, caplog):
    first = build_image_folder(options(flat))
    (cached,) = (flat / ".cache" / "image_folder").iterdir()
    decoded = []
    real = image_folder.decode
    monkeypatch.setattr(image_folder, "decode", lambda *a: decoded.append(1) or real(*a))
    again = build_image_folder(options(flat))
    assert not decoded and torch.equal(again.train.images, first.train.images)

    changed = flat / "cat" / "00.png"
    Image.new("L", (5, 4), 255).save(changed)
    os.utime(changed, ns=(1, 1))
    redone = build_image_folder(options(flat))
    assert decoded == [1]
    everything = torch.cat([redone.train.images, redone.val.images, redone.test.images])
    assert (everything == 255).flatten(1).all(1).sum() == 1  # the new white image

    cached.write_bytes(b"broken")
    assert torch.equal(build_image_folder(options(flat)).train.images, redone.train.images)
    assert decoded == [1, 1]
    build_image_folder(options(flat, cache=False))
    assert decoded == [1, 1, 1] and cached.stat().st_size > 100  # rewritten, then left alone


# ----- bad input -----------------------------------------------------------------------------


def bad_input(data_dir: Path, **changes) -> str:
    with pytest.raises(UsageError) as error:
        build_image_folder(options(data_dir, **changes))
    message = str(error.value)
    assert "\n" not in message
    return message


def test_each_bad_layout_is_one_line_naming_the_path(tmp_path):
    assert f"--data_dir {tmp_path / 'none'}: no such folder" in bad_input(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    assert "no class folders in" in bad_input(tmp_path / "empty")
    write_images(tmp_path / "one", {"cat": 2})
    assert f"one class folder ({tmp_path / 'one' / 'cat'})" in bad_input(tmp_path / "one")
    write_images(tmp_path / "hollow", {"cat": 2, "dog": 2})
    (tmp_path / "hollow" / "eel").mkdir()
    (tmp_path / "hollow" / "eel" / "notes.txt").write_text("no image")
    message = bad_input(tmp_path / "hollow")
    assert f"class folder {tmp_path / 'hollow' / 'eel'} holds no image" in message
    write_images(tmp_path / "split" / "train", {"cat": 3, "dog": 3})
    write_images(tmp_path / "split" / "val", {"cat": 1, "emu": 1})
    message = bad_input(tmp_path / "split")
    assert f"class folder {tmp_path / 'split' / 'val' / 'emu'} is not a class of" in message
    write_images(tmp_path / "notrain" / "test", {"cat": 1, "dog": 1})
    assert "test/ but no train/ folder" in bad_input(tmp_path / "notrain")
    write_images(tmp_path / "few", {"cat": 1, "dog": 1})
    assert "too few training images (2)" in bad_input(tmp_path / "few")


def test_bad_data_dir_on_the_command_line_exits_2_with_one_line_and_no_run_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_script(
        "trainer_vanilla.py",
        "--data_type",
        "ImageFolder",
        "--data_dir",
        tmp_path / "empty",
        "--output_dir",
        tmp_path / "Results",
        "--gpu_devices",
        "cpu",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: --data_dir {tmp_path / 'empty'}: no class folders in {tmp_path / 'empty'}; "
        f"expected {image_folder.LAYOUT}"
    ]
    assert not (tmp_path / "Results").exists()


def test_an_unreadable_image_is_skipped_and_counted(flat, caplog):
    (flat / "dog" / "junk.png").write_bytes(b"not a png")
    cut = flat / "eel" / "cut.png"
    Image.new("L", (40, 40), 9).save(cut)
    cut.write_bytes(cut.read_bytes()[:-30])  # a whole header, the end missing
    with caplog.at_level(logging.WARNING):
        data = build_image_folder(options(flat))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert str(flat / "dog" / "junk.png") in warnings[0] and str(cut) in warnings[1]
    assert warnings[2] == "skipped 2 unreadable image files of 32"
    assert len(data.train) + len(data.val) + len(data.test) == 30


# ----- augmentation --------------------------------------------------------------------------


def first_training_batch(data) -> tuple[torch.Tensor, torch.Tensor]:
    opt = Namespace(batch_size=64, seed=0, num_workers=0)
    return next(iter(build_loader(data.train, opt, shuffle=False, device=torch.device("cpu"))))


@pytest.mark.parametrize("in_memory", [True, False], ids=["memory", "per-sample"])
def test_augmentation_changes_the_training_images_alone(tmp_path, in_memory):
    """--aug_hflip 1: each training input is its plain input mirrored, on the device or in
    the Dataset; labels, validation and test are as without it."""
    write_images(tmp_path, dict.fromkeys(CLASSES, 6), size=(7, 5), mode="RGB")
    plain = build_image_folder(options(tmp_path, in_memory=in_memory))
    flipped = build_image_folder(options(tmp_path, in_memory=in_memory, aug_hflip=1.0))
    (inputs, labels), (plain_inputs, plain_labels) = map(first_training_batch, (flipped, plain))
    assert torch.equal(labels, plain_labels)
    torch.testing.assert_close(inputs, plain_inputs.flip(-1), rtol=0, atol=1e-5)
    for split in ("val", "test"):
        x, y = getattr(flipped, split)[0]
        assert torch.equal(x, getattr(plain, split)[0][0]) and y == getattr(plain, split)[0][1]


def test_per_sample_draws_are_seeded_by_epoch_and_index(tmp_path):
    write_images(tmp_path, dict.fromkeys(CLASSES, 6), size=(9, 9), mode="RGB")
    data = build_image_folder(options(tmp_path, in_memory=False, augment="carvana"))
    assert data.train.epoch_keyed
    first, again, later = data.train[(0, 3)][0], data.train[(0, 3)][0], data.train[(1, 3)][0]
    assert torch.equal(first, again) and not torch.equal(first, later)
    assert not torch.equal(first, data.train[(0, 4)][0])


def test_recolouring_is_refused_for_class_folders(flat):
    assert "--aug_recolor recolours the object a mask marks" in bad_input(flat, aug_recolor=0.5)


def test_a_crop_is_refused_for_class_folders(flat):
    assert "expected no --aug_crop with ImageFolder" in bad_input(flat, aug_crop="4x4")


class StoppedAt(trainer_vanilla.VanillaTrainer):
    """Stops with a Ctrl-C before the 5th batch."""

    def augment(self, inputs, targets):
        if self.global_step == 4:
            raise KeyboardInterrupt
        return super().augment(inputs, targets)


@pytest.mark.parametrize(
    ("in_memory", "workers"), [(True, 0), (False, 2)], ids=["device", "workers"]
)
def test_an_augmented_run_resumes_exactly(tmp_path, in_memory, workers):
    """Stopped in epoch 2 and resumed, an augmented run ends with the weights of a run never
    stopped: the draws are seeded by batch (on the device) or by sample (in workers)."""
    write_images(tmp_path / "data", dict.fromkeys(CLASSES, 8), size=(8, 8), mode="RGB")
    args = ["--data_type", "ImageFolder", "--data_dir", str(tmp_path / "data")]
    args += ["--model_type", "SmallCNN", "--epochs", "2", "--batch_size", "6", "--augment"]
    args += ["carvana", "--in_memory", str(in_memory), "--num_workers", str(workers)]
    args += ["--gpu_devices", "cpu", "--deterministic", "True", "--amp", "off"]

    def run(trainer_class, out, *extra):
        opt = build_vanilla_parser().parse_args([*args, "--output_dir", str(out), *extra])
        return trainer_class(opt)

    whole = run(trainer_vanilla.VanillaTrainer, tmp_path / "whole")
    whole.train()
    assert whole.steps_per_epoch == 3  # 15 training images in batches of 6
    stopped = run(StoppedAt, tmp_path / "stopped")
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    checkpoint = stopped.run_dir / "SmallCNN_interrupt_ckpt.pth"
    resumed = run(trainer_vanilla.VanillaTrainer, tmp_path / "stopped", "--resume", str(checkpoint))
    assert (resumed.epoch, resumed.batch_in_epoch) == (1, 1)
    resumed.train()
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_a_file_cut_short_after_its_header_is_skipped_where_it_is_read(tmp_path, caplog):
    """A JPEG whose header reads but whose pixels stop short is found only when decoded: on
    the per-sample path, in a worker, where the next image stands in for it with a warning."""
    write_images(tmp_path / "train", dict.fromkeys(CLASSES, 4), size=(8, 8), mode="RGB")
    write_images(tmp_path / "val", dict.fromkeys(CLASSES, 2), size=(8, 8), mode="RGB")
    write_images(tmp_path / "test", dict.fromkeys(CLASSES, 1), size=(8, 8), mode="RGB")
    cut = tmp_path / "val" / "cat" / "00.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cut.unlink()
    cut = cut.with_suffix(".jpg")
    Image.fromarray(noise).save(cut, quality=95)
    cut.write_bytes(cut.read_bytes()[:-4000])  # the header whole, most pixels gone
    with caplog.at_level(logging.WARNING):
        data = build_image_folder(options(tmp_path, in_memory=False))
        at = [s.path for s in data.val.samples].index(cut)
        stand_in, again, following = data.val[at], data.val[at], data.val[at + 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"skipped: cannot read {cut}" in warnings[0]
    assert len(data.val) == 6
    for x, y in (stand_in, again):
        assert torch.equal(x, following[0]) and y == following[1]
    shape, stats = data.info.input_shape, (data.mean, data.std)
    with pytest.raises(UsageError, match="no image of this split can be read"):
        image_folder.ImageFolderSplit([image_folder.Sample(cut, 0)], shape, *stats)[0]


# ----- end to end ----------------------------------------------------------------------------


def test_train_evaluate_then_predict_from_the_checkpoint_alone(tmp_path, capsys):
    data = tmp_path / "data"
    write_images(data / "train", {"dark": 12, "light": 12}, size=(6, 6), mode="RGB")
    write_images(data / "test", {"dark": 3, "light": 3}, size=(6, 6), mode="RGB", seed=1)
    out = tmp_path / "Results"
    trainer_vanilla.main(
        [
            *("--data_type", "ImageFolder", "--data_dir", str(data), "--output_dir", str(out)),
            *("--epochs", "2", "--batch_size", "8", "--lr", "0.01", "--flip", "True"),
            *("--gpu_devices", "cpu", "--num_workers", "0"),
        ]
    )
    (run,) = out.iterdir()
    best = run / "Vanilla_best_ckpt.pth"
    eval_vanilla.main(["--model_path", str(best), "--gpu_devices", "cpu"])
    assert "test accuracy 1.0000 on 6 samples" in capsys.readouterr().out

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("dark", "light"):
        shutil.copy(data / "test" / name / "00.png", inputs / f"{name}.png")
    Image.new("RGB", (30, 20), (230, 230, 230)).save(inputs / "big_light.png")  # resized
    shutil.rmtree(data)
    result = run_script(
        "eval_vanilla.py",
        *("--model_path", best, "--input", inputs, "--save_path", tmp_path / "preds"),
        *("--gpu_devices", "cpu", "--num_workers", "0"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with open(tmp_path / "preds" / "predictions.csv", newline="") as f:
        classes = {Path(row["file"]).name: row["class"] for row in csv.DictReader(f)}
    assert classes == {"big_light.png": "light", "dark.png": "dark", "light.png": "light"}


def test_build_datasets_knows_image_folder(flat):
    data = build_datasets(options(flat))
    assert data.class_names == list(CLASSES) and isinstance(data.train, TensorSplit)
