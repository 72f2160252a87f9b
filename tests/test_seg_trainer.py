"""SegTrainer in-process: the loss and metrics of UNet++ with deep supervision, and an exact
resume of an augmented run."""

from pathlib import Path

import pytest
import torch

from data.synthetic_carvana import write_synthetic_carvana
from loss.dice_loss import BCEDiceLoss
from trainer_seg_on_carvana import SegTrainer, build_seg_parser
from utils.loop.amp import cpu_has_native_bf16
from utils.loop.metrics import dice_and_iou_per_image


@pytest.fixture(scope="module")
def cars(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cars")
    write_synthetic_carvana(root, cars=3, size=(32, 24), seed=0)
    return root


@pytest.fixture(scope="module")
def trainer(cars) -> SegTrainer:
    root = cars
    args = ["--data_dir", str(root), "--output_dir", str(root / "Results")]
    args += ["--model_type", "UNetpp", "--deep_supervision", "True", "--base_width", "4"]
    args += ["--img_scale", "1", "--gpu_devices", "cpu", "--num_workers", "0"]
    return SegTrainer(build_seg_parser().parse_args(args))


@pytest.fixture
def heads_and_masks() -> tuple[list[torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    heads = [torch.randn(2, 1, 8, 8, generator=generator) for _ in range(3)]
    masks = (torch.rand(2, 1, 8, 8, generator=generator) > 0.5).float()
    return heads, masks


def test_the_training_loss_is_the_mean_over_the_heads(trainer, heads_and_masks):
    heads, masks = heads_and_masks
    criterion = BCEDiceLoss()
    per_head = [criterion(head, masks).item() for head in heads]
    assert trainer.compute_loss(heads, masks).item() == pytest.approx(sum(per_head) / 3)
    assert len({round(loss, 6) for loss in per_head}) == 3  # the heads really differ


def test_training_metrics_score_the_mean_of_the_heads_as_the_model_predicts(
    trainer, heads_and_masks
):
    heads, masks = heads_and_masks
    dice, iou = dice_and_iou_per_image(torch.stack(heads).mean(dim=0), masks)
    metrics = trainer.compute_metrics(heads, masks)
    assert metrics["dice"].item() == pytest.approx(dice.mean().item())
    assert metrics["iou"].item() == pytest.approx(iou.mean().item())
    last_dice, _ = dice_and_iou_per_image(heads[-1], masks)
    assert metrics["dice"].item() != pytest.approx(last_dice.mean().item())


class StoppedAt(SegTrainer):
    """Stops with a Ctrl-C before batch ``stop_after + 1``."""

    stop_after = 5

    def augment(self, inputs, targets):
        if self.global_step == self.stop_after:
            raise KeyboardInterrupt
        return super().augment(inputs, targets)


@pytest.mark.parametrize(
    ("in_memory", "workers"), [(True, 0), (False, 0), (False, 2)], ids=["device", "0", "2"]
)
def test_an_augmented_run_resumes_exactly(cars, tmp_path, in_memory, workers):
    """The Carvana augmentation draws from generators seeded per batch and epoch on the device
    (in memory), or per sample and epoch in the Dataset (in the workers with 2): a run stopped
    in epoch 2 and resumed ends with the weights of a run never stopped."""
    args = ["--data_dir", str(cars), "--cache_dir", str(tmp_path / "cache"), "--img_scale", "1"]
    args += ["--base_width", "4", "--epochs", "2", "--gpu_devices", "cpu", "--deterministic"]
    args += ["True", "--num_workers", str(workers), "--augment", "carvana"]
    args += ["--in_memory", str(in_memory)]

    def run(trainer_class, out, *extra):
        options = build_seg_parser().parse_args([*args, "--output_dir", str(out), *extra])
        return trainer_class(options)

    whole = run(SegTrainer, tmp_path / "whole")
    whole.train()
    assert whole.steps_per_epoch == 4  # 16 training views in batches of 4
    stopped = run(StoppedAt, tmp_path / "stopped")
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    checkpoint = stopped.run_dir / "UNet_interrupt_ckpt.pth"
    resumed = run(SegTrainer, tmp_path / "stopped", "--resume", str(checkpoint))
    assert (resumed.epoch, resumed.batch_in_epoch) == (1, 1)
    resumed.train()
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_the_carvana_task_picks_its_precision_and_layout_for_the_device(trainer):
    assert trainer.amp[0] == ("bf16" if cpu_has_native_bf16() else "off")
    assert trainer.channels_last  # a conv net: NHWC
    conv = next(m for m in trainer.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    image = trainer.to_device(next(iter(trainer.val_loader)))[0]
    assert image.is_contiguous(memory_format=torch.channels_last)


def test_batch_norm_evaluates_with_the_mean_statistics_of_the_last_epoch(cars, tmp_path):
    """--norm batch: after each epoch the running mean of a BatchNorm is the mean of that
    epoch's batch means (not an exponential average still weighted toward its start at 0,
    nor an average that goes back to earlier epochs)."""
    args = ["--data_dir", str(cars), "--cache_dir", str(tmp_path / "cache"), "--img_scale", "1"]
    args += ["--base_width", "4", "--epochs", "2", "--gpu_devices", "cpu", "--num_workers", "0"]
    args += ["--output_dir", str(tmp_path), "--norm", "batch"]
    args += ["--amp", "off"]  # fp32 throughout: the batch means are compared with fp32 sums
    trainer = SegTrainer(build_seg_parser().parse_args(args))
    norm = next(m for m in trainer.net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    batch_means: list[torch.Tensor] = []

    def record(module, inputs, output):
        if module.training:
            batch_means.append(inputs[0].detach().mean(dim=(0, 2, 3)))

    norm.register_forward_hook(record)
    trainer.train()
    assert len(batch_means) == 2 * trainer.steps_per_epoch
    last_epoch = torch.stack(batch_means[trainer.steps_per_epoch :]).mean(dim=0)
    assert torch.allclose(norm.running_mean, last_epoch, atol=1e-5)
    assert not torch.allclose(torch.stack(batch_means).mean(dim=0), last_epoch, atol=1e-3)
