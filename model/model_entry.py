"""Pick a model by ``--model_type``, and describe it for the log.

Adding a model is one new file in ``model/``: a factory registered under its name where it is
defined::

    @register_model("MyNet", options=(add_options,))
    def build_my_net(opt: Namespace, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        ...

The factory gets the options, the shape of one input sample and the number of outputs the
data asks for (classes, mask classes, regression targets). The selector finds it by importing
every module of ``model/`` (see :class:`Registry`). ``options`` declare the model's own flags
(``--bilinear``); ``--help`` lists them, and a run records only those of its own model.
"""

from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from utils.loop.export import Pixels
from utils.registry import OptionDeclarer, Registry

ModelFactory = Callable[[Namespace, tuple[int, ...], int], nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    """A model's factory, the declarers of the options it reads beyond the base ones, and
    what it returns for a batch ``(N, C, H, W)``: ``(N, num_outputs)``, or with ``per_pixel``
    ``(N, num_outputs, H, W)``.

    With ``pixels`` the factory also takes ``pixels=``: the data's preprocessing (a
    :class:`~utils.loop.export.Pixels`) when training builds it, None when its weights will
    come from a checkpoint; a pretrained model adapts its input to it. ``family`` names the
    entry that the contract tests check in this one's place, where one factory builds many
    (every torchvision classifier is tested as ``resnet18``)."""

    build: ModelFactory
    options: tuple[OptionDeclarer, ...] = ()
    per_pixel: bool = False
    pixels: bool = False
    family: str = ""


MODELS: Registry[ModelEntry] = Registry("model_type", "model", "model")


def register_model(
    name: str,
    *,
    options: tuple[OptionDeclarer, ...] = (),
    per_pixel: bool = False,
    pixels: bool = False,
    family: str = "",
) -> Callable[[ModelFactory], ModelFactory]:
    """Register the decorated factory as ``--model_type name`` (see :class:`ModelEntry`)."""

    def register(build: ModelFactory) -> ModelFactory:
        MODELS.register(name, ModelEntry(build, options, per_pixel, pixels, family))
        return build

    return register


def build_model(
    opt: Namespace, input_shape: tuple[int, ...], num_outputs: int, pixels: Pixels | None = None
) -> nn.Module:
    """Build ``opt.model_type`` for samples of ``input_shape``; unknown names list known ones.
    ``pixels``: the data's preprocessing when training (see :class:`ModelEntry`)."""
    entry = MODELS.lookup(opt.model_type)
    if entry.pixels:
        return entry.build(opt, input_shape, num_outputs, pixels=pixels)
    return entry.build(opt, input_shape, num_outputs)


def family_examples() -> list[str]:
    """The models the contract tests check: one per family (see :class:`ModelEntry`)."""
    return sorted({entry.family or name for name, entry in MODELS.items()})
