"""Tests for utils.registry and the parser of a task's options: entries found by importing
their package, lookup by name, and each entry's options kept to the runs that select it."""

import json
import sys
from dataclasses import dataclass

import pytest

from utils.errors import UsageError
from utils.experiments.config_file import ConfigFileParser
from utils.loop.options import TaskParser
from utils.registry import Registry, declared_options, lookup

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


@dataclass(frozen=True)
class Entry:
    value: int
    options: tuple = ()


def width(group):
    group.add_argument("--width", type=int, default=8, help="shared width")


def depth(group):
    group.add_argument("--depth", type=int, default=2, help="B's depth")


ENTRY_FILE = """
from test_registry import Entry
from {package} import REGISTRY

REGISTRY.register({name!r}, Entry({value}))
"""


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package ``plugins`` on the path with a registry and no entries yet; yields a function
    that writes one module registering an entry."""
    root = tmp_path / "plugins"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from utils.registry import Registry\nREGISTRY = Registry('thing_type', 'plugins', 't')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield lambda module, name, value: (root / f"{module}.py").write_text(
        ENTRY_FILE.format(package="plugins", name=name, value=value)
    )
    for name in [m for m in sys.modules if m == "plugins" or m.startswith("plugins.")]:
        del sys.modules[name]


def test_entries_are_found_by_importing_every_module_of_the_package(package):
    package("b_file", "Beta", 2)
    package("a_file", "Alpha", 1)
    import plugins

    assert "plugins.a_file" not in sys.modules  # nothing is imported before the first use
    assert list(plugins.REGISTRY) == ["Alpha", "Beta"]
    assert plugins.REGISTRY.lookup("Beta") == Entry(2)
    with pytest.raises(UsageError, match="unknown thing_type 'Gamma'; known: Alpha, Beta"):
        plugins.REGISTRY.lookup("Gamma")


def test_a_name_registered_twice_names_both_entries(package):
    package("a_file", "Alpha", 1)
    package("b_file", "Alpha", 2)
    import plugins

    with pytest.raises(
        ValueError, match=r"--thing_type 'Alpha' is registered twice: by .*1.* by .*2"
    ):
        list(plugins.REGISTRY)


def registry_of(**entries) -> Registry:
    registry = Registry("model_type", "model", "model")
    registry._found = True  # these entries alone: the package is not searched
    for name, entry in entries.items():
        registry.register(name, entry)
    return registry


def test_a_declarer_shared_by_entries_is_called_once_in_a_group_naming_them():
    registry = registry_of(A=Entry(0, (width,)), B=Entry(1, (width, depth)), C=Entry(2))
    parser = ConfigFileParser()
    registry.add_options(parser)
    groups = {g.title: [a.dest for a in g._group_actions] for g in parser._action_groups}
    assert groups["model options (A, B)"] == ["width"]
    assert groups["model options (B)"] == ["depth"]
    assert declared_options((width, depth)) == {"width", "depth"}
    assert registry.owners() == {"width": ["A", "B"], "depth": ["B"]}


def task_parser() -> TaskParser:
    registry = registry_of(A=Entry(0, (width,)), B=Entry(1, (width, depth)), C=Entry(2))
    parser = TaskParser(selectors=(registry,))
    parser.add_argument("--model_type", default="A", choices=list(registry))
    parser.add_argument("--lr", type=float, default=0.1)
    registry.add_options(parser)
    return parser


def test_a_run_keeps_the_options_of_the_entry_it_selects():
    parser = task_parser()
    assert vars(parser.parse_args([])) == {"model_type": "A", "lr": 0.1, "width": 8}
    assert vars(parser.parse_args(["--model_type", "B", "--depth", "3"])) == {
        "model_type": "B",
        "lr": 0.1,
        "width": 8,
        "depth": 3,
    }
    assert vars(parser.parse_args(["--model_type", "C"])) == {"model_type": "C", "lr": 0.1}


def test_another_entrys_option_is_one_line_naming_the_entries_that_declare_it(tmp_path, capsys):
    parser = task_parser()
    with pytest.raises(SystemExit):  # an abbreviation names it as well
        parser.parse_args(["--model_type", "C", "--wid", "4"])
    assert "--width (on the command line) is an option of" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--model_type", "C", "--width=4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--width (on the command line) is an option of --model_type A or B; " in err
    assert "this run's --model_type is C" in err and err.count("\n") == 1

    options = tmp_path / "options.json"
    options.write_text(json.dumps({"model_type": "A", "depth": 5}))
    with pytest.raises(SystemExit):
        parser.parse_args(["--config", str(options)])
    assert (
        f"--depth (in --config {options}) is an option of --model_type B" in capsys.readouterr().err
    )


def test_a_run_config_recording_other_entries_options_is_taken_without_them(tmp_path):
    """A run's config.json from before entries owned their options holds them all."""
    run = tmp_path / "config.json"
    run.write_text(json.dumps({"options": {"model_type": "A", "lr": 0.5, "width": 3, "depth": 7}}))
    opt = task_parser().parse_args(["--config", str(run)])
    assert vars(opt) == {"model_type": "A", "lr": 0.5, "width": 3}


def test_a_twice_registered_name_names_each_builders_module():
    registry = registry_of()
    first = type("Entry", (), {"build": staticmethod(lambda opt: None), "options": ()})()
    registry.register("A", first)
    second = type("Entry", (), {"build": staticmethod(len), "options": ()})()
    with pytest.raises(ValueError, match=r"by test_registry\..*<lambda> and by builtins\.len"):
        registry.register("A", second)
