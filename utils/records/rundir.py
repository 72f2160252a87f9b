"""Timestamped run directories (one new directory per run, never reused) and a clean mkdir -p."""

import contextlib
import errno
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from utils.errors import UsageError


def timestamp(now: datetime | None = None) -> str:
    """Sortable local time stamp such as ``20261121-194424``."""
    return (now or datetime.now()).strftime("%Y%m%d-%H%M%S")


@contextlib.contextmanager
def removed_on_failure(path: str | Path) -> Iterator[None]:
    """Directories on the way to ``path`` that the block creates are removed if it raises.

    Only the levels missing on entry are candidates, deepest first, and only while they are
    empty, so a failed mkdir or download leaves no trace and never touches earlier content.
    """
    path = Path(path)
    missing = [level for level in (path, *path.parents) if not level.exists()]
    try:
        yield
    except BaseException:
        for level in missing:
            try:
                level.rmdir()
            except OSError as err:
                if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    break  # it holds what the block made: keep it and its parents
                # otherwise never created (or a name too long): go on with its parent
        raise


def make_dirs(path: str | Path) -> None:
    """``mkdir -p path`` that leaves nothing behind when it fails (a name too long, a file in
    the way, no permission)."""
    with removed_on_failure(path):
        Path(path).mkdir(parents=True, exist_ok=True)


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
