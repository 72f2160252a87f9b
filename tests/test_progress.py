"""Tests for utils.loop.progress.Progress."""

import io
import logging
import sys
import time

import pytest

from utils.loop.progress import Progress

LOGGER = "utils.loop.progress"


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def no_tty(monkeypatch):
    """stderr is a pipe/file, as when output is redirected."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    return stream


def _consume(progress, samples=4, reads=None):
    """Iterate like the trainer; ``reads`` collects the steps at which stats were read."""
    seen = []

    def stats():
        if reads is not None:
            reads.append(step)
        return {"loss": 0.5, "lr": 1e-3}

    for step, item in enumerate(progress, start=1):
        seen.append(item)
        progress.update(step, samples, stats)
    return seen


def _progress_records(caplog):
    return [r for r in caplog.records if r.name == LOGGER]


def test_yields_all_items(no_tty):
    items = list(range(23))
    assert _consume(Progress(items, total=len(items), desc="train")) == items


@pytest.mark.parametrize(("total", "lines"), [(100, 10), (1000, 10), (50, 5), (37, 5)])
def test_plain_lines_when_not_a_tty(no_tty, caplog, total, lines):
    caplog.set_level(logging.INFO, logger=LOGGER)
    _consume(Progress(range(total), total=total, desc="train", lines=lines))
    records = _progress_records(caplog)
    assert lines <= len(records) <= lines + 1
    last = records[-1].getMessage()
    assert last.startswith(f"train {total}/{total} ")  # the final step is always reported
    assert "loss 0.5000" in last and "lr 0.001" in last and "samples/s" in last
    assert no_tty.getvalue() == ""  # no bar drawn


@pytest.mark.parametrize("tty", [False, True], ids=["log lines", "bar"])
def test_stats_are_read_only_when_shown(monkeypatch, no_tty, tty):
    if tty:
        monkeypatch.setattr(sys, "stderr", _Tty())
    reads = []
    _consume(Progress(range(1000), total=1000, desc="train", lines=10), reads=reads)
    assert 10 <= len(reads) <= 11  # not once per step: reading waits for the device
    assert reads[-1] == 1000


def test_fewer_steps_than_lines_logs_each_step(no_tty, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    _consume(Progress(range(3), total=3, desc="val", lines=10))
    assert [r.getMessage().split()[1] for r in _progress_records(caplog)] == ["1/3", "2/3", "3/3"]


def test_lines_zero_logs_nothing(no_tty, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    _consume(Progress(range(50), total=50, desc="train", lines=0))
    assert _progress_records(caplog) == []


def test_disabled_logs_and_draws_nothing(monkeypatch, caplog):
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    caplog.set_level(logging.INFO, logger=LOGGER)
    progress = Progress(range(30), total=30, desc="train", enabled=False)
    assert _consume(progress) == list(range(30))
    assert _progress_records(caplog) == []
    assert tty.getvalue() == ""
    assert progress.samples == 30 * 4  # still counted


def test_tty_draws_a_bar_instead_of_log_lines(monkeypatch, caplog):
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    caplog.set_level(logging.INFO, logger=LOGGER)
    _consume(Progress(range(20), total=20, desc="trainbar"))
    assert _progress_records(caplog) == []
    assert "trainbar" in tty.getvalue()


def test_throughput_is_samples_over_the_seconds_since_the_pass_started(no_tty, monkeypatch):
    clock = iter([100.0, 102.5])  # the pass starts at 100 s; throughput is read at 102.5 s
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    progress = Progress(range(5), total=5, desc="train", lines=0)  # shows nothing meanwhile
    _consume(progress, samples=8)
    assert progress.samples == 40
    assert progress.throughput == 40 / 2.5
