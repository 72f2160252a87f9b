"""Command-line plumbing: argparse value types and the wrapper every script's main runs in."""

import argparse
import contextlib
import logging
import math
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from utils.errors import UsageError
from utils.signals import StopRequested

log = logging.getLogger(__name__)
T = TypeVar("T", int, float)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ArgumentParser(argparse.ArgumentParser):
    """argparse with ``--help`` showing defaults, errors as one line (not the usage block:
    the usage of a trainer spans dozens of lines, and the one wrong flag would be lost in it),
    and on/off flags that stand alone: ``--overwrite`` is ``--overwrite True``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        for action in self._actions:
            if takes_a_bare_flag(action):
                action.nargs, action.const = "?", True
        return super().parse_known_args(args, namespace)

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


def takes_a_bare_flag(action: argparse.Action) -> bool:
    """Whether an option reads ``True`` as True (``str2bool``, ``--compile``'s and
    ``--channels_last``'s types): then the flag alone means True, as well as with a value.
    Checked on every action, so options an entry or a task adds later are covered too."""
    if not action.option_strings or action.nargs is not None or action.type is None:
        return False
    try:
        return action.type("True") is True
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False


def number_type(
    convert: Callable[[str], T], accept: Callable[[T], bool], expected: str
) -> Callable[[str], T]:
    """An argparse ``type`` that parses with ``convert`` and refuses what ``accept`` does not.

    Both a non-number and a number out of range say what was expected.
    """

    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


positive_int = number_type(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = number_type(int, lambda v: v >= 0, "an integer >= 0")
positive_float = number_type(float, lambda v: 0 < v < math.inf, "a finite number > 0")
non_negative_float = number_type(float, lambda v: 0 <= v < math.inf, "a finite number >= 0")
fraction = number_type(float, lambda v: 0 < v <= 1, "a number in (0, 1]")  # sample rates
open_fraction = number_type(float, lambda v: 0 < v < 1, "a number in (0, 1)")  # split shares
zero_to_one = number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)")  # label smoothing
probability = number_type(float, lambda v: 0 <= v <= 1, "a probability in [0, 1]")


def script_command(script: str, *args: str | Path) -> str:
    """The shell command that runs the project's ``script`` with ``args`` from the current
    directory, for a log line to paste; e.g. ``python eval_vanilla.py --model_path x.pth``."""
    path = PROJECT_ROOT / script
    with contextlib.suppress(ValueError):  # outside the current directory: keep it absolute
        path = path.relative_to(Path.cwd())
    return shlex.join(["python", str(path), *map(str, args)])


def run_main(main: Callable[[], object]) -> None:
    """Run a script's main: a UsageError is one line on stderr and exit 2 (under torchrun, one
    line from rank 0 when every rank raised it), a graceful stop on a signal exits 128 + its
    number (SIGTERM 143, SIGINT 130), and so does a hard Ctrl-C (130).

    Any other exception is a bug and keeps its traceback.
    """
    try:
        main()
    except UsageError as err:
        if not err.every_rank or os.environ.get("RANK", "0") == "0":
            print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except StopRequested as stop:
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        log.warning("interrupted")
        sys.exit(130)
