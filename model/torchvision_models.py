"""Every classification model of torchvision by name: ``--model_type resnet18`` (or
``efficientnet_b0``, ``convnext_tiny``, ``vit_b_16``... whatever
``torchvision.models.list_models(module=torchvision.models)`` holds), from scratch or with
torchvision's default ImageNet weights (``--pretrained True``, or a local file with
``--weights PATH``).

The classifier is made for the data's classes and, for grey images, the first convolution for
one channel: with pretrained weights its three RGB kernels are summed into one, as timm and
segmentation_models.pytorch do, so a grey image stands for the same grey in every channel.
A pretrained model also takes the weights' own input from its metadata: it maps the data's
normalisation to the weights' (mean and std per channel) and resizes to their size (224 for
most), inside the model; the checkpoint holds both, so evaluation, prediction and export feed
it exactly as training did. ``head_names`` names the classifier's parameters, which
``--freeze_backbone`` and ``--backbone_lr_mult`` leave at the full learning rate.

Weights come from torchvision's cache (``$TORCH_HOME/hub/checkpoints``, downloaded there once,
checked against the hash in their name) and are read with ``weights_only=True``.
"""

import argparse
import functools
import urllib.error
from argparse import Namespace
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.hub import HASH_REGEX, download_url_to_file, get_dir
from torchvision.models import get_model, get_model_weights, list_models

from model.model_entry import register_model
from utils.cli import str2bool
from utils.errors import UsageError
from utils.loop.export import Pixels

NAMES = list_models(module=torchvision.models)
# GoogLeNet and Inception v3 train with auxiliary classifiers (a training forward returns a
# tuple) and their ImageNet weights expect their own input transform: they are built without
# the auxiliaries (whose weights are left out) and, pretrained, as torchvision builds them.
AUXILIARIES = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}
EXAMPLE = "resnet18"  # the one the contract tests check for all: one factory builds them


def add_options(group: argparse._ArgumentGroup) -> None:
    """Where a torchvision model's starting weights come from."""
    group.add_argument(
        "--pretrained",
        type=str2bool,
        default=False,
        help="start from torchvision's default ImageNet weights for the model (EncoderUNet: "
        "its --encoder), downloaded once into $TORCH_HOME/hub/checkpoints; offline, put the "
        "file there",
    )
    group.add_argument(
        "--weights",
        default=None,
        metavar="PATH",
        help="start from the weights in this file (a torchvision state dict), as --pretrained "
        "would from torchvision's",
    )


class WeightsInput(nn.Module):
    """The input pretrained weights expect, from the input the data gives: its normalisation
    mapped to the weights' (``scale`` and ``shift``, buffers, one per channel, so checkpoints
    keep them), then, where ``size`` is set, resized to the weights' size."""

    def __init__(self, channels: int, size: tuple[int, int] | None) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("scale", torch.ones(1, channels, 1, 1))
        self.register_buffer("shift", torch.zeros(1, channels, 1, 1))

    def feed_as(self, data: Pixels, weights: Pixels) -> None:
        """Map inputs normalised as ``data`` says to the normalisation of ``weights``."""
        data_mean, data_std = torch.tensor(data.mean), torch.tensor(data.std)
        mean, std = torch.tensor(weights.mean), torch.tensor(weights.std)
        self.scale.copy_((data_std / std).view_as(self.scale))
        self.shift.copy_(((data_mean - mean) / std).view_as(self.shift))

    def forward(self, x: Tensor) -> Tensor:
        x = torch.addcmul(self.shift, x, self.scale)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, self.size, mode="bilinear", antialias=True)
        return x


def weights_input(name: str, channels: int, pixels: Pixels | None, size: bool) -> WeightsInput:
    """The :class:`WeightsInput` of ``name``'s default weights (their size if ``size``); fed
    from ``pixels``, the data's preprocessing, when given (else a checkpoint fills it). A grey
    image's one channel takes the mean of the RGB means and stds."""
    expects = get_model_weights(name).DEFAULT.transforms()
    mean, std = expects.mean, expects.std
    if channels == 1:  # one grey value stands for all three channels
        mean, std = [sum(mean) / 3], [sum(std) / 3]
    crop = (expects.crop_size[0], expects.crop_size[0])
    mapped = WeightsInput(channels, crop if size else None)
    if pixels is not None:
        mapped.feed_as(pixels, Pixels(crop, tuple(mean), tuple(std)))
    return mapped


def pretrained_state(name: str, opt: Namespace) -> tuple[dict[str, Tensor], str]:
    """The weights ``--weights`` names, or torchvision's default ones for ``name`` (from the
    cache, or downloaded into it), without GoogLeNet's and Inception's auxiliary classifiers;
    and where they came from."""
    if opt.weights:
        path, option = Path(opt.weights), "--weights"
    else:
        path, option = weights_file(name, get_model_weights(name).DEFAULT.url), "--pretrained"
    state = read_weights(path, option)
    state = {k: v for k, v in state.items() if not k.startswith(AUXILIARIES.get(name, ()))}
    return state, f"{option} {path}"


class TorchvisionClassifier(nn.Module):
    """A torchvision classifier ``net``, fed as its weights expect when pretrained
    (``input``: a :class:`WeightsInput`; from scratch inputs go in as they come).
    ``head_names`` are the parameter names of the classifier made for the data's classes."""

    def __init__(self, net: nn.Module, head: set[str], weights: WeightsInput | None) -> None:
        super().__init__()
        self.input = weights if weights is not None else nn.Identity()
        self.net = net
        self.head_names = frozenset(f"net.{name}" for name in head)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.input(x))


def construct(name: str, num_outputs: int, pretrained: bool) -> nn.Module:
    """torchvision's ``name`` with ``num_outputs`` classes and no weights (see AUXILIARIES)."""
    extra = {}
    if name in AUXILIARIES:
        extra = {"aux_logits": False, "init_weights": not pretrained, "transform_input": pretrained}
    return get_model(name, weights=None, num_classes=num_outputs, **extra)


def first_conv(net: nn.Module) -> tuple[str, nn.Conv2d]:
    """The name and module of the first convolution: the stem that reads the image."""
    return next((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d))


def with_channels(net: nn.Module, channels: int) -> None:
    """Give ``net``'s stem ``channels`` input channels (a new convolution, same shape else)."""
    name, conv = first_conv(net)
    if conv.in_channels == channels:
        return
    parent, _, attribute = name.rpartition(".")
    stem = nn.Conv2d(
        channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        conv.bias is not None,
        conv.padding_mode,
    )
    setattr(net.get_submodule(parent), attribute, stem)


def head_of(
    name: str, net: nn.Module, channels: int, num_outputs: int, pretrained: bool
) -> set[str]:
    """The parameters of ``net`` whose shape follows the number of classes: its classifier
    (found by building the model for one class more: on the meta device, for free, unless
    its construction computes with tensors, as RegNet's does)."""
    try:
        with torch.device("meta"):
            other = construct(name, num_outputs + 1, pretrained)
    except NotImplementedError:  # "Cannot copy out of meta tensor"
        other = construct(name, num_outputs + 1, pretrained)
    with_channels(other, channels)
    shapes = {key: value.shape for key, value in other.named_parameters()}
    return {key for key, value in net.named_parameters() if shapes.get(key) != value.shape}


def weights_file(name: str, url: str) -> Path:
    """torchvision's file of ``name``'s default weights in its cache, downloaded there (and its
    hash checked) if missing; offline, one line saying where to put it."""
    path = Path(get_dir()) / "checkpoints" / Path(url).name
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    found = HASH_REGEX.search(path.name)
    try:
        download_url_to_file(url, str(path), found.group(1) if found else None, progress=False)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        raise UsageError(
            f"--pretrained: the weights of {name}, {path.name}, are not in {path.parent} and "
            f"could not be downloaded ({err}); put the file there (from {url}) or pass "
            "--weights PATH"
        ) from None
    return path


def read_weights(path: Path, option: str) -> dict[str, Tensor]:
    """A state dict from ``path``, read with ``weights_only=True``; bad files are one line."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UsageError(f"{option} {path}: not found; expected a .pth state dict") from None
    except Exception as err:  # torch.load raises many kinds on a bad file
        raise UsageError(f"{option} {path}: not a weights file torch can read ({err})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # a run's checkpoint
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UsageError(f"{option} {path}: expected a state dict of tensors")
    return state


def load_pretrained(net: nn.Module, state: dict[str, Tensor], source: str, head: set[str]) -> None:
    """Load ``state`` (weights for 3 channels and ImageNet's classes) into ``net``: a one-channel
    stem takes the sum of the RGB kernels; the classifier stays as built when its shape
    differs. Anything else that does not fit is one line."""
    stem, conv = first_conv(net)
    own = net.state_dict()
    kernel = state.get(f"{stem}.weight")
    if kernel is not None and conv.in_channels == 1 and kernel.shape[1] == 3:
        state = {**state, f"{stem}.weight": kernel.sum(dim=1, keepdim=True)}
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    unfit = sorted((state.keys() | own.keys()) - fits.keys() - head)
    if unfit:
        shown = ", ".join(unfit[:3]) + (" ..." if len(unfit) > 3 else "")
        raise UsageError(f"{source} does not fit this model: {len(unfit)} keys differ ({shown})")
    net.load_state_dict(fits, strict=False)


def build_torchvision(
    name: str,
    opt: Namespace,
    input_shape: tuple[int, ...],
    num_outputs: int,
    pixels: Pixels | None = None,
) -> TorchvisionClassifier:
    """``name`` for ``input_shape`` inputs and ``num_outputs`` classes; pretrained weights
    loaded where the options ask and ``pixels`` (the data's preprocessing) is given, since
    without it the weights come from a checkpoint."""
    channels, pretrained = input_shape[0], bool(opt.pretrained or opt.weights)
    net = construct(name, num_outputs, pretrained)
    with_channels(net, channels)
    head = head_of(name, net, channels, num_outputs, pretrained)
    if not pretrained:
        return TorchvisionClassifier(net, head, None)
    if pixels is not None:  # training: start from the weights
        load_pretrained(net, *pretrained_state(name, opt), head=head)
    return TorchvisionClassifier(net, head, weights_input(name, channels, pixels, size=True))


def register_all() -> None:
    """Register every torchvision classification model under its own name."""
    for name in NAMES:
        build = functools.partial(build_torchvision, name)
        register_model(name, options=(add_options,), pixels=True, family=EXAMPLE)(build)


register_all()
