"""Every registered dataset and model does what its entry declares.

The entries are found as the trainers find them, by importing ``data/`` and ``model/``, so a
new file there is tested here without an edit: a dataset builds from its own ``example``
(or from its defaults, where it reads no files), a model from any input of 1 or 3 channels.
"""

import argparse
import json
from pathlib import Path

import pytest
import torch

from data.data_entry import DATASETS, build_datasets, build_loader, input_loader
from data.image_files import is_image_file
from model.model_entry import MODELS, build_model, family_examples
from trainer import build_parser
from utils.cli import str2bool

CPU = torch.device("cpu")


def options(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args([*argv, "--gpu_devices", "cpu", "--num_workers", "0"])


def dataset_options(name: str, folder: Path) -> argparse.Namespace:
    """The options that read ``name``'s example, written into ``folder``."""
    example = DATASETS[name].example
    given = example(folder) if example else {}
    return options("--data_type", name, *(f"--{key}={value}" for key, value in given.items()))


def batches(dataset, opt: argparse.Namespace, shuffle: bool) -> list:
    """Every batch of ``dataset`` as the trainer's loader gives it."""
    return list(build_loader(dataset, opt, shuffle=shuffle, device=CPU))


@pytest.mark.parametrize("name", list(DATASETS))
def test_a_dataset_yields_what_it_declares(name, tmp_path):
    """Each split's inputs have the declared shape, class names (where there are classes)
    name every output, and the summary is plain JSON."""
    opt = dataset_options(name, tmp_path)
    data = build_datasets(opt)
    for split in (data.train, data.val, data.test):
        inputs, targets = batches(split, opt, shuffle=False)[0]
        assert tuple(inputs.shape[1:]) == tuple(data.input_shape)
        assert inputs.is_floating_point() and len(targets) == len(inputs)
    assert data.num_outputs >= 1
    assert not data.class_names or len(data.class_names) == data.num_outputs
    assert json.loads(json.dumps(data.summary()))["num_outputs"] == data.num_outputs


@pytest.mark.parametrize("name", list(DATASETS))
def test_a_dataset_is_the_same_under_the_same_seed(name, tmp_path):
    """Two builds with one seed give the same splits in the same shuffled order."""
    opt = dataset_options(name, tmp_path)
    first, second = build_datasets(opt), build_datasets(opt)
    assert first.summary() == second.summary()
    for split in ("train", "test"):
        a = batches(getattr(first, split), opt, shuffle=split == "train")
        b = batches(getattr(second, split), opt, shuffle=split == "train")
        for (x_a, y_a), (x_b, y_b) in zip(a, b, strict=True):
            assert torch.equal(x_a, x_b) and torch.equal(y_a, y_b)


@pytest.mark.parametrize("name", [n for n in DATASETS if DATASETS[n].load_input])
def test_load_input_makes_each_test_sample_from_its_image_file(name, tmp_path):
    """Prediction preprocesses a file exactly as the dataset does: every test input equals
    ``load_input`` of one of the example's image files."""
    opt = dataset_options(name, tmp_path)
    data = build_datasets(opt)
    files = sorted(p for p in tmp_path.rglob("*") if is_image_file(p) and "cache" not in p.parts)
    load = input_loader(opt, data.info)
    loaded = [load(path) for path in files]
    inputs = torch.cat([x for x, _ in batches(data.test, opt, shuffle=False)])
    for sample in inputs:
        assert any(
            x.shape == sample.shape and torch.allclose(x, sample, atol=1e-5) for x in loaded
        ), f"no image file of the {name} example loads as this test sample"


ENTRIES = [(DATASETS, name) for name in DATASETS] + [(MODELS, name) for name in MODELS]


@pytest.mark.parametrize(("registry", "name"), ENTRIES, ids=[name for _, name in ENTRIES])
def test_a_run_holds_the_options_of_its_own_entries_alone(registry, name):
    """What config.json, the checkpoint and the hparams record: the base options and those
    the selected dataset and model declare."""
    everything = {a.dest for a in build_parser()._actions if a.option_strings} - {"help"}
    declared = set().union(*DATASETS.declared().values(), *MODELS.declared().values())
    opt = options(f"--{registry.option}", name)
    own = DATASETS.declared()[opt.data_type] | MODELS.declared()[opt.model_type]
    assert own >= registry.declared()[name]
    assert set(vars(opt)) == (everything - declared - {"config", "print_config"}) | own


def changed_value(action: argparse.Action) -> str:
    """A command-line value of ``action`` other than its default."""
    if action.choices:
        return next(str(c) for c in action.choices if c != action.default)
    if action.type is str2bool:
        return str(not action.default)
    if isinstance(action.default, int):
        return str(action.default + 1)
    if isinstance(action.default, float):
        return str(action.default / 2)
    if action.metavar == "PATH":  # a file the model reads only when trained (pixels given)
        return "example.pth"
    raise AssertionError(f"--{action.dest}: give the contract test a value to try")


def built(opt: argparse.Namespace, shape: tuple[int, ...], outputs: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(opt, shape, outputs)


@pytest.mark.parametrize("name", family_examples())
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("outputs", [1, 4])
def test_a_model_returns_what_it_declares(name, channels, outputs):
    """``(N, outputs)``, or ``(N, outputs, H, W)`` for a model that predicts per pixel."""
    shape = (channels, 32, 32)
    model = built(options("--model_type", name), shape, outputs).eval()
    with torch.no_grad():
        result = model(torch.randn(2, *shape))
    expected = (2, outputs, 32, 32) if MODELS[name].per_pixel else (2, outputs)
    assert tuple(result.shape) == expected and result.isfinite().all()


@pytest.mark.parametrize("name", family_examples())
def test_a_model_is_the_same_under_the_same_seed(name):
    opt = options("--model_type", name)
    first, second = built(opt, (3, 32, 32), 2), built(opt, (3, 32, 32), 2)
    for (key, a), (_, b) in zip(
        first.state_dict().items(), second.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), key


def model_fingerprint(model: torch.nn.Module) -> tuple:
    """The parameter and buffer shapes, and a training-mode output under a fixed seed."""
    torch.manual_seed(1)
    result = model.train()(torch.randn(2, 3, 32, 32))
    outputs = result if isinstance(result, list | tuple) else [result]
    shapes = tuple((key, tuple(value.shape)) for key, value in model.state_dict().items())
    return shapes, [output.detach() for output in outputs]


@pytest.mark.parametrize(
    ("name", "dest"),
    [(name, dest) for name in family_examples() for dest in sorted(MODELS.declared()[name])],
)
def test_every_option_a_model_declares_reaches_it(name, dest):
    """Built with one of its options changed, the model differs: in its weights' shapes, or
    in what it returns for one input."""
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == dest)
    default = built(options("--model_type", name), (3, 32, 32), 2)
    changed = options("--model_type", name, f"--{dest}={changed_value(action)}")
    other = built(changed, (3, 32, 32), 2)
    shapes, outputs = model_fingerprint(default)
    other_shapes, other_outputs = model_fingerprint(other)
    same_outputs = len(outputs) == len(other_outputs) and all(
        a.shape == b.shape and torch.equal(a, b)
        for a, b in zip(outputs, other_outputs, strict=False)
    )
    assert shapes != other_shapes or not same_outputs, f"--{dest} does not reach {name}"
