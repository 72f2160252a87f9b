"""The import graph of the project's own modules follows its layout: each layer imports only
from the layers below it, and no module reaches itself through its imports."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. A module imports from its own layer's package and from the layers below.
LAYERS = (
    ("utils",),  # the small helpers: utils/*.py
    ("utils.records",),
    ("utils.experiments",),
    ("utils.loop",),
    ("data", "model", "loss"),
    ("trainer", "eval"),  # the base classes
    ("tasks",),  # the scripts at the top: trainer_*.py, eval_*.py
)


def project_modules() -> dict[str, Path]:
    """Every module of the project outside tests/ and bench/, by dotted name."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[0] in ("tests", "bench") or any(p.startswith(".") for p in parts):
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``path`` imports anywhere in it (functions and type checks too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def layer_of(module: str) -> tuple[int, str]:
    """``(layer index, package)`` of a module: its place in :data:`LAYERS`."""
    for index in reversed(range(len(LAYERS))):
        for package in LAYERS[index]:
            if module == package or module.startswith(f"{package}."):
                if package == "utils" and module.count(".") > 1:
                    continue  # utils.loop.x and the like sit higher up
                return index, package
    return LAYERS.index(("tasks",)), "tasks"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_the_layers_cover_every_folder(graph):
    assert {"utils.loop.run_state", "utils.records.config", "utils.experiments.sweep"} <= set(graph)
    assert layer_of("utils.errors") == (0, "utils")
    assert layer_of("utils.loop.amp") == (3, "utils.loop")
    assert layer_of("trainer_vanilla") == (6, "tasks")


def test_no_import_runs_up_or_sideways(graph):
    wrong = []
    for module, imported in sorted(graph.items()):
        layer, package = layer_of(module)
        for name in sorted(imported):
            other_layer, other_package = layer_of(name)
            if other_layer > layer or (other_layer == layer and other_package != package):
                wrong.append(f"{module} -> {name}")
    assert not wrong


def test_no_module_imports_itself_through_others(graph):
    def reaches(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(graph.get(name, ()))
        return seen

    assert [module for module in graph if module in reaches(module)] == []
