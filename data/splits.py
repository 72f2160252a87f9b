"""A dataset's splits, plus seeded subsampling and train/val splits that every run agrees on."""

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data, and prediction needs without the data.

    Checkpoints keep it (as plain containers, under ``"data"``), so a model can be rebuilt and
    its outputs named from the checkpoint alone.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]

    def state_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "DataInfo":
        return cls(tuple(state["input_shape"]), state["num_classes"], tuple(state["class_names"]))


@dataclass
class DataSplits:
    """The three splits of a dataset plus what a model needs to know about its samples."""

    train: Dataset
    val: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]

    @property
    def info(self) -> DataInfo:
        return DataInfo(tuple(self.input_shape), self.num_classes, tuple(self.class_names))


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
