"""Tests for utils.registry: lookup by name, and the options entries declare."""

import pytest

from utils.cli import ArgumentParser
from utils.errors import UsageError
from utils.registry import add_entry_options, declared_options, lookup, options_of_others

TABLE = {"zeta": 1, "alpha": 2, "Mid": 3}


def test_hit_returns_entry():
    assert lookup(TABLE, "alpha", "model_type") == 2
    assert lookup(TABLE, "Mid", "model_type") == 3


def test_miss_names_the_option_and_lists_known_names_sorted():
    with pytest.raises(UsageError) as info:
        lookup(TABLE, "alpah", "model_type")
    message = str(info.value)
    assert "model_type" in message
    assert "'alpah'" in message
    assert message.endswith("known: " + ", ".join(sorted(TABLE)))


def test_lookup_is_case_sensitive():
    with pytest.raises(UsageError):
        lookup(TABLE, "ALPHA", "optimizer")


def test_a_declarer_shared_by_entries_is_called_once_in_a_group_naming_them():
    def width(group):
        group.add_argument("--width", type=int, default=8, help="shared width")

    def depth(group):
        group.add_argument("--depth", type=int, default=2, help="B's depth")

    parser = ArgumentParser()
    add_entry_options(parser, "model", {"A": (width,), "B": (width, depth), "C": ()})
    groups = {g.title: [a.dest for a in g._group_actions] for g in parser._action_groups}
    assert groups["model options (A, B)"] == ["width"]
    assert groups["model options (B)"] == ["depth"]
    assert vars(parser.parse_args(["--width", "3"])) == {"width": 3, "depth": 2}


def test_the_options_of_entries_not_chosen_are_those_only_they_declare():
    def size(group):
        group.add_argument("--size", type=int, default=1)

    def depth(group):
        group.add_argument("--depth", type=int, default=2)

    declarers = {"A": (size,), "B": (size, depth), "C": ()}
    assert declared_options((size, depth)) == {"size", "depth"}
    assert options_of_others(declarers, "A") == {"depth"}
    assert options_of_others(declarers, "B") == set()
    assert options_of_others(declarers, "C") == {"size", "depth"}
