"""Logging to the terminal (without breaking tqdm bars) and to a log file in the run dir."""

import logging
import sys
from collections import deque
from pathlib import Path

from tqdm import tqdm

FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"


# ``log.info(..., extra=FILE_ONLY)``: a record for the log file, not the terminal (the model's
# whole module tree, where the terminal has its one-line summary).
FILE_ONLY = {"file_only": True}
EARLY_RECORDS = 1000  # records kept for the log file before it exists, at most


class TqdmHandler(logging.Handler):
    """Writes records through ``tqdm.write`` so an active progress bar is redrawn below them;
    records marked :data:`FILE_ONLY` are left to the log file."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "file_only", False):
            return
        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:
            self.handleError(record)


class EarlyRecords(logging.Handler):
    """Keeps what is logged before the run dir exists (what the data decided, for one), so
    that the log file, once there, starts with it too."""

    def __init__(self) -> None:
        super().__init__()
        self.records: deque[logging.LogRecord] = deque(maxlen=EARLY_RECORDS)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Send INFO and above to the terminal and, when given, append them to ``log_file``,
    which first gets what was logged since the last call without one (:class:`EarlyRecords`).

    Scripts are the entry points, so this configures the root logger; calling it again
    replaces the handlers it installed before (tests build several trainers in one process).
    """
    root = logging.getLogger()
    early: list[logging.LogRecord] = []
    for handler in [h for h in root.handlers if getattr(h, "_template", False)]:
        if isinstance(handler, EarlyRecords):
            early = list(handler.records)
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [TqdmHandler()]
    if log_file is None:
        handlers.append(EarlyRecords())
    else:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        handler._template = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if log_file is not None:
        for record in early:
            handlers[-1].handle(record)
    root.setLevel(level)
