"""Timestamped run directories (one new directory per run, never reused) and a clean mkdir -p."""

from datetime import datetime
from pathlib import Path

from utils.errors import UsageError


def timestamp(now: datetime | None = None) -> str:
    """Sortable local time stamp such as ``20261121-194424``."""
    return (now or datetime.now()).strftime("%Y%m%d-%H%M%S")


def make_dirs(path: str | Path) -> None:
    """``mkdir -p path`` that leaves nothing behind when it fails.

    The parents it created are removed again before the OSError propagates, so a bad path
    (a name too long, a file in the way, no permission) does not leave empty directories.
    """
    path = Path(path)
    missing = []
    for level in (path, *path.parents):
        if level.is_dir():
            break
        missing.append(level)
    created: list[Path] = []
    try:
        for level in reversed(missing):
            try:
                level.mkdir()
            except FileExistsError:
                if not level.is_dir():  # a file in the way; a directory means another process
                    raise
                continue
            created.append(level)
    except OSError:
        for level in reversed(created):
            level.rmdir()
        raise


def make_run_dir(output_dir: str | Path, now: datetime | None = None) -> Path:
    """Create and return ``output_dir/<timestamp>``, adding ``-1``, ``-2``... if it exists.

    ``mkdir`` without ``exist_ok`` is atomic, so two runs started in the same second still get
    different directories and neither can write into the other's.
    """
    output_dir = Path(output_dir)
    stamp = timestamp(now)
    try:
        make_dirs(output_dir)
        for n in range(1000):
            candidate = output_dir / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                candidate.mkdir()
                return candidate
            except FileExistsError:
                continue
    except OSError as err:
        raise UsageError(
            f"--output_dir {output_dir}: cannot create a run directory there ({err.strerror}: "
            f"{err.filename}); expected a writable directory"
        ) from None
    raise UsageError(f"--output_dir {output_dir}: 1000 runs already started at {stamp}")
