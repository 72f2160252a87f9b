"""Every model the template ships trains a step without reading a device scalar on the host.

On a GPU each such read (``aten._local_scalar_dense``: ``.item()``, ``float(t)``, ``if t:``)
makes the host wait for the device, and in a compiled model it breaks the graph. The trainer's
own reads, when a progress line or a summary shows the meters, are outside the step counted.
"""

from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from toy_task import TOY_ARGS, ToyTrainer, build_toy_parser

from data.synthetic_carvana import write_synthetic_carvana
from model.model_entry import build_model, family_examples
from trainer import TrainerBase, build_parser
from trainer_seg_on_carvana import SegTrainer, build_seg_parser


class HostReads(TorchDispatchMode):
    """Counts the reads of a tensor's value on the host, except of the tensors in ``host``."""

    def __init__(self, host: list[torch.Tensor]) -> None:
        super().__init__()
        self.host = {t.data_ptr() for t in host}
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += args[0].data_ptr() not in self.host
        return func(*args, **(kwargs or {}))


def optimizer_steps(trainer: TrainerBase) -> list[torch.Tensor]:
    """Adam's step counters: held on the host on a GPU too (and on the device when fused,
    where nothing reads them), so reading them waits for nothing."""
    return [state["step"] for state in trainer.optimizer.state.values() if "step" in state]


def one_step(trainer: TrainerBase, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """A training step on a loaded batch as the loop runs it: augment, forward, loss,
    backward, the meters' inputs, and the optimizer step that ends the cycle."""
    inputs, targets = trainer.augment(*trainer.to_device(batch))
    loss, outputs = trainer.train_step(inputs, targets)
    trainer.batch_stats(loss, outputs, targets)
    trainer.optimizer_step()


@pytest.fixture(scope="module")
def cars(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cars")
    write_synthetic_carvana(root, cars=3, size=(32, 24), seed=0)
    return root


def classifier(model_type: str, out: Path, cars: Path) -> TrainerBase:
    args = ["--model_type", model_type, "--output_dir", str(out), *TOY_ARGS, "--amp", "off"]
    return ToyTrainer(build_toy_parser().parse_args([*args, "--flip", "True"]))


def segmenter(model_type: str, out: Path, cars: Path) -> TrainerBase:
    args = ["--model_type", model_type, "--data_dir", str(cars), "--output_dir", str(out)]
    args += ["--base_width", "4", "--img_scale", "1", "--gpu_devices", "cpu", "--amp", "off"]
    args += ["--num_workers", "0", "--batch_size", "2", "--flip", "True"]
    if model_type == "UNetpp":
        args += ["--deep_supervision", "True"]
    return SegTrainer(build_seg_parser().parse_args(args))


# The task each shipped model trains in: the whole step, its loss and metrics included.
TASKS = {"Vanilla": classifier, "SmallCNN": classifier, "UNet": segmenter, "UNetpp": segmenter}


@pytest.mark.parametrize("model_type", family_examples())
def test_a_registered_models_forward_and_backward_read_no_device_scalar(model_type):
    """Every model found in ``model/``, a new one included, in training mode."""
    opt = build_parser().parse_args(["--model_type", model_type])
    model = build_model(opt, (3, 32, 32), 2).train()
    with HostReads([]) as reads:
        outputs = model(torch.randn(2, 3, 32, 32))
        outputs = outputs if isinstance(outputs, list) else [outputs]  # deep supervision
        sum(output.float().sum() for output in outputs).backward()
    assert reads.count == 0


@pytest.mark.parametrize("model_type", sorted(TASKS))
def test_a_training_step_reads_no_device_scalar(model_type, tmp_path, cars):
    trainer = TASKS[model_type](model_type, tmp_path, cars)
    batch = next(iter(trainer.train_loader))  # the loader's seed is drawn on the host
    one_step(trainer, batch)  # the optimizer's state exists from here on
    with HostReads(optimizer_steps(trainer)) as reads:
        one_step(trainer, batch)
    assert reads.count == 0


def test_the_count_sees_a_read():
    with HostReads([]) as reads:
        torch.ones(2).sum().item()
        float(torch.ones(()))
    assert reads.count == 2
