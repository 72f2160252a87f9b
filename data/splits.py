"""A dataset's splits, plus seeded subsampling, train/val splits and k folds that every run
agrees on."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch.utils.data import Dataset

from utils.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data, and prediction needs without the data.

    Checkpoints keep it (as plain containers, under ``"data"``), so a model can be rebuilt, its
    inputs made and its outputs named from the checkpoint alone. ``mean`` and ``std`` are the
    per-channel normalisation of a dataset that measures it on its training images (empty
    where the dataset's code fixes it).
    """

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "DataInfo":
        return cls(
            tuple(state["input_shape"]),
            state["num_classes"],
            tuple(state["class_names"]),
            tuple(state.get("mean", ())),  # checkpoints from before measured statistics
            tuple(state.get("std", ())),
        )


@dataclass
class DataSplits:
    """The three splits of a dataset plus what a model needs to know about its samples."""

    train: Dataset
    val: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def info(self) -> DataInfo:
        return DataInfo(
            tuple(self.input_shape),
            self.num_classes,
            tuple(self.class_names),
            tuple(self.mean),
            tuple(self.std),
        )


def subsample_indices(n: int, rate: float, seed: int) -> list[int]:
    """A sorted random ``rate`` share of ``range(n)`` (at least one index); all of it at 1.0."""
    if rate >= 1.0:
        return list(range(n))
    keep = max(1, round(n * rate))
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n, generator=generator)[:keep].tolist())


def split_indices(indices: list[int], val_ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """Shuffle ``indices`` with ``seed`` and cut off ``val_ratio`` of them (at least one each)."""
    if len(indices) < 2:
        raise ValueError(f"need at least 2 samples to split into train and val, got {len(indices)}")
    n_val = min(len(indices) - 1, max(1, round(len(indices) * val_ratio)))
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(indices), generator=generator).tolist()
    shuffled = [indices[i] for i in order]
    return sorted(shuffled[n_val:]), sorted(shuffled[:n_val])


def check_folds(folds: int, fold: int) -> None:
    """Refuse a fold that does not exist; ``folds == 0`` means no k-fold split."""
    if folds == 1:
        raise UsageError("--folds 1: expected 0 (no k-fold split) or at least 2 folds")
    if folds and not 0 <= fold < folds:
        raise UsageError(f"--fold {fold}: expected a fold in 0..{folds - 1} of --folds {folds}")


def kfold_split(keys: Sequence[T], folds: int, fold: int, seed: int) -> tuple[list[T], list[T]]:
    """``(the other folds' keys, fold ``fold``'s keys)`` of ``folds`` disjoint folds.

    The distinct keys (sample indices, or groups such as cars) are shuffled with ``seed`` and
    dealt round-robin, so folds differ in size by at most one and every key is in exactly one.
    """
    check_folds(folds, fold)
    distinct = sorted(set(keys))
    if len(distinct) < folds:
        raise UsageError(f"--folds {folds}: only {len(distinct)} groups to deal into folds")
    generator = torch.Generator().manual_seed(seed)
    order = [distinct[i] for i in torch.randperm(len(distinct), generator=generator).tolist()]
    held = set(order[fold::folds])
    return [k for k in distinct if k not in held], [k for k in distinct if k in held]
