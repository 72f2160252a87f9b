"""Plain tables: aligned text for the terminal, CSV for everything else."""

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from utils.atomic import atomic_write


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first is the header) as left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def write_csv(path: str | Path, rows: Sequence[Sequence[object]]) -> None:
    """Write ``rows`` (the first is the header) as CSV, atomically; floats keep every digit."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))
