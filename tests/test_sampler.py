"""ResumableSampler: seeded epoch orders, mid-epoch resumption and DDP sharding."""

import math

import pytest
import torch

from data.sampler import ResumableSampler


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The order the single-process sampler has always produced: a randperm of seed + epoch."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


def shards(n: int, world: int, pad: bool, epoch: int = 0, shuffle: bool = True) -> list[list[int]]:
    """Every rank's indices of one epoch."""
    out = []
    for rank in range(world):
        sampler = ResumableSampler(
            n, seed=3, shuffle=shuffle, num_replicas=world, rank=rank, pad=pad
        )
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def test_order_depends_on_seed_and_epoch_and_resumes_mid_epoch():
    sampler = ResumableSampler(20, seed=5)
    sampler.set_epoch(0)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(epoch0) == list(range(20)) and epoch0 != epoch1
    sampler.set_epoch(0, start=7)
    assert list(sampler) == epoch0[7:] and len(sampler) == 13
    assert list(ResumableSampler(5, seed=5, shuffle=False)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("pad", [False, True])
def test_one_replica_is_the_unsharded_order(pad):
    sampler = ResumableSampler(37, seed=9, pad=pad)
    for epoch, start in [(0, 0), (2, 0), (2, 11), (3, 37), (3, 40)]:
        sampler.set_epoch(epoch, start=start)
        assert list(sampler) == epoch_order(37, 9, epoch)[start:]
        assert len(sampler) == max(0, 37 - start)
        assert sampler.indices().tolist() == list(sampler)


@pytest.mark.parametrize(("n", "world"), [(10, 2), (10, 3), (11, 4), (3, 5), (1, 2), (0, 3)])
def test_unpadded_shards_split_the_epoch_exactly(n, world):
    parts = shards(n, world, pad=False, epoch=1)
    assert sorted(i for part in parts for i in part) == list(range(n))
    sizes = [len(part) for part in parts]
    assert max(sizes) - min(sizes) <= 1
    # rank r holds positions r, r + W, ... of the epoch order: interleaving restores it
    order = epoch_order(n, 3, 1)
    assert all(part == order[rank::world] for rank, part in enumerate(parts))


@pytest.mark.parametrize(("n", "world"), [(10, 3), (11, 4), (12, 4), (3, 5), (1, 4)])
def test_padded_shards_are_equal_and_wrap_around_the_start(n, world):
    parts = shards(n, world, pad=True, epoch=2)
    size = math.ceil(n / world)
    assert [len(part) for part in parts] == [size] * world
    order = epoch_order(n, 3, 2)
    extended = (order * world)[: size * world]  # the order, then again from its start
    assert all(part == extended[rank::world] for rank, part in enumerate(parts))
    assert set(i for part in parts for i in part) == set(range(n))


def test_shards_in_order_without_shuffle():
    assert shards(7, 3, pad=False, shuffle=False) == [[0, 3, 6], [1, 4], [2, 5]]
    assert shards(7, 3, pad=True, shuffle=False) == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]


def test_start_counts_samples_of_the_ranks_shard():
    sampler = ResumableSampler(25, seed=1, num_replicas=3, rank=2, pad=True)
    sampler.set_epoch(4)
    whole = list(sampler)
    assert len(whole) == 9
    sampler.set_epoch(4, start=5)
    assert list(sampler) == whole[5:] and len(sampler) == 4
    sampler.set_epoch(4, start=9)
    assert list(sampler) == [] and len(sampler) == 0


def test_iterating_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    list(ResumableSampler(50, seed=0, num_replicas=2, rank=1, pad=True))
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize(("world", "rank"), [(0, 0), (2, 2), (2, -1)])
def test_bad_replica_settings_are_refused(world, rank):
    with pytest.raises(ValueError, match=r"num_replicas|rank"):
        ResumableSampler(10, seed=0, num_replicas=world, rank=rank)
