"""Tests for utils.loop.logger.setup_logging."""

import logging

import pytest

from utils.loop.logger import FILE_ONLY, EarlyRecords, TqdmHandler, setup_logging

log = logging.getLogger("tests.logger")


@pytest.fixture
def root_logger():
    """The root logger, restored (handlers and level) after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _ours(root):
    return [h for h in root.handlers if getattr(h, "_template", False)]


def test_log_file_receives_records(root_logger, tmp_path):
    log_file = tmp_path / "train.log"
    setup_logging(log_file)
    log.info("epoch 1 done")
    log.debug("hidden detail")
    text = log_file.read_text(encoding="utf-8")
    assert "INFO epoch 1 done" in text
    assert "hidden detail" not in text  # default level is INFO


def test_terminal_handler_writes_to_stdout(root_logger, capsys):
    setup_logging()
    log.warning("look here")
    assert "WARNING look here" in capsys.readouterr().out
    assert [type(h) for h in _ours(root_logger)] == [TqdmHandler, EarlyRecords]


def test_the_log_file_starts_with_what_came_before_it(root_logger, tmp_path, capsys):
    """Records logged before the run dir existed reach its log file; records marked
    FILE_ONLY reach the file and not the terminal."""
    setup_logging()
    log.info("decided before the run dir")
    setup_logging(tmp_path / "train.log")
    log.info("the tree", extra=FILE_ONLY)
    text = (tmp_path / "train.log").read_text()
    assert text.index("decided before the run dir") < text.index("the tree")
    assert "the tree" not in capsys.readouterr().out
    setup_logging(tmp_path / "other.log")  # the records went to the first file only
    assert "decided" not in (tmp_path / "other.log").read_text()


def test_calling_twice_does_not_duplicate_lines(root_logger, tmp_path, capsys):
    log_file = tmp_path / "train.log"
    setup_logging(log_file)
    setup_logging(log_file)
    log.info("only once please")
    assert log_file.read_text(encoding="utf-8").count("only once please") == 1
    assert capsys.readouterr().out.count("only once please") == 1
    assert len(_ours(root_logger)) == 2


def test_second_call_replaces_handlers_and_switches_file(root_logger, tmp_path):
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    setup_logging(first)
    old = _ours(root_logger)
    setup_logging(second)
    log.info("to the second file")
    assert not any(h in root_logger.handlers for h in old)
    assert "to the second file" not in first.read_text(encoding="utf-8")
    assert "to the second file" in second.read_text(encoding="utf-8")


def test_foreign_handlers_are_left_alone(root_logger, tmp_path):
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    foreign = Collect()
    root_logger.addHandler(foreign)
    setup_logging(tmp_path / "a.log")
    setup_logging(tmp_path / "b.log")
    assert foreign in root_logger.handlers
    log.info("seen by everyone")
    assert records == ["seen by everyone"]


def test_level_is_applied(root_logger, tmp_path):
    log_file = tmp_path / "train.log"
    setup_logging(log_file, level=logging.WARNING)
    log.info("too quiet")
    log.warning("loud enough")
    text = log_file.read_text(encoding="utf-8")
    assert "too quiet" not in text and "loud enough" in text


def test_log_file_is_appended_not_truncated(root_logger, tmp_path):
    log_file = tmp_path / "train.log"
    log_file.write_text("earlier run\n", encoding="utf-8")
    setup_logging(log_file)
    log.info("resumed")
    text = log_file.read_text(encoding="utf-8")
    assert text.startswith("earlier run\n") and "resumed" in text
