"""Seeding and snapshots of every RNG a run draws from, so a resumed run draws the same numbers.

Covers python's ``random``, numpy's global RNG, torch's CPU generator and every CUDA device's.
"""

import atexit
import multiprocessing
import os
import random
import signal
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed every RNG a run draws from; ``deterministic`` also forbids nondeterministic kernels.

    Determinism costs speed (no cuDNN autotuning, slower deterministic kernels), so it is opt-in.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA devices too
    if deterministic:
        # cuBLAS needs a fixed workspace to be reproducible on CUDA >= 10.2.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and python per worker; leave signals to the main.

    torch seeds each worker itself, but numpy/random would otherwise repeat across workers.
    Ctrl-C and SLURM's SIGTERM reach the whole process group; workers ignore them so that the
    main process can finish its step and checkpoint while they keep serving batches.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@atexit.register  # after multiprocessing registered its own exit handler, so it runs first
def kill_workers_at_exit() -> None:
    """Kill the worker processes still alive when the interpreter exits.

    Loaders that outlive training (a trainer kept in a global, a test's traceback) keep their
    persistent workers, and multiprocessing's exit handler SIGTERMs them, which they ignore
    (:func:`seed_worker`), then waits for them forever.
    """
    workers = [child for child in multiprocessing.active_children() if child.daemon]
    if workers and hasattr(signal, "SIGCHLD"):
        # torch's SIGCHLD handler would report each of these deaths as a worker failure.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for worker in workers:
        worker.kill()


def rng_state() -> dict[str, Any]:
    """The state of every global RNG as tensors and plain values (``weights_only``-loadable)."""
    version, internal, gauss = random.getstate()
    _, key, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": {"version": version, "state": list(internal), "gauss": gauss},
        "numpy": {
            "key": torch.from_numpy(key.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured; CUDA states only when there are GPUs."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
    numpy = state["numpy"]
    key = numpy["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, numpy["pos"], numpy["has_gauss"], numpy["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
