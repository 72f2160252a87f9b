"""Shared fixtures: the real data (skipped with a reason when absent) and running scripts."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data.fashion_mnist import FILES

REPO = Path(__file__).resolve().parent.parent
DATA_ENV = "TEMPLATE_DATA_DIR"


def share_the_cores() -> None:
    """Under pytest-xdist, give each worker its share of the cores, for its own torch ops and,
    through ``OMP_NUM_THREADS``, for the scripts it starts: N workers that each spin a thread
    per core make every op wait for a core (a step several times slower), and tests time out.
    A thread count the user set in the environment is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (cores or 1) // workers)))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


share_the_cores()


def real_data_dir() -> Path:
    """The real datasets: ``$TEMPLATE_DATA_DIR`` or ``../shared/data`` beside the project."""
    return Path(os.environ.get(DATA_ENV, REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def fashion_mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir laid out as torchvision expects, linking the real FashionMNIST files.

    The shared copy may be read-only and torchvision extracts beside the archives, so the
    archives are linked into a fresh directory.
    """
    source = real_data_dir() / "fashion-mnist"
    missing = [name for name in FILES if not (source / name).is_file()]
    if missing:
        pytest.skip(f"real FashionMNIST not in {source} (missing {missing[0]}); set {DATA_ENV}")
    root = tmp_path_factory.mktemp("data")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        (raw / name).symlink_to(source / name)
    return root


def run_script(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repo root as a user would; output captured as text."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def start_script(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``python <args>`` from the repo root in its own process group, output to one pipe.

    Its own group lets a test signal the script and its DataLoader workers together, as a
    terminal's Ctrl-C or a cluster scheduler does.
    """
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
    )


def end_group(process: subprocess.Popen) -> None:
    """SIGKILL a script started by :func:`start_script` and every process of its group (a
    torchrun launcher's workers, DataLoader workers), then reap it: ``process.kill()`` ends
    the launcher alone, and a worker left behind keeps a core busy after the test."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def read_until(process: subprocess.Popen, text: str) -> list[str]:
    """Lines the process printed up to and including the first one containing ``text``."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return lines
    process.wait()
    raise AssertionError(f"exited {process.returncode} before printing {text!r}:\n{''.join(lines)}")
