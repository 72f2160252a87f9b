"""Tests for data.splits: seeded subsets, train/val splits and k folds."""

import pytest

from data.splits import check_folds, kfold_split
from utils.errors import UsageError


@pytest.mark.parametrize(("n", "folds"), [(10, 3), (9, 3), (7, 2), (5, 5)])
def test_folds_are_disjoint_cover_every_key_once_and_differ_in_size_by_one_at_most(n, folds):
    keys = list(range(100, 100 + n))
    held_out = [kfold_split(keys, folds, fold, seed=3) for fold in range(folds)]
    for rest, held in held_out:
        assert not set(rest) & set(held) and sorted(rest + held) == keys
    every = [key for _, held in held_out for key in held]
    assert sorted(every) == keys
    sizes = [len(held) for _, held in held_out]
    assert max(sizes) - min(sizes) <= 1


def test_folds_of_repeated_keys_keep_a_key_in_one_fold():
    rest, held = kfold_split(["a", "a", "b", "c", "c", "c"], 3, 0, seed=0)
    assert len(held) == 1 and sorted(rest + held) == ["a", "b", "c"]


def test_folds_are_seeded():
    keys = list(range(30))
    assert kfold_split(keys, 3, 0, seed=1) == kfold_split(keys, 3, 0, seed=1)
    assert kfold_split(keys, 3, 0, seed=1) != kfold_split(keys, 3, 0, seed=2)


@pytest.mark.parametrize(
    ("folds", "fold", "message"),
    [
        (1, 0, "--folds 1: expected 0 (no k-fold split) or at least 2 folds"),
        (3, 3, "--fold 3: expected a fold in 0..2 of --folds 3"),
        (3, -1, "--fold -1: expected a fold in 0..2 of --folds 3"),
    ],
)
def test_a_fold_that_does_not_exist_is_one_line(folds, fold, message):
    with pytest.raises(UsageError) as info:
        check_folds(folds, fold)
    assert str(info.value) == message


def test_more_folds_than_keys_is_one_line():
    with pytest.raises(UsageError, match="--folds 4: only 3 groups to deal into folds"):
        kfold_split(["a", "b", "c"], 4, 0, seed=0)


def test_no_folds_is_fine():
    check_folds(0, 0)
