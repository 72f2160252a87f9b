"""Image files on disk: opening one with a clear error, finding those that ``--input`` names,
and where the datasets keep the arrays they decoded from them."""

import argparse
import glob
import itertools
from argparse import Namespace
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from utils.cli import str2bool
from utils.errors import UsageError

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")


def add_cache_options(group: argparse._ArgumentGroup) -> None:
    """``--cache`` and ``--cache_dir``, shared by the datasets that decode image files once."""
    group.add_argument(
        "--cache", type=str2bool, default=True, help="decode images once and reuse the arrays"
    )
    group.add_argument(
        "--cache_dir", default=None, help="where decoded arrays go; default <data_dir>/.cache"
    )


def cache_folder(opt: Namespace, root: Path, name: str) -> Path | None:
    """Where a dataset under ``root`` keeps its decoded arrays of kind ``name``; None with
    ``--cache False``."""
    if not opt.cache:
        return None
    return (Path(opt.cache_dir) if opt.cache_dir else root / ".cache") / name


# What PIL raises for a file that is no image, or a broken one (SyntaxError: some headers).
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def unreadable(path: Path, err: Exception) -> UsageError:
    """The one-line error of an image file PIL could not read."""
    return UsageError(f"cannot read {path} ({err}); expected a valid image file")


def open_image(path: Path) -> Image.Image:
    """The image at ``path``, decoded now; an unreadable file is a UsageError naming it."""
    try:
        image = Image.open(path)
        image.load()
    except UNREADABLE as err:
        raise unreadable(path, err) from None
    return image


def header_size(path: Path) -> tuple[int, int]:
    """The ``(width, height)`` of the image at ``path``, from its header alone."""
    try:
        with Image.open(path) as image:
            return image.size
    except UNREADABLE as err:
        raise unreadable(path, err) from None


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def images_named(name: str) -> list[Path]:
    """A file as given; the image files in a folder (not its subfolders) or matching a glob."""
    path = Path(name)
    if path.is_file():
        return [path]
    if path.is_dir():
        found, where = path.iterdir(), "the folder holds"
    elif any(char in name for char in "*?["):
        found, where = map(Path, glob.glob(name, recursive=True)), "the pattern matches"
    else:
        raise UsageError(f"--input {name}: no such file or folder")
    images = sorted(p for p in found if is_image_file(p))
    if not images:
        raise UsageError(f"--input {name}: {where} no image file ({' '.join(IMAGE_SUFFIXES)})")
    return images


def find_images(names: Sequence[str]) -> list[Path]:
    """Every image that ``names`` (files, folders, globs) stand for, in order, each once.

    A name that stands for no image is a UsageError: nothing should run on a typo.
    """
    return list(dict.fromkeys(path for name in names for path in images_named(name)))


class LoadedImage(NamedTuple):
    """One ``--input`` file: the model's input and the image's ``(height, width)``, or why the
    file could not be read."""

    path: Path
    input: Tensor | None
    size: tuple[int, int]
    error: str | None


class ImageFiles(Dataset):
    """Image files as model inputs through ``load`` (a dataset's ``load_input``).

    An unreadable file becomes an item holding its error rather than an exception, which in a
    DataLoader worker would end the whole pass: one bad file among many stops nothing.
    """

    def __init__(self, paths: Sequence[Path], load: Callable[[Path], Tensor]) -> None:
        self.paths = list(paths)
        self.load = load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> LoadedImage:
        path = self.paths[index]
        try:
            loaded = self.load(path)
        except UsageError as err:
            return LoadedImage(path, None, (0, 0), str(err))
        with Image.open(path) as image:  # the header alone: the original size
            width, height = image.size
        return LoadedImage(path, loaded, (height, width), None)


class ImageBatch(NamedTuple):
    """Images of one shape stacked into ``inputs``, with their files and own sizes."""

    inputs: Tensor
    paths: list[Path]
    sizes: list[tuple[int, int]]


def collate_by_shape(items: list[LoadedImage]) -> tuple[list[str], list[ImageBatch]]:
    """A loader batch as the errors of its unreadable files and one stacked batch per run of
    consecutive images of one shape (images of different sizes do not stack).

    It runs in the loader's workers, so the main process gets batches ready to move.
    """
    errors = [item.error for item in items if item.error is not None]
    loaded = [item for item in items if item.error is None]
    batches = []
    for _, group in itertools.groupby(loaded, key=lambda item: item.input.shape):
        run = list(group)
        inputs = torch.stack([item.input for item in run])
        batches.append(ImageBatch(inputs, [item.path for item in run], [item.size for item in run]))
    return errors, batches


def image_size(text: str) -> str:
    """The argparse type of ``--img_size``: ``N`` (``NxN``) or ``HxW``, returned as ``HxW``."""
    try:
        sizes = [int(part) for part in text.lower().split("x")]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW, in pixels >= 1, got {text!r}")
    height, width = sizes * (3 - len(sizes))
    return f"{height}x{width}"


def height_width(size: str) -> tuple[int, int]:
    """An :func:`image_size` ``"HxW"`` as ``(height, width)``."""
    height, width = (int(part) for part in size.split("x"))
    return height, width


def add_size_option(group: argparse._ArgumentGroup) -> None:
    """``--img_size``, shared by the datasets that read image folders."""
    group.add_argument(
        "--img_size",
        type=image_size,
        default=None,
        help="N (NxN) or HxW: every image is resized (bilinear; a mask nearest) to it; "
        "default: classes, the size of the first training image; masks, --img_scale. Masks "
        "are scored and predicted at each image's own size",
    )
