"""A run's status file: running, finished, stopped early, interrupted, crashed or stopped by a
non-finite loss; the trainer writes it when training starts and when it ends.

``status.json`` in the run dir, written atomically by rank 0::

    {"state": "finished", "pid": 4242, "host": "gpu-07", "started": "2026-11-21T19:48:15",
     "updated": "2026-11-21T20:01:02", "epoch": 10, "epochs": 10, "monitor": "val_acc",
     "best": 0.898, "error": null}

``started`` is when the run first started (kept across resumes), ``updated`` when this file
was written, ``epoch`` the epochs completed, ``best`` the best ``monitor`` value so far (null
before the first epoch) and ``error`` one line about how the run ended early. A file that
says running whose process is gone from this host belongs to a run that was killed
(SIGKILL, power loss, out of memory): :func:`current_state` says so.
"""

import json
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from utils.atomic import atomic_write
from utils.errors import NonFiniteLossError
from utils.signals import StopRequested

STATUS_NAME = "status.json"

RUNNING = "running"
FINISHED = "finished"
STOPPED_EARLY = "stopped early"
INTERRUPTED = "interrupted"
CRASHED = "crashed"
NONFINITE = "non-finite loss"
KILLED = "killed"  # never written: a running status whose process is gone
DONE = (FINISHED, STOPPED_EARLY)  # states of a run that has nothing left to train


class StatusError(ValueError):
    """A status file that cannot be read; the message says why."""


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def read_status(run_dir: Path) -> dict[str, Any] | None:
    """The run's status, or None if it has no status file; :class:`StatusError` if broken."""
    path = Path(run_dir) / STATUS_NAME
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StatusError(f"{STATUS_NAME} is not readable JSON ({err})") from None
    if not isinstance(status, dict) or not isinstance(status.get("state"), str):
        raise StatusError(f"{STATUS_NAME} has no 'state'")
    return status


def write_status(run_dir: Path, state: str, **details: Any) -> None:
    """Write ``state`` and ``details`` with this process, its host and the time, atomically."""
    try:
        previous = read_status(run_dir) or {}
    except StatusError:
        previous = {}
    stamp = now()
    status = {
        "state": state,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": previous.get("started", stamp),
        "updated": stamp,
        **details,
    }
    text = json.dumps(status, indent=2) + "\n"
    atomic_write(Path(run_dir) / STATUS_NAME, lambda f: f.write(text.encode()))


def ending(exc: BaseException) -> tuple[str, str]:
    """The state and one-line error of a run that ``exc`` ended."""
    if isinstance(exc, NonFiniteLossError):
        return NONFINITE, str(exc)
    if isinstance(exc, StopRequested):
        return INTERRUPTED, str(exc)  # "SIGTERM received"
    if isinstance(exc, KeyboardInterrupt):  # a second Ctrl-C
        return INTERRUPTED, "KeyboardInterrupt"
    summary = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return CRASHED, " ".join(summary.split())


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def current_state(status: dict[str, Any]) -> str:
    """The state a status file describes now: a running run whose process is gone from this
    host was killed; one on another host cannot be checked and stays running."""
    state = status["state"]
    if state != RUNNING or status.get("host") != socket.gethostname():
        return state
    pid = status.get("pid")
    return state if isinstance(pid, int) and process_alive(pid) else KILLED
