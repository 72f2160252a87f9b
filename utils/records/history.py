"""A run's per-epoch metrics as CSV, ``metrics.csv``: epoch, global step, every metric.

The whole file is rewritten atomically at each epoch end (it is small), so it never holds half
a row. A resumed run first drops the rows after its checkpoint's epoch, as TensorBoard's
``purge_step`` hides what the earlier process logged after it: each epoch appears once.
"""

import csv
import io
from pathlib import Path
from typing import Any

from utils.atomic import atomic_write
from utils.errors import UsageError

METRICS_NAME = "metrics.csv"
INTEGER_COLUMNS = ("epoch", "step")


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a metrics.csv as numbers (epoch and step as ints), blank cells left out.

    A file that is not such a CSV raises ValueError.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        {
            key: int(value) if key in INTEGER_COLUMNS else float(value)
            for key, value in row.items()
            if value not in ("", None)
        }
        for row in rows
    ]


class MetricsHistory:
    """The rows of a run's metrics.csv, appended to and written at each epoch end."""

    def __init__(self, path: Path, through_epoch: int) -> None:
        """Continue ``path`` from its rows up to epoch ``through_epoch`` (the checkpoint's)."""
        self.path = Path(path)
        rows: list[dict[str, Any]] = []
        if self.path.exists():
            try:
                rows = read_metrics(self.path)
            except (OSError, UnicodeDecodeError, ValueError, csv.Error) as err:
                raise UsageError(
                    f"{self.path} is not readable ({err}); move it away and the run starts a "
                    "new one"
                ) from None
        self.rows = [row for row in rows if row.get("epoch", 0) <= through_epoch]
        if len(self.rows) < len(rows):
            self.write()

    def append(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """Add the row of ``epoch`` (1-based, completed) and rewrite the file."""
        self.rows.append({"epoch": epoch, "step": step, **metrics})
        self.write()

    def write(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)  # floats as repr: the numbers read back are the same
        atomic_write(self.path, lambda f: f.write(text.getvalue().encode()))
