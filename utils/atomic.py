"""Atomic file writes: readers see the old file or the new one, never a half-written one."""

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    The temp file lives in the same directory so ``os.replace`` is a rename on one file system;
    a crash at any moment leaves either the previous file or the complete new one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:  # plain open: the file gets the usual umask permissions
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_partial_writes(directory: str | Path) -> list[Path]:
    """Delete the temp files that writes killed before their rename left in ``directory``."""
    leftovers = sorted(Path(directory).glob(".*.tmp"))
    for path in leftovers:
        path.unlink(missing_ok=True)
    return leftovers
