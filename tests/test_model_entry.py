"""Model selection by name, the Vanilla MLP, and the model description for the log."""

import json
import math
from argparse import Namespace

import pytest
import torch
from torch import nn
from toy_task import TOY_ARGS, ToyTrainer, build_toy_parser

from model.model_entry import MODELS, ModelEntry, build_model
from utils.errors import UsageError
from utils.loop.run_log import count_parameters, describe_model


def test_unknown_model_type_lists_the_known_ones():
    with pytest.raises(UsageError) as err:
        build_model(Namespace(model_type="ResNet9000"), (1, 28, 28), 10)
    assert "ResNet9000" in str(err.value)
    assert all(name in str(err.value) for name in MODELS)


def test_vanilla_is_784_512_512_10():
    model = build_model(Namespace(model_type="Vanilla"), (1, 28, 28), 10)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(784, 512), (512, 512), (512, 10)]
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_parameter_count_and_description():
    model = build_model(Namespace(model_type="Vanilla"), (1, 28, 28), 10)
    expected = 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    model.net[1].weight.requires_grad_(False)
    assert count_parameters(model) == (expected, expected - 784 * 512)
    assert f"{expected:,}" in describe_model(model)


def add_hidden_option(group):
    group.add_argument("--tiny_hidden", type=int, default=5, help="width of Tiny's hidden layer")


def build_tiny(opt, shape, classes):
    hidden = nn.Linear(math.prod(shape), opt.tiny_hidden)
    return nn.Sequential(nn.Flatten(), hidden, nn.ReLU(), nn.Linear(opt.tiny_hidden, classes))


def test_a_new_model_brings_its_own_option_without_the_trainer_knowing_it(
    tmp_path, monkeypatch, capsys
):
    """One registry line: the option is in --help, reaches the model, and config.json has it."""
    monkeypatch.setitem(MODELS, "Tiny", ModelEntry(build_tiny, (add_hidden_option,)))
    with pytest.raises(SystemExit):
        build_toy_parser().parse_args(["--help"])
    assert "model options (Tiny):\n  --tiny_hidden" in capsys.readouterr().out

    argv = ["--model_type", "Tiny", "--tiny_hidden", "7", "--epochs", "1", *TOY_ARGS]
    trainer = ToyTrainer(build_toy_parser().parse_args([*argv, "--output_dir", str(tmp_path)]))
    assert trainer.net[1].out_features == 7
    config = json.loads((trainer.run_dir / "config.json").read_text())
    assert config["options"]["tiny_hidden"] == 7


@pytest.mark.parametrize("depth", [2, 5])
def test_unet_depth_option_sets_the_number_of_poolings(depth):
    """``--depth`` reaches UNet: one encoder level per pooling, the input size kept."""
    from trainer_seg_on_carvana import build_seg_parser

    opt = build_seg_parser().parse_args(["--base_width", "4", "--depth", str(depth)])
    model = build_model(opt, (3, 64, 96), 1)
    assert len(model.encoder) == depth + 1  # the first DoubleConv, then one Down per pooling
    assert model(torch.zeros(1, 3, 64, 96)).shape == (1, 1, 64, 96)
