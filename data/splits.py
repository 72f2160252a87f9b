"""A dataset's splits, plus seeded subsampling, train/val splits and k folds that every run
agrees on."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from utils.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about the data, and prediction needs without the data.

    ``num_outputs`` is the width of the model's output: the classes of a classifier, the mask
    classes of a segmenter (1 for a binary mask), the targets of a regression. ``class_names``
    name the classes where there are classes, and are empty where there are none. Checkpoints
    keep it (as plain containers, under ``"data"``), so a model can be rebuilt, its inputs
    made and its outputs named from the checkpoint alone. ``mean`` and ``std`` are the
    per-channel normalisation of a dataset that measures it on its training images (empty
    where the dataset's code fixes it).
    """

    input_shape: tuple[int, ...]
    num_outputs: int
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "DataInfo":
        return cls(
            tuple(state["input_shape"]),
            state.get("num_outputs", state.get("num_classes")),  # checkpoints before regression
            tuple(state["class_names"]),
            tuple(state.get("mean", ())),  # checkpoints from before measured statistics
            tuple(state.get("std", ())),
        )


@dataclass
class DataSplits:
    """The three splits of a dataset plus what a model needs to know about its samples (see
    :class:`DataInfo` for ``num_outputs`` and ``class_names``)."""

    train: Dataset
    val: Dataset
    test: Dataset
    input_shape: tuple[int, ...]
    num_outputs: int
    class_names: Sequence[str] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    # The groups (whole objects, such as cars) in each split, where a dataset splits by group.
    groups: dict[str, list[str]] = field(default_factory=dict)

    @property
    def info(self) -> DataInfo:
        return DataInfo(
            tuple(self.input_shape),
            self.num_outputs,
            tuple(self.class_names),
            tuple(self.mean),
            tuple(self.std),
        )

    def summary(self) -> dict[str, Any]:
        """The splits' sizes and what the model is told, as plain values for the log and
        config.json."""
        return {
            "samples": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "input_shape": list(self.input_shape),
            "num_outputs": self.num_outputs,
            "class_names": list(self.class_names),
            "groups": self.groups,
        }


def split_targets(split: Dataset) -> Tensor:
    """Every target of ``split`` as one tensor, in sample order: ``[N]`` labels, ``[N, ...]``
    masks of class indices, or whatever else the split's targets are. Read from the
    ``targets`` or ``labels`` tensor a split keeps (or, for a ``Subset``, its dataset's
    ``targets``), else sample by sample (each one loaded: slower)."""
    for name in ("targets", "labels"):
        held = getattr(split, name, None)
        if isinstance(held, Tensor):
            return held
    if isinstance(split, Subset) and isinstance(getattr(split.dataset, "targets", None), Tensor):
        return split.dataset.targets[torch.as_tensor(split.indices)]
    keyed = getattr(split, "epoch_keyed", False)
    targets = [split[(0, i) if keyed else i][1] for i in range(len(split))]
    return torch.stack([torch.as_tensor(target) for target in targets])


def class_counts(targets: Tensor, classes: int) -> Tensor:
    """How many labels (or mask pixels) of each class ``targets`` hold; ``classes`` at least."""
    return torch.bincount(targets.flatten(), minlength=classes)


def inverse_frequency(counts: Tensor) -> Tensor:
    """``--class_weights auto``: ``total / (K * count)`` for each of the K classes (1 for
    every class of a balanced set, as scikit-learn's "balanced"); 0 for a class with no
    samples, which then adds nothing to the loss."""
    counts = counts.double()
    weights = counts.sum() / (len(counts) * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights)).float()


def class_labels(split: Dataset, option: str) -> Tensor:
    """The class labels of ``split`` (:func:`split_targets`) as int64, for ``option``: labels,
    or mask pixels (float masks hold class indices too); targets that are not whole numbers
    (regression) are a UsageError naming it."""
    targets = split_targets(split)
    if targets.is_complex() or (
        targets.is_floating_point() and not targets.eq(targets.round()).all()
    ):
        raise UsageError(f"{option} counts class labels; this data's targets are not classes")
    return targets.long()


def balanced_sample_weights(split: Dataset) -> Tensor:
    """``--sampler balanced``: one weight per sample, the inverse of its class's count, so an
    epoch draws every class about equally often."""
    labels = class_labels(split, "--sampler balanced")
    if labels.dim() != 1:
        raise UsageError(
            "--sampler balanced draws samples by their class label; this data's targets are "
            f"masks ({list(labels.shape[1:])} per sample): use --class_weights auto instead"
        )
    return 1.0 / torch.bincount(labels).double()[labels]


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


def shuffled_by_class(labels: Sequence[int], seed: int) -> list[list[int]]:
    """The positions of each class in ``labels`` (classes in sorted order), each shuffled by
    one generator of ``seed``: what the stratified splits below cut or deal."""
    by_class: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        by_class.setdefault(label, []).append(position)
    generator = torch.Generator().manual_seed(seed)
    orders = {
        label: torch.randperm(len(by_class[label]), generator=generator).tolist()
        for label in sorted(by_class)
    }
    return [[by_class[label][i] for i in order] for label, order in orders.items()]


def stratified_subsample(labels: Sequence[int], rate: float, seed: int) -> list[int]:
    """Sorted positions of a seeded ``rate`` share of each class of ``labels`` (at least one
    of each): a quick run keeps every class. All of them at 1.0."""
    if rate >= 1.0:
        return list(range(len(labels)))
    kept = (group[: max(1, round(len(group) * rate))] for group in shuffled_by_class(labels, seed))
    return sorted(position for group in kept for position in group)


def stratified_split(labels: Sequence[int], ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """``(kept, held)`` sorted positions of ``labels``: a seeded ``ratio`` share of each class
    is held (at least one, and at least one kept, of a class with two or more samples).

    Each class is cut on its own, so a split drawn from a pool has every class the pool has
    in about the pool's proportions (a random cut can miss a small class).
    """
    kept: list[int] = []
    held: list[int] = []
    for group in shuffled_by_class(labels, seed):
        n_held = min(len(group) - 1, max(1, round(len(group) * ratio)))
        held += group[:n_held]
        kept += group[n_held:]
    return sorted(kept), sorted(held)


def stratified_kfold(
    labels: Sequence[int], folds: int, fold: int, seed: int
) -> tuple[list[int], list[int]]:
    """``(the other folds' positions, fold ``fold``'s positions)`` of ``labels``, sorted.

    Each class's positions are shuffled with ``seed`` and dealt round-robin, continuing from
    where the previous class stopped: every class is spread over the folds (their counts of
    it differ by at most one) and the folds' sizes differ by at most one.
    """
    check_folds(folds, fold)
    if len(labels) < folds:
        raise UsageError(f"--folds {folds}: only {len(labels)} samples to deal into folds")
    dealt = [p for group in shuffled_by_class(labels, seed) for p in group]
    held = set(dealt[fold::folds])
    return [p for p in range(len(labels)) if p not in held], sorted(held)
