"""Carvana data: pairing, every bad-input case, car-level splits, scaling, the decode cache."""

import os
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import real_data_dir
from PIL import Image

from data.augment import AUGMENT_PRESETS
from data.carvana import build_carvana, find_pairs
from data.memory import TensorSplit
from data.pairs import (
    BINARY,
    Pair,
    PairDataset,
    check_sizes,
    decode_pair,
    fold_by_group,
    load_input,
    read_mask,
    split_by_group,
)
from data.splits import DataInfo
from data.synthetic_carvana import VIEWS, write_synthetic_carvana
from trainer_seg_on_carvana import build_seg_parser
from utils.errors import UsageError

CAR = DataInfo((3, 12, 16), 1, ("car",))  # what a checkpoint of the small cars holds


@pytest.fixture
def small(tmp_path) -> Path:
    """Three synthetic cars of 32x24 pixels in the Kaggle layout."""
    write_synthetic_carvana(tmp_path / "carvana", cars=3, size=(32, 24), seed=1)
    return tmp_path / "carvana"


def carvana_opt(root: Path, **overrides) -> Namespace:
    """The Carvana task's options, unaugmented and unscaled unless ``overrides`` say so."""
    base = dict(
        vars(build_seg_parser().parse_args([])),
        augment="none",
        data_dir=str(root),
        seed=0,
        val_ratio=0.2,
        test_ratio=0.2,
        train_val_sample_rate=1.0,
        test_sample_rate=1.0,
        img_scale=1.0,
        cache=True,
        cache_dir=None,
    )
    return Namespace(**{**base, **overrides})


def test_pairs_match_images_with_masks_by_id(small):
    pairs = find_pairs(small)
    assert len(pairs) == 3 * VIEWS
    for pair in pairs:
        assert pair.mask.name == f"{pair.image.stem}_mask.gif"
        assert pair.id == f"{pair.group}_{pair.id[-2:]}"
    assert len({p.group for p in pairs}) == 3


def test_missing_and_extra_masks_name_the_file(small):
    pairs = find_pairs(small)
    pairs[5].mask.unlink()
    with pytest.raises(UsageError, match=f"{pairs[5].image}.*no mask.*{pairs[5].mask.name}"):
        find_pairs(small)
    pairs[5].image.rename(small / "elsewhere.jpg")
    assert len(find_pairs(small)) == 3 * VIEWS - 1
    (small / "train_masks" / "stray_01_mask.gif").write_bytes(pairs[0].mask.read_bytes())
    with pytest.raises(UsageError, match=r"stray_01_mask\.gif has no image"):
        find_pairs(small)


def test_missing_layout_and_empty_folders(tmp_path):
    with pytest.raises(UsageError, match="no train/ folder"):
        find_pairs(tmp_path)
    (tmp_path / "train").mkdir()
    (tmp_path / "train_masks").mkdir()
    with pytest.raises(UsageError, match=r"no \.jpg images"):
        find_pairs(tmp_path)


def test_unreadable_image_is_named(small):
    pair = find_pairs(small)[0]
    pair.image.write_bytes(b"not a jpeg")
    with pytest.raises(UsageError, match=f"cannot read {pair.image}"):
        decode_pair(pair, 1.0)


def test_mask_of_another_size_is_named(small):
    pair = find_pairs(small)[0]
    Image.new("P", (31, 24)).save(pair.mask)
    with pytest.raises(UsageError, match=f"mask {pair.mask} is 31x24 but its image is 32x24"):
        check_sizes(find_pairs(small), 1.0)


def test_mask_values_must_be_binary(small):
    pair = find_pairs(small)[0]
    # PNG content under the .gif name: PIL reads by content and PNG keeps the exact values.
    Image.new("L", (32, 24), 2).save(pair.mask, format="PNG")
    with pytest.raises(UsageError, match=rf"mask {pair.mask} has values \[2\]"):
        read_mask(pair.mask, BINARY)
    with pytest.raises(UsageError, match=rf"mask {pair.mask} has values \[2\]"):
        PairDataset([pair], 1.0, small / "cache")
    stripes = np.tile(np.array([0, 255], dtype=np.uint8), (24, 16))
    Image.fromarray(stripes, mode="L").save(pair.mask, format="PNG")
    mask = read_mask(pair.mask, BINARY)
    assert set(np.unique(mask).tolist()) == {0, 1}
    assert mask.sum() == 24 * 16


def test_split_keeps_each_car_in_one_split():
    pairs = find_pairs_of(cars=10)
    train, val, test = split_by_group(pairs, val_ratio=0.2, test_ratio=0.3, seed=4)
    cars = [{p.group for p in split} for split in (train, val, test)]
    assert [len(c) for c in cars] == [5, 2, 3]
    assert not (cars[0] & cars[1] or cars[0] & cars[2] or cars[1] & cars[2])
    assert sorted(p.id for p in train + val + test) == sorted(p.id for p in pairs)
    assert split_by_group(pairs, 0.2, 0.3, seed=4) == (train, val, test)
    assert split_by_group(pairs, 0.2, 0.3, seed=5) != (train, val, test)
    with pytest.raises(UsageError, match="at least 3 objects"):
        split_by_group([p for p in pairs if p.group in cars[1]], 0.2, 0.3, seed=0)


@pytest.mark.parametrize("cars", [3, 10])
def test_folds_test_every_car_once_and_never_validate_on_it(cars):
    pairs = find_pairs_of(cars)
    tested = []
    for fold in range(3):
        train, val, test = fold_by_group(pairs, folds=3, fold=fold, val_ratio=0.2, seed=4)
        train_cars, val_cars, test_cars = ({p.group for p in split} for split in (train, val, test))
        assert not (test_cars & train_cars or test_cars & val_cars)
        assert sorted(p.id for p in train + val + test) == sorted(p.id for p in pairs)
        tested += sorted(test_cars)
        if cars == 3:  # two cars left: both train, and their views give the validation
            assert len(train_cars) == 2 and val_cars <= train_cars and 0 < len(val) < 2 * VIEWS
        else:  # enough cars: validation takes whole ones
            assert not val_cars & train_cars and len(val_cars) >= 1 and len(train_cars) >= 2
    assert sorted(tested) == sorted({p.group for p in pairs})  # each car tested exactly once
    assert fold_by_group(pairs, 3, 1, 0.2, seed=4) == fold_by_group(pairs, 3, 1, 0.2, seed=4)


def find_pairs_of(cars: int) -> list:
    return [
        Pair(f"car{c:02d}_{v:02d}", Path(f"car{c:02d}_{v:02d}.jpg"), Path("m.gif"), f"car{c:02d}")
        for c in range(cars)
        for v in range(1, VIEWS + 1)
    ]


def test_scale_resizes_image_bilinear_and_mask_nearest(small):
    pair = find_pairs(small)[0]
    image, mask, _ = decode_pair(pair, 0.5)
    assert image.shape == (12, 16, 3) and mask.shape == (12, 16)
    expected = Image.open(pair.image).convert("RGB").resize((16, 12), Image.Resampling.BILINEAR)
    assert np.array_equal(image, np.asarray(expected))
    full = (np.asarray(Image.open(pair.mask)) > 0).astype(np.uint8)
    nearest = Image.fromarray(full).resize((16, 12), Image.Resampling.NEAREST)
    assert np.array_equal(mask, np.asarray(nearest))


def test_cache_is_written_once_reused_and_redone_when_the_source_changes(small, tmp_path):
    pairs = find_pairs(small)[:4]
    cache = tmp_path / "cache"
    first = PairDataset(pairs, 0.5, cache)
    files = sorted(cache.iterdir())
    assert [f.name for f in files] == sorted(f"{p.id}.npz" for p in pairs)
    stamps = [f.stat().st_mtime_ns for f in files]
    uncached = PairDataset(pairs, 0.5, cache_dir=None)
    for i in range(len(pairs)):
        assert torch.equal(first[i][0], uncached[i][0])
        assert torch.equal(first[i][1], uncached[i][1])

    PairDataset(pairs, 0.5, cache)
    assert [f.stat().st_mtime_ns for f in files] == stamps

    flipped = Image.open(pairs[0].image).transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    flipped.save(pairs[0].image, quality=95)
    os.utime(pairs[0].image, ns=(1, 1))
    redone = PairDataset(pairs, 0.5, cache)
    assert torch.equal(redone[0][0], PairDataset(pairs[:1], 0.5, None)[0][0])
    assert [f.stat().st_mtime_ns for f in files][1:] == stamps[1:]


def test_build_carvana_splits_by_car(small, tmp_path):
    options = carvana_opt(small, cache_dir=str(tmp_path / "c"), img_scale=0.5, in_memory=False)
    data = build_carvana(options)
    cars = [{p.group for p in split.pairs} for split in (data.train, data.val, data.test)]
    assert [len(c) for c in cars] == [1, 1, 1]
    assert len(set.union(*cars)) == 3
    assert data.input_shape == (3, 12, 16) and data.num_outputs == 1
    image, mask = data.train[0]
    assert image.shape == (3, 12, 16) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    assert mask.shape == (1, 12, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (tmp_path / "c" / "scale_0.5").is_dir()


def test_in_memory_the_training_and_validation_samples_are_those_of_the_files(small, tmp_path):
    """--in_memory True holds train and val as uint8 tensors (masks as targets), sample for
    sample the per-sample splits; the test split stays per sample, with its pairs."""
    options = carvana_opt(small, cache_dir=str(tmp_path / "c"), augment="carvana")
    memory = build_carvana(Namespace(**{**vars(options), "in_memory": True}))
    files = build_carvana(Namespace(**{**vars(options), "in_memory": False, "augment": "none"}))
    assert isinstance(memory.train, TensorSplit) and isinstance(memory.val, TensorSplit)
    assert memory.train.augment == AUGMENT_PRESETS["carvana"] and memory.val.augment is None
    assert isinstance(memory.test, PairDataset) and memory.test.ids == files.test.ids
    for split, per_sample in ((memory.train, files.train), (memory.val, files.val)):
        assert len(split) == len(per_sample)
        for index in range(len(split)):
            image, mask = per_sample[index]
            assert torch.equal(split.images[index], (image * 255).round().to(torch.uint8))
            assert torch.equal(split.targets[index].float(), mask)


@pytest.mark.parametrize("cached", [True, False])
def test_an_image_file_becomes_the_input_the_dataset_gives(small, tmp_path, cached):
    """Prediction's preprocessing is the Dataset's: decoded, RGB, resized, scaled to [0, 1]."""
    pairs = find_pairs(small)[:3]
    data = PairDataset(pairs, 0.5, tmp_path / "cache" if cached else None)
    for index, pair in enumerate(pairs):
        assert torch.equal(load_input(pair.image, Namespace(img_scale=0.5), CAR), data[index][0])
    grey = tmp_path / "grey.png"
    Image.open(pairs[0].image).convert("L").save(grey)
    assert load_input(grey, Namespace(img_scale=0.5), CAR).shape == (3, 12, 16)


def test_original_masks_are_read_at_the_data_resolution(small):
    pairs = find_pairs(small)[:2]
    data = PairDataset(pairs, 0.5, cache_dir=None)
    assert data[1][1].shape == (1, 12, 16)
    original = data.original_mask(1)
    assert original.shape == (1, 24, 32) and original.dtype == torch.uint8
    assert torch.equal(original[0], torch.from_numpy(decode_pair(pairs[1], 1.0)[1]))


def test_real_samples():
    root = real_data_dir() / "carvana"
    if not (root / "train").is_dir():
        pytest.skip(f"real Carvana samples not in {root}; set TEMPLATE_DATA_DIR")
    pairs = find_pairs(root)
    assert len(pairs) == 48 and len({p.group for p in pairs}) == 3
    image, mask, _ = decode_pair(pairs[0], 0.1)
    assert image.shape == (128, 192, 3) and mask.shape == (128, 192)
    assert set(np.unique(mask).tolist()) == {0, 1}
    assert 0.05 < mask.mean() < 0.4  # the car covers 12-27% of each mask


def test_unwritable_cache_dir_is_one_line(small, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should go")
    with pytest.raises(UsageError, match=rf"--cache_dir {blocker / 'cache'}: cannot create it"):
        PairDataset(find_pairs(small)[:1], 1.0, blocker / "cache")
