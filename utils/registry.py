"""Name -> factory lookup for the entry tables (datasets, models, optimizers, schedulers)."""

from collections.abc import Mapping
from typing import TypeVar

from utils.errors import UsageError

T = TypeVar("T")


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
