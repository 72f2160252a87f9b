"""Dataset selection, seeded splits, the two kinds of loader and FashionMNIST loading."""

from argparse import Namespace

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset, TensorDataset

from data.data_entry import (
    DATASETS,
    DatasetEntry,
    build_datasets,
    build_loader,
    first_batch,
    input_loader,
)
from data.fashion_mnist import MEAN, STD, build_fashion_mnist, image_to_input, load_input
from data.memory import MemoryLoader, TensorSplit
from data.sampler import ResumableSampler
from data.splits import DataInfo, DataSplits, split_indices, subsample_indices
from utils.errors import UsageError


def fashion_opt(root, **overrides):
    base = dict(
        data_type="FashionMNIST",
        data_dir=str(root),
        seed=0,
        split_seed=0,
        val_ratio=0.1,
        train_val_sample_rate=1.0,
        test_sample_rate=1.0,
    )
    return Namespace(**{**base, **overrides})


def test_unknown_data_type_lists_the_known_ones():
    with pytest.raises(UsageError) as err:
        build_datasets(Namespace(data_type="ImageNet"))
    assert "ImageNet" in str(err.value)
    assert all(name in str(err.value) for name in DATASETS)


def test_subsample_is_seeded_sorted_and_sized():
    picked = subsample_indices(1000, 0.05, seed=3)
    assert picked == subsample_indices(1000, 0.05, seed=3)
    assert picked != subsample_indices(1000, 0.05, seed=4)
    assert len(picked) == 50 and picked == sorted(set(picked))
    assert subsample_indices(10, 1.0, seed=0) == list(range(10))
    assert len(subsample_indices(10, 0.001, seed=0)) == 1


def test_split_is_a_seeded_partition():
    indices = list(range(100, 300))
    train, val = split_indices(indices, 0.25, seed=1)
    assert len(val) == 50 and len(train) == 150
    assert sorted(train + val) == indices
    assert (train, val) == split_indices(indices, 0.25, seed=1)
    assert val != split_indices(indices, 0.25, seed=2)[1]


def test_loader_batches_follow_the_sampler_without_touching_global_rng():
    data = TensorDataset(torch.arange(10).float(), torch.arange(10))
    opt = Namespace(batch_size=4, num_workers=0, seed=0)
    loader = build_loader(data, opt, shuffle=True, device=torch.device("cpu"))
    state = torch.get_rng_state()
    labels = torch.cat([y for _, y in loader]).tolist()
    assert torch.equal(state, torch.get_rng_state())
    loader.sampler.set_epoch(0)
    assert labels == list(loader.sampler)
    assert [len(y) for _, y in loader] == [4, 4, 2]


def test_a_tensor_split_gets_a_memory_loader_in_the_dataloader_order():
    images = torch.randint(0, 256, (10, 1, 3, 3), dtype=torch.uint8)
    split = TensorSplit(images, torch.arange(10), (0.5,), (0.2,))
    opt = Namespace(batch_size=4, num_workers=2, seed=3)  # no workers for a MemoryLoader
    memory = build_loader(split, opt, shuffle=True, device=torch.device("cpu"))
    per_sample = DataLoader(split, batch_size=4, sampler=ResumableSampler(10, seed=3))
    assert isinstance(memory, MemoryLoader) and memory.batch_size == 4 and len(memory) == 3
    for (x, y), (x_ref, y_ref) in zip(memory, per_sample, strict=True):
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


@pytest.mark.parametrize("in_memory", [True, False])
def test_loader_shards_for_ddp(in_memory):
    if in_memory:
        data = TensorSplit(
            torch.zeros(10, 1, 1, 1, dtype=torch.uint8), torch.arange(10), (0,), (1,)
        )
    else:
        data = TensorDataset(torch.zeros(10), torch.arange(10))
    opt = Namespace(batch_size=2, num_workers=0, seed=0)
    cpu = torch.device("cpu")

    def labels(**shard):
        loader = build_loader(data, opt, shuffle=True, device=cpu, num_replicas=4, **shard)
        return len(loader), torch.cat([y for _, y in loader]).tolist()

    unpadded = [labels(rank=r) for r in range(4)]
    assert [n for n, _ in unpadded] == [2, 2, 1, 1]
    assert sorted(i for _, part in unpadded for i in part) == list(range(10))
    padded = [labels(rank=r, pad=True) for r in range(4)]
    assert [(n, len(part)) for n, part in padded] == [(2, 3)] * 4
    assert set(i for _, part in padded for i in part) == set(range(10))


def test_fashion_mnist_missing_offline_is_one_clear_line(tmp_path, monkeypatch):
    # A closed local port as proxy makes the download fail at once on any machine.
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(UsageError) as err:
        build_fashion_mnist(fashion_opt(tmp_path))
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "FashionMNIST" / "raw") in message
    assert "train-images-idx3-ubyte.gz" in message


def test_fashion_mnist_splits(fashion_mnist_root):
    data = build_fashion_mnist(fashion_opt(fashion_mnist_root, in_memory=True))
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    assert isinstance(data.train, TensorSplit)
    image, label = data.train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0 <= label < 10 and data.num_outputs == 10 and len(data.class_names) == 10
    small = build_fashion_mnist(
        fashion_opt(fashion_mnist_root, train_val_sample_rate=0.01, test_sample_rate=0.1)
    )
    assert (len(small.train), len(small.val), len(small.test)) == (540, 60, 1000)
    assert isinstance(small.test, TensorSplit)  # options from before --in_memory: the default
    again = build_fashion_mnist(
        fashion_opt(fashion_mnist_root, train_val_sample_rate=0.01, test_sample_rate=0.1)
    )
    assert torch.equal(small.val.images, again.val.images)


def test_fashion_mnist_in_memory_holds_the_per_sample_splits(fashion_mnist_root):
    """The same samples in the same order: pixels and labels in full, values on a share."""
    memory = build_fashion_mnist(fashion_opt(fashion_mnist_root, in_memory=True))
    per_sample = build_fashion_mnist(fashion_opt(fashion_mnist_root, in_memory=False))
    assert isinstance(per_sample.train, Subset)
    assert set(per_sample.train.indices).isdisjoint(per_sample.val.indices)
    for name in ("train", "val", "test"):
        split, subset = getattr(memory, name), getattr(per_sample, name)
        pool = subset.dataset
        assert split.images.shape == (len(subset), 1, 28, 28)
        assert torch.equal(split.images[:, 0], pool.data[subset.indices])
        assert torch.equal(split.targets, pool.targets[subset.indices])
        assert (split.mean, split.std) == (MEAN, STD)

    opt = fashion_opt(fashion_mnist_root, train_val_sample_rate=0.05, test_sample_rate=0.1)
    memory = build_fashion_mnist(Namespace(**vars(opt), in_memory=True))
    per_sample = build_fashion_mnist(Namespace(**vars(opt), in_memory=False))
    loader_opt = Namespace(batch_size=500, num_workers=0, seed=0)
    cpu = torch.device("cpu")
    for name in ("train", "val", "test"):
        fast = build_loader(getattr(memory, name), loader_opt, shuffle=True, device=cpu)
        slow = build_loader(getattr(per_sample, name), loader_opt, shuffle=True, device=cpu)
        assert isinstance(fast, MemoryLoader) and isinstance(slow, DataLoader)
        assert len(fast) == len(slow)
        for (x, y), (x_ref, y_ref) in zip(fast, slow, strict=True):
            torch.testing.assert_close(x, x_ref, rtol=0, atol=1e-5)
            assert torch.equal(y, y_ref)


def test_fashion_mnist_image_files_become_the_dataset_inputs(fashion_mnist_root, tmp_path):
    """A test image saved as PNG and read back is the input both Dataset paths give."""
    opt = fashion_opt(fashion_mnist_root, test_sample_rate=0.001)
    memory = build_fashion_mnist(Namespace(**vars(opt), in_memory=True)).test
    per_sample = build_fashion_mnist(Namespace(**vars(opt), in_memory=False)).test
    memory_info = DataInfo((1, 28, 28), 10, ())
    for index in range(len(memory)):
        path = tmp_path / f"{index}.png"
        Image.fromarray(memory.images[index, 0].numpy()).save(path)
        loaded = load_input(path, opt, memory_info)
        assert torch.equal(loaded, per_sample[index][0])
        torch.testing.assert_close(loaded, memory[index][0], rtol=0, atol=1e-5)


def test_fashion_mnist_inputs_are_torchvisions_to_tensor_and_normalize():
    from torchvision import transforms

    pixels = torch.randint(0, 256, (28, 28), generator=torch.Generator().manual_seed(0))
    image = Image.fromarray(pixels.to(torch.uint8).numpy())
    reference = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    assert torch.equal(image_to_input(image), reference(image))


def test_fashion_mnist_takes_any_image_as_grey_28x28(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 50), (255, 255, 255)).save(path)
    loaded = load_input(path, Namespace(), DataInfo((1, 28, 28), 10, ()))
    assert loaded.shape == (1, 28, 28)
    white = (1 - MEAN[0]) / STD[0]  # a white photo is white everywhere, normalised
    torch.testing.assert_close(loaded, torch.full((1, 28, 28), white))


def test_data_info_is_plain_containers_and_round_trips(tmp_path):
    splits = DataSplits([], [], [], (3, 12, 16), 2, ["a", "b"], (0.5, 0.4, 0.3), (0.2,) * 3)
    state = splits.info.state_dict()
    assert state == {
        "input_shape": [3, 12, 16],
        "num_outputs": 2,
        "class_names": ["a", "b"],
        "mean": [0.5, 0.4, 0.3],
        "std": [0.2, 0.2, 0.2],
    }
    torch.save({"data": state}, tmp_path / "ckpt.pth")
    loaded = torch.load(tmp_path / "ckpt.pth", weights_only=True)["data"]
    assert DataInfo.from_state_dict(loaded) == splits.info


def test_data_info_of_a_checkpoint_from_before_statistics_and_num_outputs_reads():
    """Such a checkpoint names its classes ``num_classes`` and holds no mean or std."""
    old = {"input_shape": [1, 28, 28], "num_classes": 10, "class_names": list("abcdefghij")}
    assert DataInfo.from_state_dict(old) == DataInfo((1, 28, 28), 10, tuple("abcdefghij"))


def test_the_first_batch_is_the_first_samples_as_a_loader_gives_them():
    split = TensorSplit(
        torch.arange(5 * 4, dtype=torch.uint8).view(5, 1, 2, 2), torch.arange(5), (0.5,), (0.2,)
    )
    inputs, targets = first_batch(split, 3, torch.device("cpu"))
    assert torch.equal(targets, torch.arange(3))
    assert torch.equal(inputs, torch.stack([split[i][0] for i in range(3)]))
    assert first_batch(split, 10, torch.device("cpu"))[0].shape == (5, 1, 2, 2)


def test_data_that_reads_no_image_files_refuses_input_in_one_line(monkeypatch):
    monkeypatch.setitem(DATASETS, "Numbers", DatasetEntry(build=lambda opt: None))
    with pytest.raises(UsageError, match="--data_type Numbers reads no image files"):
        input_loader(Namespace(data_type="Numbers"), DataInfo((3,), 1))
