"""The collectives of utils/loop/distributed.py in a one-process gloo group: each returns only once
gloo's threads have let go of its tensors (else, before torch 2.8, a run could hang forever
in ``destroy_process_group``); the 2-rank behaviour is covered by tests/test_ddp.py."""

import time

import pytest
import torch
import torch.distributed as dist

from utils.loop.distributed import DistInfo, max_over_ranks, settled, sum_over_ranks


@pytest.fixture
def one_rank_group():
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_sums_return_with_their_tensor_settled(one_rank_group):
    """A plain all-reduce returns while gloo's thread still holds the tensor in 10-17% of
    calls (measured on torch 2.6 and 2.14); a sum here, never."""
    for i in range(300):
        tensor = torch.tensor([float(i), 1.0])
        assert sum_over_ranks(tensor) is tensor
        assert tensor._use_count() == 1
        assert tensor.tolist() == [float(i), 1.0]


def test_settled_gives_up_on_a_tensor_held_elsewhere():
    """A tensor that something else keeps (here autograd, to compute a gradient) is waited
    for ``timeout`` seconds at most."""
    weight = torch.zeros(2, requires_grad=True)
    product = (weight * weight).sum()  # saves ``weight`` for the backward
    assert weight._use_count() > 1
    start = time.monotonic()
    settled(weight, timeout=0.05)
    assert time.monotonic() - start < 5
    assert product.requires_grad


def test_without_a_group_the_values_pass_through():
    assert max_over_ranks([3, 1], DistInfo(), torch.device("cpu")) == [3, 1]
