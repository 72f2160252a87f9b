"""Logging to the terminal (without breaking tqdm bars) and to a log file in the run dir."""

import logging
import sys
from pathlib import Path

from tqdm import tqdm

FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"


class TqdmHandler(logging.Handler):
    """Writes records through ``tqdm.write`` so an active progress bar is redrawn below them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:
            self.handleError(record)


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Send INFO and above to the terminal and, when given, append them to ``log_file``.

    Scripts are the entry points, so this configures the root logger; calling it again
    replaces the handlers it installed before (tests build several trainers in one process).
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_template", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [TqdmHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        handler._template = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
