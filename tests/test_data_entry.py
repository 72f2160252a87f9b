"""Dataset selection, seeded splits, the resumable sampler, loaders and FashionMNIST loading."""

from argparse import Namespace

import pytest
import torch
from torch.utils.data import TensorDataset

from data.data_entry import DATASETS, build_datasets, build_loader
from data.fashion_mnist import build_fashion_mnist
from data.splits import split_indices, subsample_indices
from utils.errors import UsageError


def fashion_opt(root, **overrides):
    base = dict(
        data_type="FashionMNIST",
        data_dir=str(root),
        seed=0,
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
    data = build_fashion_mnist(fashion_opt(fashion_mnist_root))
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    assert set(data.train.indices).isdisjoint(data.val.indices)
    image, label = data.train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0 <= label < 10 and data.num_classes == 10 and len(data.class_names) == 10
    small = build_fashion_mnist(
        fashion_opt(fashion_mnist_root, train_val_sample_rate=0.01, test_sample_rate=0.1)
    )
    assert (len(small.train), len(small.val), len(small.test)) == (540, 60, 1000)
    again = build_fashion_mnist(
        fashion_opt(fashion_mnist_root, train_val_sample_rate=0.01, test_sample_rate=0.1)
    )
    assert small.val.indices == again.val.indices
