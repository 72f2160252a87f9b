"""Tests for utils.atomic: all-or-nothing file writes."""

import os
import stat

import pytest

from utils.atomic import atomic_write, remove_partial_writes


def _listing(directory):
    return sorted(p.name for p in directory.iterdir())


def test_writes_content(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, lambda f: f.write(b"hello\x00world"))
    assert target.read_bytes() == b"hello\x00world"
    assert _listing(tmp_path) == ["out.bin"]


def test_overwrites_existing_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_bytes(b"old")
    atomic_write(str(target), lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert _listing(tmp_path) == ["out.txt"]


def test_failing_write_keeps_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_bytes(b"previous")

    def half_write(f):
        f.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, half_write)
    assert target.read_bytes() == b"previous"
    assert _listing(tmp_path) == ["out.txt"]


def test_failing_write_without_previous_file_creates_nothing(tmp_path):
    def boom(f):
        f.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "out.txt", boom)
    assert _listing(tmp_path) == []


def test_file_gets_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "out.txt", lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "out.txt").stat().st_mode)
    assert mode == 0o666 & ~0o022


def test_remove_partial_writes_deletes_only_temp_files(tmp_path):
    (tmp_path / "keep.pth").write_bytes(b"done")
    (tmp_path / ".hidden").write_bytes(b"not ours")
    stale = [tmp_path / ".keep.pth.0a1b.tmp", tmp_path / ".config.json.ffee.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    assert remove_partial_writes(tmp_path) == sorted(stale)
    assert _listing(tmp_path) == [".hidden", "keep.pth"]
