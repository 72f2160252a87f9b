"""Model selection by name, the Vanilla MLP, and the model description for the log."""

from argparse import Namespace

import pytest
import torch

from model.model_entry import MODELS, build_model, count_parameters, describe_model
from utils.errors import UsageError


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
