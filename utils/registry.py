"""Name -> entry tables: lookup with a one-line error, and the registries of datasets and
models, which their entries join from their own files.

A :class:`Registry` is filled by its entries (``DATASETS.register("FashionMNIST", ...)`` in
``data/fashion_mnist.py``, usually through a decorator), and its first use imports every module
of its package, so a new file in ``data/`` or ``model/`` is found without an edit anywhere
else, as timm finds its models. Each entry may declare options of its own; a run keeps only
those of the entries it selects (see ``utils/loop/options.py``).
"""

import argparse
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Generic, Protocol, TypeVar

from utils.errors import UsageError

T = TypeVar("T")

# Adds an entry's own options to an argparse group: ``group.add_argument("--bilinear", ...)``.
OptionDeclarer = Callable[[argparse._ArgumentGroup], None]


def lookup(table: Mapping[str, T], name: str, what: str) -> T:
    """Return ``table[name]``; an unknown name raises a UsageError listing the known ones.

    Example: ``lookup(OPTIMIZERS, "adma", "optimizer")`` ->
    ``unknown optimizer 'adma'; known: adam, adamw, sgd``.
    """
    try:
        return table[name]
    except KeyError:
        known = ", ".join(sorted(table))
        raise UsageError(f"unknown {what} '{name}'; known: {known}") from None


class Entry(Protocol):
    """What a registry holds: something with the declarers of its own options."""

    options: tuple[OptionDeclarer, ...]


E = TypeVar("E", bound=Entry)


class Registry(MutableMapping[str, E], Generic[E]):
    """The entries one option selects (``--model_type``: the models), by name.

    ``package`` is searched on first use: every module in it is imported, and the entries
    its modules register join. A name registered twice by different entries is an error
    naming both, so two files cannot silently shadow each other.
    """

    def __init__(self, option: str, package: str, what: str) -> None:
        self.option = option
        self.package = package
        self.what = what  # "data", "model": the word in --help's group titles
        self._entries: dict[str, E] = {}
        self._found = False

    def register(self, name: str, entry: E) -> E:
        """Add ``entry`` under ``name`` and return it."""
        held = self._entries.get(name)
        if held is not None and held != entry:
            raise ValueError(
                f"--{self.option} {name!r} is registered twice: by {origin(held)} and by "
                f"{origin(entry)}; rename one"
            )
        self._entries[name] = entry
        return entry

    @property
    def entries(self) -> dict[str, E]:
        """Every entry, after importing the modules of the package once."""
        if not self._found:
            self._found = True
            package = importlib.import_module(self.package)
            for module in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
                importlib.import_module(f"{self.package}.{module}")
        return self._entries

    def lookup(self, name: str) -> E:
        """The entry named ``name``; an unknown name is a UsageError listing the known ones."""
        return lookup(self.entries, name, self.option)

    def __getitem__(self, name: str) -> E:
        return self.entries[name]

    def __setitem__(self, name: str, entry: E) -> None:
        self.register(name, entry)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def declared(self) -> dict[str, set[str]]:
        """Each entry's name -> the option names (dests) it declares."""
        return {name: declared_options(entry.options) for name, entry in self.entries.items()}

    def owners(self) -> dict[str, list[str]]:
        """Each entry option's name -> the entries that declare it, sorted."""
        owners: dict[str, list[str]] = {}
        for name, dests in sorted(self.declared().items()):
            for dest in dests:
                owners.setdefault(dest, []).append(name)
        return owners

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        """Let each entry add its options to ``parser``, grouped.

        A declarer that several entries share is called once, in a group that names all of
        them: ``--base_width`` of UNet and UNet++ appears under "model options (UNet, UNetpp)".
        """
        users: dict[OptionDeclarer, list[str]] = {}
        for name in self:
            for declare in self.entries[name].options:
                users.setdefault(declare, []).append(name)
        for declare, names in users.items():
            declare(parser.add_argument_group(f"{self.what} options ({', '.join(names)})"))


def origin(entry: object) -> str:
    """Where an entry comes from: its builder's module and name, where it has one."""
    build = getattr(entry, "build", None)
    return f"{build.__module__}.{build.__qualname__}" if callable(build) else repr(entry)


def declared_options(declarers: Iterable[OptionDeclarer]) -> set[str]:
    """The option names (dests) ``declarers`` add, found by letting them add to a scratch
    parser."""
    scratch = argparse.ArgumentParser(add_help=False)
    group = scratch.add_argument_group()
    for declare in declarers:
        declare(group)
    return {action.dest for action in scratch._actions}
