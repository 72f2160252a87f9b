"""Tests for utils.records.rundir: timestamped, never-reused run directories."""

import re
from datetime import datetime

import pytest

from utils.errors import UsageError
from utils.records.rundir import make_run_dir, timestamp

NOW = datetime(2026, 11, 21, 19, 4, 5)


def test_timestamp_format():
    expected = (
        f"{NOW.year:04d}{NOW.month:02d}{NOW.day:02d}-{NOW.hour:02d}{NOW.minute:02d}{NOW.second:02d}"
    )
    assert timestamp(NOW) == expected == "20261121-190405"


def test_timestamp_defaults_to_now():
    before = datetime.now().replace(microsecond=0)
    stamp = timestamp()
    after = datetime.now()
    assert re.fullmatch(r"\d{8}-\d{6}", stamp)
    assert before <= datetime.strptime(stamp, "%Y%m%d-%H%M%S") <= after


def test_timestamps_sort_chronologically():
    times = [
        datetime(2025, 12, 31, 23, 59, 59),
        datetime(2026, 1, 1),
        datetime(2026, 1, 1, 0, 0, 1),
    ]
    stamps = [timestamp(t) for t in times]
    assert stamps == sorted(stamps)


def test_same_second_gets_suffixes(tmp_path):
    out = tmp_path / "Results" / "Vanilla"  # parents are created
    dirs = [make_run_dir(out, now=NOW) for _ in range(3)]
    stamp = timestamp(NOW)
    assert [d.name for d in dirs] == [stamp, f"{stamp}-1", f"{stamp}-2"]
    assert all(d.is_dir() and d.parent == out for d in dirs)
    assert len(set(dirs)) == 3


def test_existing_dirs_are_never_reused(tmp_path):
    stamp = timestamp(NOW)
    (tmp_path / stamp).mkdir()
    (tmp_path / stamp / "best.pth").write_text("old run")
    (tmp_path / f"{stamp}-1").write_text("a file in the way")
    new = make_run_dir(str(tmp_path), now=NOW)
    assert new == tmp_path / f"{stamp}-2"
    assert list(new.iterdir()) == []
    assert (tmp_path / stamp / "best.pth").read_text() == "old run"


def test_output_dir_under_a_file_is_usage_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match="--output_dir") as info:
        make_run_dir(blocker / "runs", now=NOW)
    assert str(blocker / "runs") in str(info.value)
    with pytest.raises(UsageError, match="--output_dir"):
        make_run_dir(blocker, now=NOW)


def test_gives_up_after_1000_runs_in_one_second(tmp_path):
    stamp = timestamp(NOW)
    (tmp_path / stamp).mkdir()
    for n in range(1, 1000):
        (tmp_path / f"{stamp}-{n}").mkdir()
    with pytest.raises(UsageError, match="1000 runs"):
        make_run_dir(tmp_path, now=NOW)
