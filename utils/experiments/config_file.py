"""Options from a JSON file: ``--config FILE``, and ``--print_config`` to write one.

Precedence: the task's defaults < the file < the command line. A file is a JSON object of
options, ``{"lr": 0.003, "epochs": 20}``, or a run's own config.json (or its run dir), whose
``"options"`` it takes; so ``--config Results/Vanilla/<ts>/config.json --lr 3e-3`` reruns
that run with one change (in a new run dir beside it: its ``output_dir`` is the parent of
run dirs). Each value goes through its flag's argparse type and choices, as on the command
line. ``--print_config`` prints the resolved options in the config.json format and exits.

``--config`` and ``--print_config`` themselves are not options of the run: they never reach
the parsed options, so a run's config.json holds the same options however they were given,
and ``--resume`` compares them with a checkpoint's as it always did. JSON only: runs write
their config as JSON, the standard library reads it, and YAML would add a dependency for
the sake of comments.
"""

import argparse
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from utils.cli import ArgumentParser
from utils.records.config import resolve_config_path, with_stand_ins

UNSET = object()  # an option's value before the command line names it


class ConfigFileParser(ArgumentParser):
    """An :class:`ArgumentParser` whose options may also come from ``--config FILE``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        group = self.add_argument_group("config files")
        group.add_argument(
            "--config",
            metavar="FILE",
            default=argparse.SUPPRESS,
            help='take options from this JSON file: {"lr": 0.001, ...}, a run\'s config.json '
            "or its run dir; the command line overrides it",
        )
        group.add_argument(
            "--print_config",
            action="store_true",
            default=argparse.SUPPRESS,
            help="print the resolved options as a config file and exit",
        )

    def parse_known_args(
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse ``args`` over the values of ``--config`` (taken from ``args`` first)."""
        args = sys.argv[1:] if args is None else list(args)
        # Over a namespace where every option holds UNSET, argparse itself (abbreviations and
        # all) says which options the command line names: those no longer UNSET.
        unset = argparse.Namespace(**{a.dest: UNSET for a in self._actions if a.option_strings})
        given, _ = super().parse_known_args(args, unset)
        named = [dest for dest, value in vars(given).items() if value is not UNSET]
        chosen = dict.fromkeys(named, "on the command line")
        recorded: set[str] = set()
        if "config" in chosen:
            from_file, is_run = self.read_config_file(given.config)
            if is_run:
                recorded.update(from_file)
            else:
                where = f"in --config {given.config}"
                chosen.update(dict.fromkeys(from_file.keys() - chosen.keys(), where))
            # argparse fills in a default only where the namespace has no value yet.
            namespace = argparse.Namespace(**from_file, **(vars(namespace) if namespace else {}))
        parsed, extras = super().parse_known_args(args, namespace)
        vars(parsed).pop("config", None)
        print_config = vars(parsed).pop("print_config", False)
        self.settle(parsed, chosen, recorded - chosen.keys())
        if print_config:
            if extras:
                self.error(f"unrecognized arguments: {' '.join(extras)}")
            print(json.dumps({"options": vars(parsed)}, indent=2, sort_keys=True))
            self.exit(0)
        return parsed, extras

    def settle(
        self, parsed: argparse.Namespace, chosen: dict[str, str], recorded: set[str]
    ) -> None:
        """A hook on the parsed options. ``chosen``: the options the user named, each with
        where ("on the command line", "in --config FILE"); ``recorded``: those taken from a
        run's config.json without being named."""

    def read_config_file(self, path: str) -> tuple[dict[str, Any], bool]:
        """The options in ``path``, each checked as its flag checks a command-line value, and
        whether ``path`` is a run's config.json (which records options rather than choosing
        them)."""
        file = resolve_config_path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.error(f"--config {file}: not found; expected a JSON file of options")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            self.error(f"--config {file}: not readable JSON ({err})")
        is_run = isinstance(data, dict) and "options" in data
        options = data["options"] if is_run else data
        if not isinstance(options, dict):
            self.error(
                f'--config {file}: expected a JSON object of options such as {{"lr": 0.001}}, '
                "or a run's config.json"
            )
        if is_run:  # a run from before an option read back as it ran (its split, say)
            options = with_stand_ins(options)
        actions = {
            action.dest: action
            for action in self._actions
            if action.option_strings and action.nargs != 0 and action.dest != "config"
        }
        values = {key: self.file_value(file, actions, key, value) for key, value in options.items()}
        return values, is_run

    def file_value(
        self, file: Path, actions: dict[str, argparse.Action], key: str, value: Any
    ) -> Any:
        """``value`` of option ``key`` from ``file``, converted by its flag's type."""
        action = actions.get(key)
        if action is None:
            close = difflib.get_close_matches(key, actions, n=1)
            self.file_error(
                file, key, "not an option" + (f"; did you mean {close[0]}?" if close else "")
            )
        if value is None:
            if action.default is None:  # as the flag's default, e.g. "clip_grad_norm": null
                return None
            self.file_error(file, key, f"expected a value, got null (default {action.default})")
        if not isinstance(value, str | int | float):  # bool is an int
            self.file_error(file, key, f"expected one value, got {json.dumps(value)}")
        text = str(value)  # what the command line would hold: True, 0.001, adam
        try:
            converted = action.type(text) if action.type else text
        except argparse.ArgumentTypeError as err:
            self.file_error(file, key, str(err))
        except (TypeError, ValueError):
            name = getattr(action.type, "__name__", repr(action.type))
            self.file_error(file, key, f"invalid {name} value: {text!r}")
        if action.choices is not None and converted not in action.choices:
            choices = ", ".join(map(repr, action.choices))
            self.file_error(file, key, f"invalid choice: {converted!r} (choose from {choices})")
        return converted

    def file_error(self, file: Path, key: str, message: str) -> NoReturn:
        self.error(f"--config {file}: {key}: {message}")
