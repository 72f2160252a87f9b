"""The peak memory of each epoch: measured, reset between epochs, and in the run's record."""

import csv
import logging

import numpy as np
import torch
from toy_task import TOY_ARGS, ToyTrainer, build_toy_parser

from utils.experiments.runs import main as runs_main
from utils.loop.memory import PeakMemory

CPU = torch.device("cpu")


def test_the_peak_holds_what_the_epoch_held_and_resets():
    memory = PeakMemory(CPU)
    memory.reset()
    before = memory.read_mib()
    held = np.ones(300 * 2**20, dtype=np.uint8)  # 300 MiB, every page touched
    peak = memory.read_mib()
    del held
    assert peak - before >= 290
    memory.reset()
    assert memory.read_mib() < peak - 250  # Linux resets the peak; this machine is Linux


def test_without_proc_the_peak_since_the_start_is_read(tmp_path):
    """Where /proc cannot be written or read, the process's peak since it started."""
    memory = PeakMemory(CPU, proc=tmp_path / "none")
    memory.reset()
    assert memory.read_mib() >= PeakMemory(CPU).read_mib() * 0.5 > 0


def test_every_epoch_records_its_peak_in_metrics_csv_tensorboard_and_the_runs_table(
    tmp_path, capsys, caplog
):
    argv = ["--output_dir", str(tmp_path), *TOY_ARGS, "--epochs", "2"]
    with caplog.at_level(logging.INFO):
        trainer = ToyTrainer(build_toy_parser().parse_args(argv))
        trainer.train()
    with open(trainer.run_dir / "metrics.csv", newline="") as f:
        peaks = [float(row["memory_peak_mib"]) for row in csv.DictReader(f)]
    assert len(peaks) == 2 and all(peak > 50 for peak in peaks)  # a python with torch loaded
    assert f"peak memory {max(peaks):.0f} MiB;" in caplog.text
    capsys.readouterr()
    runs_main([str(tmp_path), "--csv", str(tmp_path / "runs.csv")])
    with open(tmp_path / "runs.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    assert float(row["memory_mib"]) == max(peaks)
