"""Figures saved as PNG through matplotlib's object API: no pyplot state, no display needed."""

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure


def save_confusion_matrix(
    confusion: torch.Tensor, class_names: list[str], path: str | Path, title: str = ""
) -> None:
    """Heat map of counts (rows = true class, columns = predicted) with each count written in."""
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
