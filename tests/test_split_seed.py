"""``--split_seed`` draws the val/test split, the folds and the subsampling; ``--seed`` draws
training alone, so a sweep over seeds trains on one split. A run recorded before the option
keeps the split its ``--seed`` drew."""

import argparse
import json

import pytest
import torch

from data.data_entry import build_datasets
from tests.test_contracts import batches, dataset_options
from tests.toy_task import TOY_ARGS, build_toy_parser
from utils.experiments.config_file import ConfigFileParser
from utils.loop.distributed import DistInfo
from utils.loop.run_state import STATE_KEYS, read_resume
from utils.records.checkpoint import save_checkpoint
from utils.records.config import with_stand_ins

BUILT_IN = ["FashionMNIST", "ImageFolder", "Carvana", "SegFolder"]


def held_out(opt, seed: int, split_seed: int):
    """The val and test samples under ``opt`` with these seeds, in order."""
    opt = argparse.Namespace(**{**vars(opt), "seed": seed, "split_seed": split_seed})
    data = build_datasets(opt)
    return [batches(split, opt, shuffle=False) for split in (data.val, data.test)]


def same(a, b) -> bool:
    flat_a = [t for split in a for batch in split for t in batch]
    flat_b = [t for split in b for batch in split for t in batch]
    return len(flat_a) == len(flat_b) and all(
        x.shape == y.shape and torch.equal(x, y) for x, y in zip(flat_a, flat_b, strict=True)
    )


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_seed_leaves_the_split_and_the_split_seed_moves_it(name, tmp_path):
    opt = dataset_options(name, tmp_path)
    base = held_out(opt, seed=1, split_seed=0)
    assert same(base, held_out(opt, seed=2, split_seed=0))
    moved = [held_out(opt, seed=1, split_seed=s) for s in (1, 2, 3)]
    assert not all(same(base, other) for other in moved)


def test_a_run_from_before_the_option_keeps_the_split_its_seed_drew(tmp_path):
    old = {"seed": 7, "lr": 0.1}
    assert with_stand_ins(old) == {"seed": 7, "split_seed": 7, "lr": 0.1}
    assert with_stand_ins({"seed": 7, "split_seed": 3})["split_seed"] == 3
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"options": old}))
    parser = ConfigFileParser()
    for option, default in (("--seed", 42), ("--split_seed", 42), ("--lr", 1.0)):
        parser.add_argument(option, type=type(default), default=default)
    assert parser.parse_args(["--config", str(config)]).split_seed == 7


def test_resuming_a_run_from_before_the_option_keeps_its_split(tmp_path):
    """A checkpoint whose options lack ``split_seed`` resumes with its ``--seed`` as the split
    seed (otherwise the default would be a change of split, refused mid-run)."""
    opt = build_toy_parser().parse_args([*TOY_ARGS, "--output_dir", str(tmp_path), "--seed", "5"])
    recorded = {k: v for k, v in vars(opt).items() if k != "split_seed"}
    path = tmp_path / "old_last_ckpt.pth"
    state = {key: {} for key in STATE_KEYS} | {"config": recorded, "epoch": 1, "batch_in_epoch": 3}
    save_checkpoint(path, state)
    opt.resume = str(path)
    assert opt.split_seed == 42 and read_resume(opt, DistInfo()).changes == []
    assert opt.split_seed == 5
