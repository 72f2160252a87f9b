"""TensorSplit and MemoryLoader: the same samples, order and resumption as the DataLoader path."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import Normalize

from data.memory import MemoryLoader, TensorSplit
from data.sampler import ResumableSampler

MEAN, STD = (0.2, 0.5, 0.7), (0.3, 0.25, 0.1)
CPU = torch.device("cpu")


def make_split(n: int = 10) -> TensorSplit:
    """Random 3-channel uint8 images whose target is their index, so orders can be read off."""
    images = torch.randint(
        0, 256, (n, 3, 5, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    return TensorSplit(images, torch.arange(n), MEAN, STD)


class PerSample(Dataset):
    """What torchvision's per-sample path computes: ToTensor's x / 255, then Normalize."""

    def __init__(self, split: TensorSplit) -> None:
        self.split = split
        self.normalize = Normalize(MEAN, STD)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.split.images[index].float().div(255)
        return self.normalize(image), int(self.split.targets[index])

    def __len__(self) -> int:
        return len(self.split)


def test_batches_equal_the_per_sample_dataloader_for_the_same_sampler():
    split = make_split(23)
    memory = MemoryLoader(split, 4, ResumableSampler(23, seed=7), CPU)
    reference = DataLoader(PerSample(split), batch_size=4, sampler=ResumableSampler(23, seed=7))
    for epoch in (0, 1):
        memory.sampler.set_epoch(epoch)
        reference.sampler.set_epoch(epoch)
        batches = list(memory)
        expected = list(reference)
        assert len(batches) == len(expected) == 6
        for (x, y), (x_ref, y_ref) in zip(batches, expected, strict=True):
            assert x.dtype == torch.float32 and x.shape == x_ref.shape
            torch.testing.assert_close(x, x_ref, rtol=0, atol=1e-5)
            assert torch.equal(y, y_ref) and y.dtype == torch.int64


def test_samples_equal_their_batched_rows():
    split = make_split(6)
    loader = MemoryLoader(split, 6, ResumableSampler(6, seed=0, shuffle=False), CPU)
    (x, y), *_ = loader
    for i in range(6):
        image, label = split[i]
        assert torch.equal(image, x[i]) and label == y[i].item()
    # the mean and std are the per-channel statistics the values were normalised with
    pixels = split.images.float() / 255
    restored = x * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
    torch.testing.assert_close(restored, pixels, rtol=0, atol=1e-5)


def test_order_follows_the_sampler_across_epochs():
    loader = MemoryLoader(make_split(10), 3, ResumableSampler(10, seed=2), CPU)
    orders = []
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        orders.append(torch.cat([y for _, y in loader]).tolist())
        assert orders[-1] == list(loader.sampler)
        assert sorted(orders[-1]) == list(range(10))
    assert orders[0] != orders[1] != orders[2]


def test_set_epoch_start_skips_samples_and_len_counts_the_short_last_batch():
    loader = MemoryLoader(make_split(10), 4, ResumableSampler(10, seed=2), CPU)
    loader.sampler.set_epoch(1)
    whole = [y.tolist() for _, y in loader]
    assert len(loader) == 3 and [len(b) for b in whole] == [4, 4, 2]
    loader.sampler.set_epoch(1, start=4)
    rest = [y.tolist() for _, y in loader]
    assert rest == whole[1:] and len(loader) == 2
    loader.sampler.set_epoch(1, start=5)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 1]
    loader.sampler.set_epoch(1, start=10)
    assert len(loader) == 0 and list(loader) == []


def test_exposes_what_the_trainer_reads_and_leaves_the_global_rng_alone():
    split = make_split(10)
    sampler = ResumableSampler(10, seed=2)
    loader = MemoryLoader(split, 4, sampler, CPU)
    assert loader.dataset is split and loader.sampler is sampler and loader.batch_size == 4
    state = torch.get_rng_state()
    for x, y in loader:
        assert x.device == CPU and y.device == CPU
    assert torch.equal(state, torch.get_rng_state())


def test_shards_of_a_split_cover_it_once():
    split = make_split(11)
    seen = []
    for rank in range(3):
        sampler = ResumableSampler(11, seed=4, num_replicas=3, rank=rank)
        loader = MemoryLoader(split, 2, sampler, CPU)
        seen += torch.cat([y for _, y in loader]).tolist()
    assert sorted(seen) == list(range(11))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_batches_are_made_on_the_gpu_and_equal_the_cpu_ones():
    split = make_split(10)
    gpu = MemoryLoader(split, 4, ResumableSampler(10, seed=1), torch.device("cuda"))
    cpu = MemoryLoader(split, 4, ResumableSampler(10, seed=1), CPU)
    assert gpu.images.is_cuda
    for (x, y), (x_cpu, y_cpu) in zip(gpu, cpu, strict=True):
        assert x.is_cuda and y.is_cuda
        torch.testing.assert_close(x.cpu(), x_cpu, rtol=0, atol=1e-6)
        assert torch.equal(y.cpu(), y_cpu)


@pytest.mark.parametrize(
    ("images", "targets", "mean", "message"),
    [
        (torch.zeros(4, 1, 2, 2), torch.arange(4), MEAN[:1], "uint8"),
        (torch.zeros(4, 2, 2, dtype=torch.uint8), torch.arange(4), MEAN[:1], "uint8"),
        (torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(3), MEAN[:1], "targets"),
        (torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4), MEAN, "per channel"),
    ],
)
def test_malformed_splits_are_refused(images, targets, mean, message):
    with pytest.raises(ValueError, match=message):
        TensorSplit(images, targets, mean, std=(0.5,) * len(mean))
