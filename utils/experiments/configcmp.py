"""Compare two run configs and print only the keys that differ, side by side.

Usage::

    python -m utils.experiments.configcmp Results/Vanilla/<ts1> Results/Vanilla/<ts2>
    python -m utils.experiments.configcmp a/config.json b/config.json --env

Exit status: 0 when the options are the same, 1 when they differ, 2 on bad input.
"""

import sys
from pathlib import Path
from typing import Any

from utils.cli import ArgumentParser
from utils.errors import UsageError
from utils.records.config import load_config, resolve_config_path
from utils.table import aligned

MISSING = "<absent>"


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def diff_configs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """Sorted ``(key, value_in_a, value_in_b)`` for each key that differs or is only on one side."""
    flat_a, flat_b = flatten(a), flatten(b)
    rows = []
    for key in sorted(flat_a.keys() | flat_b.keys()):
        value_a, value_b = flat_a.get(key, MISSING), flat_b.get(key, MISSING)
        # Compare types too: JSON keeps true and 1 apart, and so does this table.
        if (type(value_a), value_a) != (type(value_b), value_b):
            rows.append((key, value_a, value_b))
    return rows


def format_table(rows: list[tuple[str, Any, Any]], name_a: str, name_b: str) -> str:
    """Three aligned columns: key, value in A, value in B."""
    return aligned([("key", name_a, name_b), *((k, str(va), str(vb)) for k, va, vb in rows)])


def compare(path_a: str, path_b: str, include_env: bool = False) -> list[tuple[str, Any, Any]]:
    """Differences between the options (and with ``include_env`` the environments) of two runs."""
    sections = ("options", "environment") if include_env else ("options",)
    config_a, config_b = load_config(path_a), load_config(path_b)
    picked_a = {s: config_a.get(s, {}) for s in sections}
    picked_b = {s: config_b.get(s, {}) for s in sections}
    if not include_env:
        picked_a, picked_b = picked_a["options"], picked_b["options"]
    return diff_configs(picked_a, picked_b)


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m utils.experiments.configcmp",
        description="Print the config keys that differ between two runs (exit 1 if any differ).",
    )
    parser.add_argument("a", help="a run directory or its config.json")
    parser.add_argument("b", help="another run directory or config.json")
    parser.add_argument(
        "--env", action="store_true", help="also compare the environment (versions, host, commit)"
    )
    args = parser.parse_args(argv)
    try:
        rows = compare(args.a, args.b, include_env=args.env)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not rows:
        print("configs are the same")
        return 0
    name_a = str(resolve_config_path(args.a).parent.name or args.a)
    name_b = str(resolve_config_path(args.b).parent.name or args.b)
    if name_a == name_b:
        name_a, name_b = str(Path(args.a)), str(Path(args.b))
    print(format_table(rows, name_a, name_b))
    return 1


if __name__ == "__main__":
    sys.exit(main())
