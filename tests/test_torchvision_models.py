"""Every torchvision classifier by name: each family builds for 1 and 3 channels and K
classes; pretrained weights load from torchvision's cache (a planted file: nothing is
downloaded here) or ``--weights``; offline, a missing file is one line; a checkpoint carries
the weights' preprocessing; ``--freeze_backbone`` and ``--backbone_lr_mult`` train the head
alone, then the backbone at its own lr, exactly on resume."""

import argparse
import urllib.error
from pathlib import Path

import pytest
import torch
from test_trainer import interrupting, options, same_weights
from torch import nn
from torchvision.models import get_model, get_model_weights
from toy_task import BATCHES_PER_EPOCH, ToyTrainer

import model.torchvision_models as tv
from data.image_folder import write_example
from eval_vanilla import VanillaEvaluator, build_vanilla_eval_parser
from model.encoder_unet import build_encoder_unet
from model.model_entry import MODELS
from trainer_vanilla import VanillaTrainer, build_vanilla_parser
from utils.errors import UsageError
from utils.loop.export import Pixels
from utils.signals import StopRequested

# One of each family, with the input size it needs (the transformers take their weights' size).
FAMILIES = {
    "resnet18": 32,
    "efficientnet_b0": 32,
    "mobilenet_v3_small": 32,
    "convnext_tiny": 32,
    "densenet121": 32,
    "regnet_x_400mf": 32,
    "shufflenet_v2_x0_5": 32,
    "mnasnet0_5": 32,
    "squeezenet1_0": 64,
    "alexnet": 64,
    "vgg11": 32,
    "googlenet": 32,
    "inception_v3": 75,
    "vit_b_16": 224,
    "swin_t": 224,
    "maxvit_t": 224,
}
DATA = Pixels((32, 32), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))


def opt(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"pretrained": False, "weights": None, **given})


def test_every_torchvision_classifier_is_registered():
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    assert len(names) > 50 and all(MODELS[name].family == "resnet18" for name in names)


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("channels", [1, 3])
def test_a_family_builds_for_any_channels_and_classes(name, channels):
    size = FAMILIES[name]
    model = tv.build_torchvision(name, opt(), (channels, size, size), 5, None).eval()
    with torch.no_grad():
        result = model(torch.randn(2, channels, size, size))
    assert tuple(result.shape) == (2, 5) and result.isfinite().all()
    params = dict(model.named_parameters())
    assert model.head_names and all(params[n].shape[0] == 5 for n in model.head_names)
    assert tv.first_conv(model.net)[1].in_channels == channels


def planted(tmp_path: Path, monkeypatch, name: str) -> dict[str, torch.Tensor]:
    """torchvision's file of ``name``'s weights in a TORCH_HOME of ``tmp_path``, holding
    seeded random values of the right names and shapes."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(7)
    state = {}
    for key, value in get_model(name).state_dict().items():
        drawn = torch.randn_like(value.float())
        state[key] = (drawn.abs() + 0.5 if "running_var" in key else drawn).to(value.dtype)
    url = get_model_weights(name).DEFAULT.url
    path = tmp_path / "torch" / "hub" / "checkpoints" / Path(url).name
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


@pytest.mark.parametrize("channels", [1, 3])
def test_pretrained_weights_load_from_the_cache_with_the_stem_summed_for_grey(
    tmp_path, monkeypatch, channels
):
    state = planted(tmp_path, monkeypatch, "resnet18")
    data = DATA if channels == 3 else Pixels((32, 32), (0.5,), (0.2,))
    model = tv.build_torchvision("resnet18", opt(pretrained=True), (channels, 32, 32), 5, data)
    own = model.net.state_dict()
    for key, value in state.items():
        if f"net.{key}" in model.head_names:
            assert own[key].shape[0] == 5
        elif key == "conv1.weight" and channels == 1:
            assert torch.equal(own[key], value.sum(dim=1, keepdim=True))
        else:
            assert torch.equal(own[key], value), key
    assert model.input.size == (224, 224)


def test_weights_from_a_local_file_and_the_data_fed_as_they_expect(tmp_path, monkeypatch):
    state = planted(tmp_path, monkeypatch, "mobilenet_v3_small")
    local = tmp_path / "mine.pth"
    local.write_bytes(
        (tmp_path / "torch" / "hub" / "checkpoints").glob("*.pth").__next__().read_bytes()
    )
    (tmp_path / "torch").rename(tmp_path / "gone")  # not in the cache: --weights alone
    built = tv.build_torchvision(
        "mobilenet_v3_small", opt(weights=str(local)), (3, 32, 32), 4, DATA
    ).eval()
    own = built.net.state_dict()
    assert all(
        torch.equal(own[k], v) for k, v in state.items() if f"net.{k}" not in built.head_names
    )
    expects = get_model_weights("mobilenet_v3_small").DEFAULT.transforms()
    pixels = torch.rand(1, 3, 32, 32)  # in [0, 1]
    mean, std = torch.tensor(DATA.mean).view(1, 3, 1, 1), torch.tensor(DATA.std).view(1, 3, 1, 1)
    as_the_data_gives = (pixels - mean) / std
    imagenet = (pixels - torch.tensor(expects.mean).view(1, 3, 1, 1)) / torch.tensor(
        expects.std
    ).view(1, 3, 1, 1)
    resized = nn.functional.interpolate(imagenet, (224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        torch.testing.assert_close(
            built(as_the_data_gives), built.net(resized), atol=1e-4, rtol=1e-4
        )


def test_a_missing_file_offline_is_one_line_naming_it_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url, dst, hash_prefix=None, progress=True):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv, "download_url_to_file", offline)
    name = Path(get_model_weights("resnet18").DEFAULT.url).name
    with pytest.raises(UsageError, match=f"{name}, are not in .*checkpoints and could not be"):
        tv.build_torchvision("resnet18", opt(pretrained=True), (3, 32, 32), 5, DATA)
    with pytest.raises(UsageError, match=r"--weights .*nope.pth: not found"):
        tv.build_torchvision(
            "resnet18", opt(weights=str(tmp_path / "nope.pth")), (3, 32, 32), 5, DATA
        )
    wrong = tmp_path / "wrong.pth"
    torch.save(get_model("mobilenet_v3_small").state_dict(), wrong)
    with pytest.raises(UsageError, match="does not fit this model"):
        tv.build_torchvision("resnet18", opt(weights=str(wrong)), (3, 32, 32), 5, DATA)


class Headed(ToyTrainer):
    """The toy task with a model that names its head, as the torchvision ones do."""

    def build_model(self) -> nn.Module:
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
        model.head_names = frozenset({"3.weight", "3.bias"})
        return model


class Watched(Headed):
    def train_one_epoch(self) -> dict[str, float]:
        metrics = super().train_one_epoch()
        weights = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.after = [*getattr(self, "after", []), weights]
        self.lrs = [*getattr(self, "lrs", []), [g["lr"] for g in self.optimizer.param_groups]]
        return metrics


def test_the_head_trains_alone_then_the_backbone_at_its_own_lr(tmp_path):
    trainer = Watched(options(tmp_path, "--freeze_backbone", "1", "--backbone_lr_mult", "0.5"))
    start = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    trainer.train()
    first, second = trainer.after[0], trainer.after[1]
    for key in ("1.weight", "1.bias"):  # the backbone: still as it started, then moving
        assert torch.equal(first[key], start[key]) and not torch.equal(second[key], first[key])
    assert not torch.equal(first["3.weight"], start["3.weight"])  # the head trained from step 1
    backbone, head = trainer.lrs[1]
    assert backbone == pytest.approx(head * 0.5)


def test_fine_tuning_resumes_exactly(tmp_path):
    argv = ("--freeze_backbone", "1", "--backbone_lr_mult", "0.5", "--flip", "True")
    reference = Headed(options(tmp_path / "reference", *argv))
    reference.train()

    class Stopped(Headed, interrupting(BATCHES_PER_EPOCH + 3, "sigterm")):
        pass

    stopped = Stopped(options(tmp_path / "stopped", *argv))
    with pytest.raises(StopRequested):
        stopped.train()
    checkpoint = str(stopped.run_dir / "Vanilla_interrupt_ckpt.pth")
    resumed = Headed(options(tmp_path / "stopped", *argv, "--resume", checkpoint))
    resumed.train()
    assert same_weights(resumed.net.state_dict(), reference.net.state_dict())


def test_fine_tuning_a_model_without_a_named_head_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="does not name its head"):
        ToyTrainer(options(tmp_path, "--freeze_backbone", "2"))


def test_a_checkpoint_carries_the_weights_preprocessing_to_the_evaluator(tmp_path, monkeypatch):
    """Trained from planted weights on the ImageFolder example, the best checkpoint alone (the
    weights' file gone) rebuilds a model that gives the trained one's outputs, for the
    evaluator and for a resumed run."""
    planted(tmp_path, monkeypatch, "resnet18")
    given = write_example(tmp_path / "data")
    argv = [f"--{key}={value}" for key, value in given.items()]
    argv += ["--data_type", "ImageFolder", "--model_type", "resnet18", "--pretrained", "True"]
    argv += ["--output_dir", str(tmp_path / "runs"), "--epochs", "1", "--batch_size", "4"]
    argv += ["--gpu_devices", "cpu", "--num_workers", "0"]
    trainer = VanillaTrainer(build_vanilla_parser().parse_args(argv))
    trainer.train()
    assert trainer.net.input.size == (224, 224)
    assert not torch.equal(trainer.net.input.scale, torch.ones(1))
    (tmp_path / "torch").rename(tmp_path / "gone")
    checkpoint = trainer.checkpoint_path("last")
    evaluator = VanillaEvaluator(
        build_vanilla_eval_parser().parse_args(
            ["--model_path", str(checkpoint), "--gpu_devices", "cpu", "--num_workers", "0"]
        )
    )
    inputs = torch.randn(2, *trainer.data.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(evaluator.model(inputs), trainer.net.eval()(inputs))
    # Resumed, it takes weights and preprocessing from the checkpoint: the file is not needed.
    argv += ["--resume", str(checkpoint)]
    resumed = VanillaTrainer(build_vanilla_parser().parse_args(argv))
    with torch.no_grad():
        torch.testing.assert_close(resumed.net.eval()(inputs), trainer.net(inputs))


@pytest.mark.parametrize(("encoder", "channels"), [("resnet34", 1), ("vgg11", 3)])
def test_an_encoder_unet_starts_from_the_planted_weights(tmp_path, monkeypatch, encoder, channels):
    state = planted(tmp_path, monkeypatch, encoder)
    given = opt(pretrained=True, encoder=encoder, base_width=8, norm="batch")
    data = DATA if channels == 3 else Pixels((32, 32), (0.5,), (0.2,))
    model = build_encoder_unet(given, (channels, 48, 40), 3, pixels=data).eval()
    encoder_weights = {
        name: value for name, value in model.state_dict().items() if name.startswith("encoder.")
    }
    originals = [
        value for key, value in state.items() if not key.startswith(("fc.", "classifier."))
    ]
    used = list(encoder_weights.values())
    assert len(used) == len(originals)
    for mine, theirs in zip(used, originals, strict=True):  # the same order: the same layers
        expected = theirs.sum(dim=1, keepdim=True) if mine.shape != theirs.shape else theirs
        assert torch.equal(mine, expected)
    assert not torch.equal(model.input.scale, torch.ones_like(model.input.scale))
    with torch.no_grad():
        assert tuple(model(torch.randn(2, channels, 48, 40)).shape) == (2, 3, 48, 40)
