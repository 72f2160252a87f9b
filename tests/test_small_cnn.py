"""SmallCNN: any input size, channels_last, its registry entry and parameter count, modes,
and the FashionMNIST recipe's options end to end."""

import json
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

import eval_vanilla
import trainer_vanilla
from model.model_entry import build_model
from model.small_cnn import SmallCNN
from utils.loop.run_log import count_parameters, describe_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Run on one intra-op thread, then restore the count.

    On a 2-core machine shared with other jobs, two OpenMP threads keep waiting for each other
    and these small convolutions ran up to 15x slower (the recipe test: 12 s an epoch instead
    of 0.8 s); with one thread they stay fast either way.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def expected_parameters(
    in_channels: int, widths: tuple[int, ...], depths: tuple[int, ...], classes: int
) -> int:
    """Bias-free 3x3 convs, a weight and a bias per batch-norm channel, the linear head."""
    total, channels = 0, in_channels
    for width, depth in zip(widths, depths, strict=True):
        for _ in range(depth):
            total += 9 * channels * width + 2 * width
            channels = width
    return total + channels * classes + classes


@pytest.mark.parametrize(
    ("in_channels", "size"), [(1, (28, 28)), (3, (32, 32)), (1, (9, 13)), (2, (1, 1))]
)
def test_logits_for_any_input_size(in_channels: int, size: tuple[int, int]):
    model = SmallCNN(in_channels, num_classes=7)
    x = torch.randn(3, in_channels, *size)
    for training in (True, False):
        with torch.no_grad():
            assert model.train(training)(x).shape == (3, 7)


def test_registered_factory_builds_it_for_the_input_shape():
    model = build_model(Namespace(model_type="SmallCNN"), (3, 40, 40), 5)
    assert isinstance(model, SmallCNN)
    assert model.features[0][0].in_channels == 3
    assert model(torch.randn(2, 3, 40, 40)).shape == (2, 5)


def test_describe_model_prints_the_parameter_count():
    model = SmallCNN(1, 10)
    expected = expected_parameters(1, (16, 32, 64), (1, 2, 2), 10)
    assert expected == 70_330
    assert count_parameters(model) == (expected, expected)
    assert f"parameters: {expected:,} ({expected:,} trainable)" in describe_model(model)
    other = SmallCNN(3, 4, widths=(8, 16), depths=(2, 3))
    assert count_parameters(other)[0] == expected_parameters(3, (8, 16), (2, 3), 4)


def test_one_depth_per_stage():
    with pytest.raises(ValueError, match="one depth per stage"):
        SmallCNN(1, 10, widths=(16, 32), depths=(1, 2, 2))


@pytest.mark.parametrize("training", [True, False])
def test_channels_last_matches_contiguous(training: bool):
    torch.manual_seed(0)
    reference = SmallCNN(1, 10)
    with torch.no_grad():  # non-trivial running statistics for eval mode
        reference.train()(torch.randn(16, 1, 28, 28) * 2 + 1)
    nhwc = SmallCNN(1, 10)
    nhwc.load_state_dict(reference.state_dict())
    nhwc = nhwc.to(memory_format=torch.channels_last)
    assert nhwc.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(8, 1, 28, 28)
    reference.train(training)
    nhwc.train(training)

    torch.manual_seed(1)  # the same dropout mask for both
    expected = reference(x)
    expected.square().sum().backward()
    torch.manual_seed(1)
    got = nhwc(x.contiguous(memory_format=torch.channels_last))
    got.square().sum().backward()

    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    for (name, a), b in zip(nhwc.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_train_mode_uses_batch_statistics_and_dropout_eval_mode_neither():
    torch.manual_seed(0)
    model = SmallCNN(1, 10, dropout=0.5)
    x = torch.randn(6, 1, 28, 28)
    bn = model.features[0][1]
    with torch.no_grad():
        model.train()
        first, second = model(x), model(x)
        assert not torch.allclose(first, second)  # dropout draws a new mask
        assert bn.num_batches_tracked == 2
        moved = bn.running_mean.clone()
        assert moved.abs().sum() > 0

        model.eval()
        whole = model(x)
        torch.testing.assert_close(model(x), whole)  # deterministic
        # Running statistics, not the batch's: a sample's logits do not depend on the others.
        torch.testing.assert_close(model(x[:2]), whole[:2], rtol=1e-4, atol=1e-5)
        assert bn.num_batches_tracked == 2
        assert torch.equal(bn.running_mean, moved)


def test_learns_bar_orientation_wherever_the_bar_is():
    """Class 0: a horizontal 1x5 bar, class 1: a vertical 5x1 bar, at a random position."""
    torch.manual_seed(0)
    n, size = 32, 12
    labels = torch.randint(0, 2, (n,))
    x = torch.randn(n, 1, size, size) * 0.3
    rows, cols = torch.randint(0, size - 5, (2, n))
    for i in range(n):
        height, width = (5, 1) if labels[i] else (1, 5)
        x[i, 0, rows[i] : rows[i] + height, cols[i] : cols[i] + width] += 3.0
    model = SmallCNN(1, 2, widths=(8, 16), depths=(1, 1), dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(20):
        loss = loss_fn(model.train()(x), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        accuracy = (model.eval()(x).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.95


def test_recipe_options_train_and_evaluate_on_a_sample_of_fashion_mnist(
    fashion_mnist_root: Path, tmp_path: Path
):
    """The recipe of docs/results.md (onecycle, smoothing, flips, AdamW, channels_last) on 3%
    of the data."""
    out = tmp_path / "runs"
    trainer_vanilla.main(
        [
            *("--model_type", "SmallCNN", "--scheduler", "onecycle", "--label_smoothing", "0.1"),
            *("--flip", "True", "--optimizer", "adamw", "--lr", "1e-2", "--weight_decay", "0.05"),
            *("--batch_size", "128", "--epochs", "2", "--channels_last", "True"),
            *("--train_val_sample_rate", "0.03", "--test_sample_rate", "0.1"),
            *("--data_dir", str(fashion_mnist_root), "--output_dir", str(out)),
            *("--gpu_devices", "cpu", "--num_workers", "0"),
        ]
    )
    (run,) = out.iterdir()
    events = EventAccumulator(str(run))
    events.Reload()
    lrs = [e.value for e in events.Scalars("lr")]
    assert 1e-2 / 25 < lrs[0] < 1e-2  # past the peak at 30% of the 26 steps, on the way down
    assert lrs[-1] == pytest.approx(1e-2 / 25e4)  # the one-cycle floor after the last step

    eval_vanilla.main(["--model_path", str(run / "SmallCNN_last_ckpt.pth"), "--gpu_devices", "cpu"])
    metrics = json.loads((run / "SmallCNN_last_ckpt_test_metrics.json").read_text())["metrics"]
    assert metrics["samples"] == 1000
    assert metrics["accuracy"] > 0.4  # 26 steps on 1,620 images; chance is 0.1
