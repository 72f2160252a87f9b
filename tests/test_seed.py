"""Tests for utils.seed: reproducible draws and the determinism switch."""

import os
import random
import signal

import numpy as np
import pytest
import torch

from utils.records.checkpoint import load_checkpoint, save_checkpoint
from utils.seed import rng_state, seed_everything, seed_worker, set_rng_state


@pytest.fixture(autouse=True)
def restore_global_state(monkeypatch):
    """seed_everything flips process-wide switches; put them back after each test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    cudnn_deterministic = torch.backends.cudnn.deterministic
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = cudnn_deterministic


@pytest.fixture(autouse=True)
def restore_signal_handlers():
    """seed_worker makes a worker ignore Ctrl-C; the test process must get it back."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


def _draws():
    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        torch.rand(3).tolist(),
        torch.randint(0, 1000, (3,)).tolist(),
    )


def test_same_seed_repeats_all_draws():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    assert _draws() == first


def test_different_seeds_differ():
    seed_everything(1)
    first = _draws()
    seed_everything(2)
    second = _draws()
    assert all(a != b for a, b in zip(first, second, strict=True))


def test_draws_match_reference_generators():
    seed_everything(7)
    got = _draws()
    ref_random = random.Random(7)
    ref_numpy = np.random.RandomState(7)
    ref_torch = torch.Generator().manual_seed(7)
    assert got[0] == [ref_random.random() for _ in range(3)]
    assert got[1] == ref_numpy.rand(3).tolist()
    assert got[2] == torch.rand(3, generator=ref_torch).tolist()


def test_deterministic_switch():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark is True


def test_existing_cublas_setting_is_kept(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    seed_everything(0, deterministic=True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_seed_worker_seeds_numpy_and_random_from_torch_initial_seed():
    big_seed = 2**40 + 2**31 + 12345  # too large for numpy: must be reduced mod 2**32
    torch.manual_seed(big_seed)
    assert torch.initial_seed() == big_seed
    seed_worker(3)
    expected_seed = big_seed % 2**32
    assert np.random.rand(4).tolist() == np.random.RandomState(expected_seed).rand(4).tolist()
    assert random.random() == random.Random(expected_seed).random()


def test_seed_worker_differs_per_torch_seed():
    torch.manual_seed(10)
    seed_worker(0)
    first = np.random.rand()
    torch.manual_seed(11)
    seed_worker(0)
    assert np.random.rand() != first


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    seed_everything(5)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    save_checkpoint(tmp_path / "c.pth", {"model": {}, "rng": rng_state()})
    expected = (*_draws(), [np.random.randn()])
    seed_everything(99)  # scramble every RNG
    set_rng_state(load_checkpoint(tmp_path / "c.pth")["rng"])
    assert (*_draws(), [np.random.randn()]) == expected


def test_worker_init_leaves_stop_signals_to_the_main_process():
    seed_worker(0)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
