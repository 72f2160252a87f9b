"""Tests for utils.loop.device: --gpu_devices parsing, device choice and moving batches."""

import subprocess
import sys
from collections import namedtuple

import pytest
import torch
from conftest import REPO

import utils.loop.device
from utils.errors import UsageError
from utils.loop.device import (
    channels_last,
    free_memory,
    move_to,
    parse_gpu_devices,
    pick_most_free,
    select_device,
)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("auto", "auto"),
        ("AUTO", "auto"),
        ("cpu", "cpu"),
        (" cpu ", "cpu"),
        ("0", [0]),
        ("0,1", [0, 1]),
        ("3, 1", [3, 1]),
    ],
)
def test_parse_gpu_devices(spec, expected):
    assert parse_gpu_devices(spec) == expected


@pytest.mark.parametrize("spec", ["x", "-1", "0,0", "", "0,", "1.5", "gpu", "0,-2"])
def test_parse_gpu_devices_refuses_bad_specs(spec):
    with pytest.raises(UsageError, match="--gpu_devices"):
        parse_gpu_devices(spec)


@pytest.mark.parametrize("free", [[5], [1, 9, 3], [9, 1, 3], [1, 3, 9], [100, 200, 150, 199]])
def test_pick_most_free_is_argmax(free):
    assert free[pick_most_free(free)] == max(free)
    assert pick_most_free(free) == free.index(max(free))


@pytest.mark.parametrize("free", [[7, 7], [1, 8, 8, 8], [3, 2, 3]])
def test_pick_most_free_tie_goes_to_lowest_index(free):
    assert pick_most_free(free) == free.index(max(free))


def test_select_cpu():
    assert select_device("cpu") == (torch.device("cpu"), [])


@pytest.fixture
def gpus(monkeypatch):
    """Stand in for a machine with the GPUs whose free memory (GiB) the test passes, so the
    device choice is tested the same on a machine with or without GPUs."""

    def machine(*free_gib: int) -> None:
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(free_gib))
        monkeypatch.setattr(
            utils.loop.device, "free_memory", lambda: [gib << 30 for gib in free_gib]
        )

    return machine


def test_select_auto_without_gpu_is_cpu(gpus):
    gpus()
    assert select_device("auto") == (torch.device("cpu"), [])


def test_select_auto_takes_the_gpu_with_the_most_free_memory(gpus):
    gpus(3, 41, 7)
    assert select_device("auto") == (torch.device("cuda", 1), [1])


def test_auto_with_one_gpu_takes_it_without_asking_its_memory(gpus, monkeypatch):
    gpus(5)
    monkeypatch.setattr(utils.loop.device, "free_memory", lambda: pytest.fail("asked"))
    assert select_device("auto") == (torch.device("cuda", 0), [0])


def test_free_memory_is_read_by_a_child_process():
    free = free_memory()
    assert len(free) == torch.cuda.device_count() and all(f > 0 for f in free)


def test_a_child_that_cannot_read_the_gpus_is_one_line(monkeypatch):
    monkeypatch.setattr(utils.loop.device, "FREE_MEMORY_SCRIPT", "raise SystemExit('no driver')")
    with pytest.raises(UsageError, match=r"^--gpu_devices auto: .*\(no driver\); name the GPU"):
        free_memory()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_auto_opens_no_cuda_context_on_the_gpus_it_leaves():
    """In a fresh process: after ``auto`` picked a GPU and used it, only that GPU has a
    context (cudaMemGetInfo in this process would have opened one on each)."""
    code = (
        "import torch; from utils.loop.device import select_device; "
        "device, _ = select_device('auto'); torch.zeros(1, device=device); "
        "print(sum(torch._C._cuda_hasPrimaryContext(i) for i in range(torch.cuda.device_count())))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert child.stdout.split()[-1] == "1"


def test_listed_gpus_are_taken_the_first_as_the_main_device(gpus):
    gpus(3, 41, 7)
    assert select_device("2,0") == (torch.device("cuda", 2), [2, 0])


@pytest.mark.parametrize("spec", ["0", "0,1", "1"])
def test_select_gpu_without_gpu_is_usage_error(gpus, spec):
    gpus()
    with pytest.raises(UsageError, match=r"GPU \d does not exist") as info:
        select_device(spec)
    assert "no CUDA GPU" in str(info.value)


def test_a_gpu_beyond_those_there_names_them(gpus):
    gpus(10, 10)
    with pytest.raises(UsageError, match=r"GPU 2 does not exist \(this machine has GPUs 0-1\)"):
        select_device("0,2")


def test_select_bad_spec_is_usage_error():
    with pytest.raises(UsageError):
        select_device("0,0")


def test_move_to_keeps_structure_types_and_non_tensors():
    device = torch.device("meta")  # a real move that needs no GPU
    batch = {
        "x": torch.ones(2, 3),
        "pair": (torch.zeros(1), [torch.arange(3), "label", 7]),
        "meta": None,
        "name": "b0",
    }
    moved = move_to(batch, device)
    assert type(moved) is dict and set(moved) == set(batch)
    assert moved["x"].device == device and moved["x"].shape == (2, 3)
    assert type(moved["pair"]) is tuple and type(moved["pair"][1]) is list
    assert moved["pair"][0].device == device
    assert moved["pair"][1][0].device == device
    assert moved["pair"][1][0].dtype == torch.int64
    assert moved["pair"][1][1:] == ["label", 7]
    assert moved["meta"] is None and moved["name"] == "b0"
    assert batch["x"].device.type == "cpu"  # the input is not modified


def test_move_to_plain_tensor_and_scalar():
    assert move_to(torch.ones(1), torch.device("meta")).device.type == "meta"
    assert move_to(3.5, torch.device("meta")) == 3.5


def test_move_to_namedtuple_batch():
    """default_collate keeps namedtuples, so a batch can be one; it must stay that type."""
    Batch = namedtuple("Batch", ["image", "label"])
    moved = move_to(Batch(torch.ones(2), torch.zeros(2)), torch.device("meta"))
    assert type(moved) is Batch
    assert moved.image.device.type == "meta" and moved.label.device.type == "meta"


def test_channels_last_converts_image_batches_only():
    batch = torch.randn(2, 3, 4, 5)
    converted = channels_last(batch)
    assert converted.is_contiguous(memory_format=torch.channels_last)
    assert not batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(converted, batch)
    flat = torch.randn(2, 3)
    assert channels_last(flat) is flat
