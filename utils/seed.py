"""Seeding of python, numpy and torch, DataLoader workers included, and optional determinism."""

import os
import random

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
    """DataLoader ``worker_init_fn``: give numpy and python in each worker the torch-derived seed.

    torch seeds each worker itself, but numpy/random would otherwise repeat across workers.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
