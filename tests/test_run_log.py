"""Tests for utils.loop.run_log: what rank 0 records of a run, and that other ranks record
nothing."""

import json
import logging
from argparse import Namespace

import pytest
import torch
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.event_pb2 import SessionLog

from data.splits import DataSplits
from utils.loop.distributed import DistInfo
from utils.loop.earlystopper import EarlyStopper
from utils.loop.logger import setup_logging
from utils.loop.run_log import RunLog, describe_groups, epoch_line, scalar_tag
from utils.records.config import CONFIG_NAME
from utils.records.history import read_metrics
from utils.records.status import FINISHED, read_status

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
    with caplog.at_level(logging.INFO, logger="utils.loop.run_log"):
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
    with caplog.at_level(logging.INFO, logger="utils.loop.run_log"):
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


def test_the_start_says_where_on_what_and_with_how_many_processes(tmp_path, caplog):
    record = RunLog(tmp_path, options(data_type="Toy", model_type="MLP"), is_main=True, device=CPU)
    data = DataSplits([0] * 8, [0] * 2, [0] * 3, (1, 4, 4), 3, ["a", "b", "c"])
    precision = (("off", "as asked"), False, None)
    model = torch.nn.Linear(2, 2)
    with caplog.at_level(logging.INFO):
        record.start([0, 1], DistInfo(rank=0, world_size=2), precision, data.summary(), model)
    assert f"run dir {tmp_path}" in caplog.text
    assert "device cuda:0, cuda:1 (rank 0 of 2 DDP processes)" in caplog.text
    assert "data Toy: train 8, val 2, test 3 samples; classes a, b, c" in caplog.text
    assert "amp off (as asked); channels_last off" in caplog.text


def test_data_without_classes_is_described_by_its_outputs(tmp_path, caplog):
    """A regression's data has targets, not classes: the log counts its outputs."""
    record = RunLog(tmp_path, options(data_type="Toy", model_type="MLP"), is_main=True, device=CPU)
    data = DataSplits([0] * 8, [0] * 2, [0] * 3, (5,), 2)
    with caplog.at_level(logging.INFO):
        model = torch.nn.Linear(5, 2)
        record.start([], DistInfo(), (("off", "as asked"), False, None), data.summary(), model)
    assert "data Toy: train 8, val 2, test 3 samples; 2 outputs" in caplog.text
    assert "classes" not in caplog.text.replace(str(tmp_path), "")


def test_the_terminal_gets_one_model_line_and_the_log_file_its_tree(tmp_path, capsys):
    """What the run decided is in train.log, config.json and on the terminal alike, lines
    logged before the run dir existed included; the module tree is for the log file."""
    setup_logging()  # as the trainer does first
    logging.getLogger("data").info("--img_size not given: 4x4, the size of a.png")
    record = RunLog(tmp_path, options(data_type="Toy", model_type="MLP"), is_main=True, device=CPU)
    groups = {"train": ["car1", "car2"], "val": ["car3"], "test": ["car4"]}
    data = DataSplits([0] * 8, [0] * 2, [0] * 3, (1, 4, 4), 3, ["a", "b", "c"], groups=groups)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    record.start([], DistInfo(), (("off", "as asked"), False, None), data.summary(), model)
    terminal, log_file = capsys.readouterr().out, (tmp_path / "train.log").read_text()
    for text in (terminal, log_file):
        assert "--img_size not given: 4x4" in text
        assert "model MLP: 51 parameters (51 trainable), input 1x4x4" in text
        assert "groups, each whole in one split: train car1, car2; val car3; test car4" in text
    assert "Linear(in_features=16" in log_file and "Linear(" not in terminal
    decided = json.loads((tmp_path / CONFIG_NAME).read_text())["decided"]
    assert decided["input_shape"] == [1, 4, 4] and decided["groups"] == groups
    assert decided["samples"] == {"train": 8, "val": 2, "test": 3} and decided["parameters"] == 51


def test_groups_beyond_a_dozen_are_counted():
    assert describe_groups({"test": [f"g{i}" for i in range(14)]}, most=2) == (
        "test g0, g1, ... (14 in all)"
    )


def session_starts(run_dir) -> list[int]:
    """The steps at which the event files under ``run_dir`` (re)start a session: where
    TensorBoard drops what an earlier process logged from that step on."""
    steps = []
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                steps.append(event.step)
    return steps


def test_a_resumed_run_drops_what_came_after_its_checkpoint_and_a_new_one_nothing(tmp_path):
    fresh = RunLog(tmp_path, options(), is_main=True, device=CPU)
    fresh.open(global_step=0, epoch=0, resumed=False)
    fresh.close()
    assert session_starts(tmp_path) == []
    resumed = RunLog(tmp_path, options(resume="x.pth"), is_main=True, device=CPU)
    resumed.open(global_step=20, epoch=2, resumed=True)
    resumed.close()
    assert session_starts(tmp_path) == [21]
