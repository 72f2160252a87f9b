"""Tests for utils.records.config: the run's JSON config and the environment it records."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from utils.errors import UsageError
from utils.records.config import (
    CONFIG_NAME,
    environment_info,
    git_commit,
    load_config,
    resolve_config_path,
    save_config,
)

OPTIONS = {"lr": 0.001, "epochs": 3, "model_type": "Vanilla", "amp": False, "betas": [0.9, 0.99]}
ENV = {"torch": "x", "device": "cpu"}


def test_save_load_round_trip(tmp_path):
    path = tmp_path / CONFIG_NAME
    save_config(path, OPTIONS, ENV)
    assert load_config(path) == {"options": OPTIONS, "environment": ENV}
    assert json.loads(path.read_text()) == {"options": OPTIONS, "environment": ENV}
    assert path.read_text().endswith("\n")
    assert [p.name for p in tmp_path.iterdir()] == [CONFIG_NAME]


def test_load_from_run_dir(tmp_path):
    save_config(tmp_path / CONFIG_NAME, OPTIONS, ENV)
    assert load_config(tmp_path)["options"] == OPTIONS
    assert load_config(str(tmp_path))["options"] == OPTIONS


def test_resolve_config_path(tmp_path):
    assert resolve_config_path(tmp_path) == tmp_path / CONFIG_NAME
    other = tmp_path / "other.json"
    assert resolve_config_path(other) == other
    assert resolve_config_path(str(other)) == other


def test_missing_config_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "nope.json")
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path)  # a run dir without config.json


@pytest.mark.parametrize("text", ["{not json", "", '{"options": '])
def test_invalid_json_is_usage_error(tmp_path, text):
    path = tmp_path / CONFIG_NAME
    path.write_text(text)
    with pytest.raises(UsageError, match="JSON"):
        load_config(path)


def test_binary_garbage_is_usage_error(tmp_path):
    path = tmp_path / CONFIG_NAME
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(UsageError):
        load_config(path)


@pytest.mark.parametrize(
    "data", [{}, {"environment": {}}, {"options": [1, 2]}, {"options": "lr=1"}, [1], "text"]
)
def test_json_without_options_object_is_usage_error(tmp_path, data):
    path = tmp_path / CONFIG_NAME
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="'options'"):
        load_config(path)


def test_environment_info_cpu():
    import torchvision

    env = environment_info(torch.device("cpu"))
    assert env["torch"] == torch.__version__
    assert torchvision.__version__.startswith(env["torchvision"])  # without the +cuXXX tag
    assert env["device"] == "cpu"
    assert env["device_name"] == "cpu"
    json.dumps(env)  # must be storable in the config


def test_git_commit_outside_a_repo_is_none(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit(tmp_path) is None


def test_git_commit_of_a_missing_dir_is_none(tmp_path):
    assert git_commit(tmp_path / "does-not-exist") is None


def _git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
         "-c", "commit.gpgsign=false", *args],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def test_git_commit_in_a_repo_and_dirty_marker(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert git_commit(repo) is None  # no commit yet
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "log", "-1", "--format=%H")

    clean = git_commit(repo)
    assert re.fullmatch(r"[0-9a-f]{40}", clean)
    assert clean == head

    (repo / "untracked.txt").write_text("new\n")
    assert git_commit(repo) == head  # untracked files do not make it dirty

    (repo / "a.txt").write_text("two\n")
    assert git_commit(Path(str(repo))) == head + "-dirty"
