"""The worked example of docs/extending.md, played as a user: a regression task (no images, no
classes) added to a copy of the project as new files only. It trains, stops on Ctrl-C,
resumes to the weights of a run never stopped, evaluates, is refused image files in one line,
and passes the contract tests; no file of the project changes."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import torch
from conftest import REPO, read_until
from PIL import Image

NEW_FILES = {
    "data/synth_regression.py",
    "model/mlp_regressor.py",
    "trainer_regression.py",
    "eval_regression.py",
}
COMMON = ["--gpu_devices", "cpu", "--num_workers", "0", "--n_samples", "8000", "--epochs", "4"]


def example_files() -> dict[str, str]:
    """The python blocks of docs/extending.md that start with ``# <path>.py``."""
    text = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    return dict(re.findall(r"```python\n# (\S+\.py)\n(.*?)```", text, re.DOTALL))


def copy_project(to: Path) -> dict[str, str]:
    """Copy the project's files (tracked, or new and not ignored) to ``to``; their hashes."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    hashes = {}
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            (to / name).write_bytes(source.read_bytes())
            hashes[name] = hashlib.sha256(source.read_bytes()).hexdigest()
    return hashes


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "MLPRegressor_last_ckpt.pth", weights_only=True)["model"]


def test_a_regression_task_grows_from_new_files_alone(tmp_path):
    project = tmp_path / "project"
    hashes = copy_project(project)
    files = example_files()
    assert set(files) == NEW_FILES and not any((REPO / name).exists() for name in NEW_FILES)
    page = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    for name, text in files.items():  # the page's table and the README count their lines
        assert f"| `{name}` | {len(text.splitlines())} |" in page
        assert f"`{name}` ({len(text.splitlines())} lines)" in readme
    for name, text in files.items():
        (project / name).write_text(text)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}

    def run(*args: str | Path) -> subprocess.CompletedProcess:
        command = [sys.executable, *map(str, args)]
        return subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)

    whole = run("trainer_regression.py", *COMMON, "--output_dir", "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    (whole_dir,) = (project / "whole").iterdir()
    log = (whole_dir / "train.log").read_text()
    assert "data SynthRegression: train 8000, val 1000, test 1000 samples; 2 outputs" in log

    # Ctrl-C in the second epoch; the run saves where it was and exits 130.
    stopped = subprocess.Popen(
        [sys.executable, "trainer_regression.py", *COMMON, "--output_dir", "stopped"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    read_until(stopped, "epoch 2/4 ")
    os.killpg(stopped.pid, signal.SIGINT)
    assert stopped.wait(timeout=300) == 130
    (stopped_dir,) = (project / "stopped").iterdir()
    assert (stopped_dir / "MLPRegressor_interrupt_ckpt.pth").is_file()
    resumed = run("trainer_regression.py", *COMMON, "--output_dir", "stopped", "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for key, value in weights(whole_dir).items():
        assert torch.equal(value, weights(stopped_dir)[key]), key

    options = json.loads((whole_dir / "config.json").read_text())["options"]
    assert {"hidden", "n_samples", "noise"} <= options.keys()
    assert not {"img_scale", "bilinear", "base_width", "in_memory"} & options.keys()

    best = whole_dir / "MLPRegressor_best_ckpt.pth"
    evaluated = run("eval_regression.py", "--model_path", best, "--gpu_devices", "cpu")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "test samples 1000\n" in evaluated.stderr + evaluated.stdout
    metrics = json.loads((whole_dir / "MLPRegressor_best_ckpt_test_metrics.json").read_text())
    assert metrics["metrics"]["r2"] > 0.5 and metrics["metrics"]["samples"] == 1000

    picture = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(picture)
    refused = run(
        "eval_regression.py", "--model_path", best, "--input", picture, "--save_path", "p"
    )
    assert refused.returncode == 2 and not (project / "p").exists()
    assert refused.stderr.splitlines() == [
        "error: --input: --data_type SynthRegression reads no image files; expected a dataset "
        "that names a load_input"
    ]
    no_export = run("eval_regression.py", "--model_path", best, "--export", "model.pt2")
    assert no_export.returncode == 2 and not (project / "model.pt2").exists()
    assert no_export.stderr.splitlines() == [
        "error: --export: --data_type SynthRegression names no pixels (how an image becomes the "
        "model's input); the exported program takes images"
    ]

    host_reads = "tests/test_host_reads.py::test_a_registered_models_forward_and_backward"
    suite = [
        "tests/test_contracts.py",
        f"{host_reads}_read_no_device_scalar",
        "tests/test_layout.py",
    ]
    contracts = run("-m", "pytest", "-v", "-p", "no:cacheprovider", *suite)
    assert contracts.returncode == 0, contracts.stdout[-3000:]
    passed = {
        (line.split("::")[1].split("[")[0], name)
        for line in contracts.stdout.splitlines()
        for name in ("SynthRegression", "MLPRegressor")
        if " PASSED" in line and name in line
    }
    assert {test for test, name in passed if name == "SynthRegression"} == {
        "test_a_dataset_yields_what_it_declares",
        "test_a_dataset_is_the_same_under_the_same_seed",
        "test_a_run_holds_the_options_of_its_own_entries_alone",
    }  # and no load_input test: it reads no image files
    assert {test for test, name in passed if name == "MLPRegressor"} == {
        "test_a_model_returns_what_it_declares",
        "test_a_model_is_the_same_under_the_same_seed",
        "test_every_option_a_model_declares_reaches_it",
        "test_a_run_holds_the_options_of_its_own_entries_alone",
        "test_a_registered_models_forward_and_backward_read_no_device_scalar",
    }

    changed = [
        name
        for name, digest in hashes.items()
        if hashlib.sha256((project / name).read_bytes()).hexdigest() != digest
    ]
    assert changed == []
