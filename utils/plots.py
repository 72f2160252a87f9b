"""Pictures of results: confusion matrices (matplotlib's object API, no pyplot state or
display) and image/mask/prediction panels for segmentation."""

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image, ImageDraw


def save_confusion_matrix(
    confusion: torch.Tensor, class_names: list[str], path: str | Path, title: str = ""
) -> Figure:
    """Heat map of counts (rows = true class, columns = predicted) with each count written in;
    returns the figure it saved."""
    counts = confusion.cpu().numpy()
    size = max(5.0, 0.7 * len(class_names) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = counts.max() / 2
    for (row, col), value in np.ndenumerate(counts):
        color = "white" if value > threshold else "black"
        ax.text(col, row, str(value), ha="center", va="center", color=color, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return fig


def seg_panel(image: torch.Tensor, mask: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """``[3, H, 3W]``: the image, the true mask and the predicted mask side by side.

    ``image`` is ``[3, H, W]`` in [0, 1]; ``mask`` and ``pred`` are ``[1, H, W]`` in {0, 1}.
    """
    return torch.cat([image, mask.expand_as(image), pred.expand_as(image)], dim=2)


PANEL_TITLES = ("image", "true mask", "prediction")


def titled_panel(panel: torch.Tensor, caption: str = "", column: int = 160) -> Image.Image:
    """A :func:`seg_panel` as an RGB picture with a title bar: each column's name, and
    ``caption`` (the image's score) after the last. Columns narrower than ``column`` pixels
    are enlarged (nearest), so that the titles fit over them."""
    pixels = (panel.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    picture = Image.fromarray(pixels)
    width = picture.width // len(PANEL_TITLES)
    if width < column:
        scale = column / width
        picture = picture.resize(
            (round(picture.width * scale), round(picture.height * scale)), Image.Resampling.NEAREST
        )
        width = picture.width // len(PANEL_TITLES)
    bar = 16
    titled = Image.new("RGB", (picture.width, picture.height + bar), "white")
    titled.paste(picture, (0, bar))
    draw = ImageDraw.Draw(titled)
    for k, title in enumerate(PANEL_TITLES):
        text = f"{title}  {caption}" if caption and k == len(PANEL_TITLES) - 1 else title
        draw.text((k * width + 4, 2), text, fill="black")
    return titled


def class_colours(num_classes: int) -> np.ndarray:
    """``[K, 3]`` uint8 colours of ``K`` classes: black background, red first class (as a binary
    mask's overlay), then matplotlib's tab10 colours, repeated past them."""
    from matplotlib import colormaps

    tab10 = np.round(np.array(colormaps["tab10"].colors) * 255).astype(np.uint8)
    more = np.resize(tab10, (max(0, num_classes - 2), 3))
    return np.vstack([[[0, 0, 0], [255, 0, 0]], more]).astype(np.uint8)[:num_classes]


def index_image(classes: np.ndarray, num_classes: int) -> Image.Image:
    """An ``HxW`` array of class indices as a palette PNG's image: its pixels are the indices
    (what a program reads back), its palette the class colours (what a viewer shows)."""
    height, width = classes.shape
    image = Image.frombytes("P", (width, height), classes.astype(np.uint8).tobytes())
    image.putpalette(class_colours(num_classes).ravel().tolist())
    return image


def mask_overlay(image: Image.Image, mask: np.ndarray, num_classes: int = 2) -> Image.Image:
    """``image`` (RGB) with each object pixel blended halfway toward its class colour: how a
    predicted mask fits the photo, at a glance. ``mask`` is ``HxW``: nonzero = object for a
    binary mask (``num_classes`` 2, tinted red), else class indices ``0..K-1``."""
    classes = (mask > 0).astype(np.uint8) if num_classes == 2 else mask.astype(np.uint8)
    colours = Image.fromarray(class_colours(max(num_classes, 2))[classes])
    tinted = Image.blend(image, colours, 0.5)
    return Image.composite(tinted, image, Image.fromarray((classes > 0).astype(np.uint8) * 255))
