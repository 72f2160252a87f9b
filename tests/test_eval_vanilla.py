"""The classifier's evaluator: the example lines of its report."""

from types import SimpleNamespace

import torch

from eval_vanilla import EXAMPLES, VanillaEvaluator, spread_indices


def test_spread_indices_reach_both_ends():
    assert spread_indices(100, 5) == [0, 25, 50, 74, 99]
    assert spread_indices(3, 10) == [0, 1, 2]
    assert spread_indices(7, 1) == [0]


def test_examples_come_from_every_part_of_a_split_ordered_by_class():
    """A test split in class folders is ordered by class: the examples must not all be of
    its first class."""
    targets = torch.arange(10).repeat_interleave(50)  # 50 samples of each class, in order
    preds = targets.clone()
    preds[-1] = 0
    evaluator = VanillaEvaluator.__new__(VanillaEvaluator)
    evaluator.data_info = SimpleNamespace(num_outputs=10, class_names=[f"c{i}" for i in range(10)])
    evaluator.reset()
    evaluator.update(None, torch.nn.functional.one_hot(preds, 10).float(), targets)
    evaluator.compute()
    assert len(evaluator.examples) == EXAMPLES
    assert {label for _, _, label in evaluator.examples} == {f"c{i}" for i in range(10)}
    assert evaluator.examples[-1] == (499, "c0", "c9")
