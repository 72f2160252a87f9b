"""Command-line plumbing: argparse value types and the wrapper every script's main runs in."""

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from utils.errors import UsageError
from utils.signals import StopRequested

log = logging.getLogger(__name__)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with ``--help`` showing defaults and errors as one line, not the usage block.

    The usage of a trainer spans dozens of lines; the one wrong flag would be lost in it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def str2bool(text: str) -> bool:
    """Parse ``--flag True`` / ``--flag false`` / ``--flag 1`` style booleans."""
    value = text.strip().lower()
    if value in ("true", "1", "yes", "y"):
        return True
    if value in ("false", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """A rate in (0, 1], such as a sample rate."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text}")
    return value


def open_fraction(text: str) -> float:
    """A share in (0, 1), such as the validation ratio."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text}")
    return value


def run_main(main: Callable[[], object]) -> None:
    """Run a script's main: a UsageError is one line on stderr and exit 2, a graceful stop on a
    signal exits 128 + its number (SIGTERM 143, SIGINT 130), and so does a hard Ctrl-C (130).

    Any other exception is a bug and keeps its traceback.
    """
    try:
        main()
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except StopRequested as stop:
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        log.warning("interrupted")
        sys.exit(130)
