"""Tests for utils.experiments.configcmp: diffing two run configs."""

import pytest

from utils.experiments.configcmp import MISSING, compare, diff_configs, flatten, format_table, main
from utils.records.config import CONFIG_NAME, save_config

BASE = {"lr": 0.001, "epochs": 10, "optimizer": "adam", "aug": {"flip": True, "crop": 4}}
ENV = {"torch": "2.0", "hostname": "alpha", "git_commit": "abc"}


def _run(directory, options=BASE, env=ENV):
    directory.mkdir(parents=True, exist_ok=True)
    save_config(directory / CONFIG_NAME, options, env)
    return directory


def test_flatten_nested_dicts():
    data = {"a": {"b": 1, "c": {"d": [1, 2]}}, "e": "x"}
    assert flatten(data) == {"a.b": 1, "a.c.d": [1, 2], "e": "x"}
    assert flatten({}) == {}


def test_diff_of_equal_configs_is_empty():
    assert diff_configs(BASE, {**BASE, "aug": dict(BASE["aug"])}) == []


def test_diff_finds_changed_added_and_removed_keys():
    other = {"lr": 0.01, "epochs": 10, "aug": {"flip": True, "crop": 8}, "amp": True}
    assert diff_configs(BASE, other) == [
        ("amp", MISSING, True),
        ("aug.crop", 4, 8),
        ("lr", 0.001, 0.01),
        ("optimizer", "adam", MISSING),
    ]


def test_format_table_aligns_columns():
    table = format_table([("lr", 0.001, 0.01), ("optimizer", "adam", MISSING)], "A", "B")
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["key", "A", "B"]
    assert lines[1].split() == ["lr", "0.001", "0.01"]
    assert lines[2].split() == ["optimizer", "adam", MISSING]
    # the second column starts at the same offset on every line
    starts = {line.index(cell) for line, cell in zip(lines, ["A", "0.001", "adam"], strict=True)}
    assert len(starts) == 1


def test_main_same_configs_exit_0(tmp_path, capsys):
    a, b = _run(tmp_path / "r1"), _run(tmp_path / "r2")
    assert main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "same" in out
    assert "lr" not in out


def test_main_different_configs_print_only_differing_keys(tmp_path, capsys):
    a = _run(tmp_path / "r1")
    b = _run(tmp_path / "r2", {**BASE, "lr": 0.5, "aug": {"flip": False, "crop": 4}})
    assert main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["key", "r1", "r2"]
    assert [line.split()[0] for line in lines[1:]] == ["aug.flip", "lr"]
    for equal_key in ("epochs", "optimizer", "aug.crop", "adam"):
        assert equal_key not in out


def test_main_missing_config_exit_2_with_one_line_error(tmp_path, capsys):
    a = _run(tmp_path / "r1")
    assert main([str(a), str(tmp_path / "missing")]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ")
    assert captured.err.count("\n") == 1
    assert "missing" in captured.err
    assert captured.out == ""


def test_env_is_compared_only_with_flag(tmp_path, capsys):
    a = _run(tmp_path / "r1")
    b = _run(tmp_path / "r2", env={**ENV, "hostname": "beta"})
    assert main([str(a), str(b)]) == 0
    capsys.readouterr()
    assert main([str(a), str(b), "--env"]) == 1
    out = capsys.readouterr().out
    assert "environment.hostname" in out
    assert "alpha" in out and "beta" in out
    assert "environment.torch" not in out
    assert compare(str(a), str(b), include_env=True) == [("environment.hostname", "alpha", "beta")]
    assert compare(str(a), str(b)) == []  # options only, unless asked


def test_accepts_json_files_and_run_dirs(tmp_path, capsys):
    a = _run(tmp_path / "r1")
    save_config(tmp_path / "x.json", {**BASE, "epochs": 20}, ENV)
    assert main([str(a / CONFIG_NAME), str(tmp_path / "x.json")]) == 1
    assert main([str(a), str(tmp_path / "x.json")]) == 1
    out = capsys.readouterr().out
    assert "epochs" in out and "20" in out
    assert main([str(a / CONFIG_NAME), str(a)]) == 0


def test_same_dir_names_fall_back_to_full_paths(tmp_path, capsys):
    save_config(tmp_path / "a.json", BASE, ENV)
    save_config(tmp_path / "b.json", {**BASE, "lr": 1.0}, ENV)
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    header = capsys.readouterr().out.splitlines()[0]
    assert header.split() == ["key", str(tmp_path / "a.json"), str(tmp_path / "b.json")]


def test_missing_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
