"""Name -> entry tables (datasets, models, optimizers, schedulers): lookup, and the options
each entry declares beside its own code."""

import argparse
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from utils.errors import UsageError

T = TypeVar("T")

# Adds an entry's own options to an argparse group: ``group.add_argument("--bilinear", ...)``.
OptionDeclarer = Callable[[argparse._ArgumentGroup], None]


def lookup(table: Mapping[str, T], name: str, what: str) -> T:
    """Return ``table[name]``; an unknown name raises a UsageError listing the known ones.

    Example: ``lookup(MODELS, "Vanila", "model_type")`` ->
    ``unknown model_type 'Vanila'; known: Vanilla``.
    """
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise UsageError(f"unknown {what} '{name}'; known: {known}") from None


def add_entry_options(
    parser: argparse.ArgumentParser,
    kind: str,
    declarers: Mapping[str, Iterable[OptionDeclarer]],
) -> None:
    """Let each entry (name -> its declarers) add its options to ``parser``, grouped.

    A declarer that several entries share is called once, in a group that names all of them:
    ``--base_width`` of UNet and UNet++ appears under "model options (UNet, UNetpp)".
    """
    users: dict[OptionDeclarer, list[str]] = {}
    for name, entry_declarers in declarers.items():
        for declare in entry_declarers:
            users.setdefault(declare, []).append(name)
    for declare, names in users.items():
        declare(parser.add_argument_group(f"{kind} options ({', '.join(names)})"))


def declared_options(declarers: Iterable[OptionDeclarer]) -> set[str]:
    """The option names (dests) ``declarers`` add, found by letting them add to a scratch
    parser."""
    scratch = argparse.ArgumentParser(add_help=False)
    group = scratch.add_argument_group()
    for declare in declarers:
        declare(group)
    return {action.dest for action in scratch._actions}


def options_of_others(declarers: Mapping[str, Iterable[OptionDeclarer]], chosen: str) -> set[str]:
    """The options that entries other than ``chosen`` declare and ``chosen`` does not: those
    a run of ``chosen`` never reads."""
    declared = {name: declared_options(entry) for name, entry in declarers.items()}
    return set().union(*declared.values()) - declared.get(chosen, set())
