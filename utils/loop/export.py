"""A trained model as a file that plain PyTorch runs: ``torch.export`` (``.pt2``), or ONNX.

The program takes a batch of images as they are decoded, uint8 ``(N, C, H, W)`` of any size,
and holds the run's input preprocessing (resize to the trained size, scale to [0, 1],
normalise) and the task's output head (probabilities, or class indices), so its user needs
nothing of this project: ``torch.export.load(path).module()(images)``. The batch, the
height and the width are dynamic. What a user needs to read its outputs (class names, the
input channels and size, the run) travels in the file as ``task.json``.
"""

import importlib.util
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from utils.atomic import atomic_write
from utils.errors import UsageError

TASK_FILE = "task.json"  # the extra file of a .pt2 that describes it
ONNX_PACKAGES = ("onnx", "onnxscript")  # what torch.onnx.export (dynamo) needs


@dataclass(frozen=True)
class Pixels:
    """How a dataset turns the pixels of a decoded image into the model's input: bilinear
    resize to ``size`` (height, width), scale to [0, 1], then ``(x - mean) / std``."""

    size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]


class Preprocess(nn.Module):
    """uint8 ``(N, C, H, W)`` images of any size -> float model inputs of :class:`Pixels`."""

    def __init__(self, pixels: Pixels) -> None:
        super().__init__()
        self.size = pixels.size
        self.register_buffer("mean", torch.tensor(pixels.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(pixels.std).view(1, -1, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std


# The task's outputs from the model's outputs and the images they came from.
Head = Callable[[Tensor, Tensor], Tensor]


class Program(nn.Module):
    """Preprocessing, the model in eval mode, and the task's head, as one module."""

    def __init__(self, pixels: Pixels, model: nn.Module, head: Head) -> None:
        super().__init__()
        self.preprocess = Preprocess(pixels)
        self.model = model
        self.head = head
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.model(self.preprocess(images)), images)


def check_export_path(path: Path) -> None:
    """Refuse, before anything is computed, a suffix other than .pt2 and .onnx, and ONNX
    without its packages."""
    if path.suffix not in (".pt2", ".onnx"):
        raise UsageError(f"--export {path}: expected a .pt2 (torch.export) or .onnx file")
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if path.suffix == ".onnx" and missing:
        raise UsageError(
            f"--export {path}: ONNX needs {' and '.join(missing)}; install them with "
            f"pip install {' '.join(ONNX_PACKAGES)}, or export a .pt2"
        )


def export_program(program: Program, channels: int, task: dict[str, Any], path: Path) -> None:
    """Export ``program`` for images of ``channels`` channels with the batch, height and
    width dynamic, and write it to ``path`` (``.pt2`` with ``task`` inside, or ``.onnx``)."""
    example = torch.randint(0, 256, (2, channels, *program.preprocess.size), dtype=torch.uint8)
    dims = {0: torch.export.Dim("batch", max=4096)}
    dims |= {2: torch.export.Dim("height", min=2, max=8192)}
    dims |= {3: torch.export.Dim("width", min=2, max=8192)}
    if path.suffix == ".onnx":  # the model's own graph: up to 2 GiB of protobuf
        try:
            onnx = torch.onnx.export(
                program, (example,), dynamic_shapes={"images": dims}, dynamo=True
            )
        except Exception as err:  # the exporter's errors span several classes of its own
            text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # no terminal colours
            first = text.splitlines()[0][:200] if text else ""
            raise UsageError(
                f"--export {path}: the ONNX exporter of torch {torch.__version__} could not "
                f"convert this model ({type(err).__name__}: {first}); export a .pt2, or "
                "use a newer torch and onnxscript"
            ) from None
        atomic_write(path, lambda file: file.write(onnx.model_proto.SerializeToString()))
        return
    exported = torch.export.export(program, (example,), dynamic_shapes={"images": dims})
    buffer = io.BytesIO()
    torch.export.save(exported, buffer, extra_files={TASK_FILE: json.dumps(task, indent=2)})
    atomic_write(path, lambda file: file.write(buffer.getvalue()))
