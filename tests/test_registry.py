"""Tests for utils.registry.lookup."""

import pytest

from utils.errors import UsageError
from utils.registry import lookup

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
