"""The FashionMNIST scripts run as a user would: train twice, evaluate, compare."""

import json
import shlex
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from conftest import run_script
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from data.data_entry import build_datasets
from model.model_entry import build_model

QUICK = ("--epochs", "2", "--train_val_sample_rate", "0.03", "--test_sample_rate", "0.1")
CPU = ("--gpu_devices", "cpu", "--num_workers", "0")


def train(data_dir: Path, out: Path, *extra: str) -> Path:
    before = set(out.iterdir()) if out.exists() else set()
    result = run_script(
        "trainer_vanilla.py", "--data_dir", data_dir, "--output_dir", out, *QUICK, *CPU, *extra
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (run_dir,) = set(out.iterdir()) - before
    return run_dir


@pytest.fixture(scope="module")
def two_runs(fashion_mnist_root, tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("Results")
    return train(fashion_mnist_root, out), train(fashion_mnist_root, out, "--lr", "0.002")


def test_run_dir_contents(two_runs):
    run = two_runs[0]
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "train.log", "Vanilla_best_ckpt.pth", "Vanilla_last_ckpt.pth"} <= names
    assert json.loads((run / "config.json").read_text())["options"]["model_type"] == "Vanilla"
    assert "epoch 2/2" in (run / "train.log").read_text()
    events = EventAccumulator(str(run))
    events.Reload()
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("val/acc")) == 2
    assert all(0 <= e.value <= 1 for e in events.Scalars("val/acc"))


def test_eval_reports_accuracy_and_writes_outputs(two_runs, fashion_mnist_root):
    checkpoint = two_runs[0] / "Vanilla_best_ckpt.pth"
    # The command the training log ends with, as a user would paste it.
    logged = (two_runs[0] / "train.log").read_text().splitlines()[-1]
    python, *command = shlex.split(logged.split("evaluate the best checkpoint with: ")[1])
    assert (python, command) == ("python", ["eval_vanilla.py", "--model_path", str(checkpoint)])
    result = run_script(*command, "--gpu_devices", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test accuracy" in result.stdout
    assert "predicted" in result.stdout

    record = json.loads((two_runs[0] / "Vanilla_best_ckpt_test_metrics.json").read_text())
    metrics = record["metrics"]
    assert metrics["samples"] == 1000
    assert len(metrics["per_class_accuracy"]) == 10
    png = two_runs[0] / "Vanilla_best_ckpt_confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The reported accuracy equals a hand-written pass over the same test subset.
    options = json.loads((two_runs[0] / "config.json").read_text())["options"]
    options["data_dir"] = str(fashion_mnist_root)
    data = build_datasets(Namespace(**options))
    model = build_model(Namespace(**options), data.input_shape, data.num_outputs)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    model.eval()
    with torch.inference_mode():
        correct = sum(int(model(x.unsqueeze(0)).argmax() == y) for x, y in data.test)
    assert metrics["accuracy"] == pytest.approx(correct / len(data.test))
    assert metrics["accuracy"] > 0.6  # ten classes: chance is 0.1


def test_configcmp_shows_only_what_differs(two_runs):
    first, second = two_runs
    result = run_script("-m", "utils.experiments.configcmp", first, second)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["lr", "0.001", "0.002"] for line in lines)
    assert not any(line.startswith(("batch_size", "epochs")) for line in lines)
    same = run_script("-m", "utils.experiments.configcmp", first, first / "config.json")
    assert same.returncode == 0
