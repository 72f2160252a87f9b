"""Imbalance: ``--class_weights auto`` (inverse class frequency over the training split) and
``--sampler balanced`` (every class about equally often an epoch)."""

import collections

import pytest
import torch
import torch.nn.functional as F
from test_trainer import options
from toy_task import ToyTrainer

from data.memory import TensorSplit
from data.sampler import ResumableSampler
from data.splits import balanced_sample_weights, inverse_frequency, split_targets
from data.synthetic_carvana import write_synthetic_carvana
from loss.dice_loss import CEDiceLoss, soft_dice_loss_over_classes
from trainer_seg_on_carvana import SegTrainer, build_seg_parser
from utils.errors import UsageError


def test_weights_are_the_inverse_frequency_and_nothing_for_an_absent_class():
    weights = inverse_frequency(torch.tensor([6, 2, 0, 4]))
    assert weights.tolist() == pytest.approx([12 / 24, 12 / 8, 0.0, 12 / 16])
    assert inverse_frequency(torch.tensor([5, 5, 5])).tolist() == [1.0, 1.0, 1.0]


def test_the_trainers_loss_weighs_each_class_by_a_hand_count(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--class_weights", "auto", "--epochs", "1"))
    train = trainer.data.train
    labels = [int(train[(0, i)][1]) for i in range(len(train))]  # sample by sample, by hand
    counts = collections.Counter(labels)
    expected = [len(labels) / (3 * counts[c]) for c in range(3)]
    assert len(set(counts.values())) > 1  # the toy classes are not balanced
    assert trainer.criterion.weight.tolist() == pytest.approx(expected, rel=1e-6)
    assert ToyTrainer(options(tmp_path, "--epochs", "1")).criterion.weight is None
    trainer.train()


def test_the_segmentation_loss_weighs_cross_entropy_per_class():
    logits = torch.randn(2, 3, 5, 4)
    masks = torch.randint(0, 3, (2, 1, 5, 4)).float()
    weight = torch.tensor([0.5, 2.0, 3.0])
    classes = masks[:, 0].long()
    by_hand = F.cross_entropy(logits, classes, weight=weight)
    by_hand = by_hand + soft_dice_loss_over_classes(logits, classes)
    torch.testing.assert_close(CEDiceLoss(weight=weight)(logits, masks), by_hand)


def labelled(labels: list[int]) -> TensorSplit:
    images = torch.zeros(len(labels), 1, 2, 2, dtype=torch.uint8)
    return TensorSplit(images, torch.tensor(labels), mean=(0.0,), std=(1.0,))


def test_a_balanced_epoch_draws_each_class_about_equally_and_resumes_its_order():
    split = labelled([0] * 900 + [1] * 100)
    weights = balanced_sample_weights(split)
    sampler = ResumableSampler(len(split), seed=3, weights=weights)
    sampler.set_epoch(2)
    order = sampler.indices()
    share = (split_targets(split)[order] == 1).double().mean().item()
    assert len(order) == 1000 and 0.45 < share < 0.55  # without it: 0.10
    sampler.set_epoch(2, start=300)
    assert torch.equal(sampler.indices(), order[300:])
    sampler.set_epoch(3)
    assert not torch.equal(sampler.indices(), order)


def test_balanced_sampling_needs_class_labels():
    masks = TensorSplit(
        torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
        torch.zeros(4, 1, 2, 2, dtype=torch.uint8),
        mean=(0.0,),
        std=(1.0,),
    )
    with pytest.raises(UsageError, match=r"masks .* use --class_weights auto instead"):
        balanced_sample_weights(masks)
    regression = torch.utils.data.TensorDataset(torch.zeros(3, 2), torch.rand(3))
    with pytest.raises(UsageError, match="targets are not classes"):
        balanced_sample_weights(regression)


def test_a_binary_mask_weighs_its_object_pixels_by_a_hand_count_in_memory_or_not(tmp_path):
    write_synthetic_carvana(tmp_path / "data", cars=3, size=(32, 24), seed=4)
    weights = []
    for in_memory in ("True", "False"):
        argv = ["--data_dir", tmp_path / "data", "--output_dir", tmp_path / "runs"]
        argv += ["--cache_dir", tmp_path / "cache", "--gpu_devices", "cpu", "--num_workers", "0"]
        argv += ["--img_scale", "1.0", "--class_weights", "auto", "--in_memory", in_memory]
        trainer = SegTrainer(
            build_seg_parser().parse_args([*map(str, argv), "--fast_dev_run", "1"])
        )
        weights.append(trainer.criterion.bce.pos_weight.item())
        if in_memory == "True":
            masks = trainer.data.train.targets
            objects = int((masks == 1).sum())
            expected = (masks.numel() - objects) / objects
    assert weights == pytest.approx([expected, expected], rel=1e-6)
