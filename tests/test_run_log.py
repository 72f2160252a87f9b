"""Tests for utils.run_log: what rank 0 records of a run, and that other ranks record nothing."""

import json
import logging
from argparse import Namespace

import pytest
import torch

from utils.config import CONFIG_NAME
from utils.earlystopper import EarlyStopper
from utils.history import read_metrics
from utils.run_log import RunLog, epoch_line, scalar_tag
from utils.status import FINISHED, read_status

CPU = torch.device("cpu")


def options(**overrides) -> Namespace:
    base = {"resume": None, "wandb": False, "epochs": 3, "monitor": "val_acc", "lr": 0.1}
    return Namespace(**{**base, "fast_dev_run": 0, "channels_last": False, **overrides})


def test_a_new_run_writes_its_config_and_a_resumed_one_keeps_it(tmp_path):
    RunLog(tmp_path, options(), is_main=True, device=CPU)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["options"]["lr"] == 0.1 and config["environment"]["device"] == "cpu"
    RunLog(tmp_path, options(lr=0.5, resume="x.pth"), is_main=True, device=CPU)
    assert json.loads((tmp_path / CONFIG_NAME).read_text()) == config


def test_other_ranks_record_nothing(tmp_path):
    record = RunLog(tmp_path, options(), is_main=False, device=CPU)
    record.open(global_step=0, epoch=0, resumed=False)
    record.epoch(1, 10, {"val_acc": 0.5}, 0.5, improved=True)
    record.status(FINISHED, 1, 0.5)
    record.close()
    assert not list(tmp_path.iterdir())


def test_an_epoch_goes_to_the_log_tensorboard_and_metrics_csv(tmp_path, caplog):
    record = RunLog(tmp_path, options(), is_main=True, device=CPU)
    record.open(global_step=0, epoch=0, resumed=False)
    metrics = {"train_loss": 0.25, "val_acc": 0.75, "lr": 0.001, "epoch_time": 2.5}
    with caplog.at_level(logging.INFO, logger="utils.run_log"):
        record.epoch(1, 10, metrics, 0.75, improved=True)
    record.close()
    line = "epoch 1/3  train_loss 0.2500  val_acc 0.7500  lr 0.001  epoch_time 2.5s  *best*"
    assert line in caplog.text
    assert read_metrics(tmp_path / "metrics.csv")[0]["val_acc"] == 0.75
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_a_status_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    record = RunLog(tmp_path, options(), is_main=True, device=CPU)
    record.status(FINISHED, 3, float("-inf"))
    assert read_status(tmp_path)["best"] is None  # no epoch yet: no best
    (tmp_path / "status.json").unlink()
    (tmp_path / "status.json").mkdir()  # a directory where the file goes
    record.status(FINISHED, 3, 0.5)
    assert "could not write status.json" in caplog.text


def test_the_end_names_the_late_signal_the_early_stop_and_the_command(tmp_path, caplog):
    record = RunLog(tmp_path, options(), is_main=True, device=CPU)
    stopper = EarlyStopper(patience=1, mode="max")
    stopper.step(0.5)
    stopper.step(0.4)
    best = tmp_path / "Vanilla_best_ckpt.pth"
    best.write_bytes(b"")
    with caplog.at_level(logging.INFO, logger="utils.run_log"):
        record.end(2, stopper, "eval_vanilla.py", best)
    assert "SIGINT arrived as training ended" in caplog.text
    assert "early stop: val_acc has not improved for 1 epochs" in caplog.text
    assert f"eval_vanilla.py --model_path {best}" in caplog.text


@pytest.mark.parametrize(
    ("metric", "tag"), [("val_acc", "val/acc"), ("epoch_time", "epoch/time"), ("lr", "lr")]
)
def test_scalar_tags_split_at_the_first_underscore(metric, tag):
    assert scalar_tag(metric) == tag


def test_epoch_line_formats_each_kind_of_metric():
    metrics = {"val_dice": 0.98765, "lr": 3e-4, "epoch_time": 12.34, "train_skipped": 2}
    assert epoch_line(metrics) == "val_dice 0.9877  lr 0.0003  epoch_time 12.3s  train_skipped 2"
