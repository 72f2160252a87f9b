"""Timestamped run directories: one new directory per run, never reused."""

from datetime import datetime
from pathlib import Path

from utils.errors import UsageError


def timestamp(now: datetime | None = None) -> str:
    """Sortable local time stamp such as ``20261121-194424``."""
    return (now or datetime.now()).strftime("%Y%m%d-%H%M%S")


def make_run_dir(output_dir: str | Path, now: datetime | None = None) -> Path:
    """Create and return ``output_dir/<timestamp>``, adding ``-1``, ``-2``... if it exists.

    ``mkdir`` without ``exist_ok`` is atomic, so two runs started in the same second still get
    different directories and neither can write into the other's.
    """
    output_dir = Path(output_dir)
    stamp = timestamp(now)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            candidate = output_dir / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as err:
        raise UsageError(
            f"--output_dir {output_dir}: cannot create a run directory there ({err.strerror}); "
            "expected a writable directory"
        ) from None
    raise UsageError(f"--output_dir {output_dir}: 1000 runs already started at {stamp}")
