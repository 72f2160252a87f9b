"""One table of every run under some directories: when it started, its status, epochs, best
monitored value, training time, test metrics, and only the options that differ between them.

Usage::

    python -m utils.experiments.runs Results/Vanilla
    python -m utils.experiments.runs Results --sort best --filter status=finished --filter lr=0.001
    python -m utils.experiments.runs Results/Vanilla --sort started --reverse
    python -m utils.experiments.runs Results/Vanilla/sweeps/<name> --csv runs.csv

A run is a directory holding what a trainer writes (config.json, status.json, metrics.csv,
train.log, checkpoints) or named by a timestamp, as run dirs are; other directories (a
sweep's, a setting's) are searched. A run whose records cannot be read is listed as
``broken (why)``, never a traceback.

Status comes from status.json (``utils/records/status.py``): finished, stopped early, interrupted,
crashed, non-finite loss, running, or killed (it says running but its process is gone); "not
started" for a run that died before training. Epochs, training time (the sum of the epochs'
``epoch_time``) and, while a run is going or after it was killed, the best value come from
metrics.csv; otherwise the best value is the trainer's own, from status.json. Test metrics
are those an evaluator saved beside the best checkpoint (else beside another).
"""

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.cli import ArgumentParser, run_main
from utils.errors import UsageError
from utils.records.config import CONFIG_NAME
from utils.records.history import METRICS_NAME, read_metrics
from utils.records.status import (
    KILLED,
    RUNNING,
    STATUS_NAME,
    StatusError,
    current_state,
    read_status,
)
from utils.table import aligned, write_csv

RUN_FILES = (CONFIG_NAME, STATUS_NAME, METRICS_NAME, "train.log")
TIMESTAMP = re.compile(r"\d{8}-\d{6}(-\d+)?")
# Options the other columns already show: where a run is, its epochs, its monitored metric.
HIDDEN_OPTIONS = frozenset({"output_dir", "resume", "epochs", "monitor"})
NOT_STARTED = "not started"
BROKEN = "broken"


@dataclass
class Run:
    """What a run dir says about its run; ``state`` is :data:`BROKEN` when it cannot be read."""

    path: Path
    name: str = ""  # as the table shows it: the path from the directory listed
    state: str = NOT_STARTED
    detail: str = ""  # the error of a crashed run, why a broken one is
    started: str = ""
    epochs: int | None = None
    max_epochs: int | None = None
    monitor: str | None = None
    mode: str = "min"
    best: float | None = None
    seconds: float | None = None
    memory_mib: float | None = None  # the peak of its epochs
    test: dict[str, float] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return f"{self.state} ({self.detail})" if self.detail else self.state

    @property
    def epochs_text(self) -> str | None:
        return None if self.epochs is None else f"{self.epochs}/{self.max_epochs}"


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run dir: it holds a trainer's records or a timestamp names it."""
    if TIMESTAMP.fullmatch(path.name):
        return True
    return any((path / name).exists() for name in RUN_FILES) or any(path.glob("*_ckpt.pth"))


def find_runs(root: Path) -> list[Path]:
    """The run dirs at or under ``root``, in path order; run dirs are not searched further."""
    if is_run_dir(root):
        return [root]
    found = []
    for child in sorted(root.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            found += find_runs(child)
    return found


def read_run(path: Path) -> Run:
    """Everything the table shows about the run in ``path``; never raises on a broken one."""
    run = Run(path, started=started_from_name(path))
    try:
        read_records(run)
    # Anything written by hand or cut short: a file of the wrong shape fails somewhere.
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as err:
        run.state, run.detail = BROKEN, str(err) or type(err).__name__
    return run


def read_records(run: Run) -> None:
    """Fill ``run`` from its files; a file that cannot be read raises with the reason."""
    config = run.path / CONFIG_NAME
    if not config.exists():
        empty = not any(run.path.iterdir())
        raise ValueError("empty directory" if empty else f"no {CONFIG_NAME}")
    try:
        options = json.loads(config.read_text(encoding="utf-8"))["options"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{CONFIG_NAME} is not a run's config") from None
    if not isinstance(options, dict):
        raise ValueError(f"{CONFIG_NAME} is not a run's config")
    run.options = options
    run.max_epochs = options.get("epochs")
    run.monitor = options.get("monitor")
    run.mode = options.get("monitor_mode", "min")
    try:
        status = read_status(run.path)
    except StatusError as err:
        raise ValueError(str(err)) from None
    if status is not None:
        run.state = current_state(status)
        run.detail = status.get("error") or ""
        run.started = status.get("started", run.started).replace("T", " ")
        run.epochs = status.get("epoch")
        run.best = status.get("best")
    elif any(run.path.glob("*_ckpt.pth")):
        run.state = "unknown"  # written before runs had a status file
    metrics = run.path / METRICS_NAME
    if metrics.exists():
        try:
            rows = read_metrics(metrics)
        except (OSError, ValueError) as err:
            raise ValueError(f"{METRICS_NAME} is not readable ({err})") from None
        read_history(run, rows)
    run.test = read_test_metrics(run.path)


def read_history(run: Run, rows: list[dict[str, float]]) -> None:
    """Epochs and training time from metrics.csv; the best value too where the status file
    has not recorded it at the end of the run."""
    run.epochs = rows[-1]["epoch"] if rows else 0
    run.seconds = sum(row.get("epoch_time", 0.0) for row in rows)
    peaks = [row["memory_peak_mib"] for row in rows if "memory_peak_mib" in row]
    run.memory_mib = max(peaks) if peaks else None  # runs from before it was recorded: none
    values = [row[run.monitor] for row in rows if math.isfinite(row.get(run.monitor, math.nan))]
    if values and (run.best is None or run.state in (RUNNING, KILLED)):
        run.best = min(values) if run.mode == "min" else max(values)


def read_test_metrics(path: Path) -> dict[str, float]:
    """The numbers an evaluator saved for the best checkpoint (else another), as ``test_*``."""
    files = sorted(path.glob("*_best_ckpt_test_metrics.json")) or sorted(
        path.glob("*_test_metrics.json")
    )
    for file in files:
        try:
            metrics = json.loads(file.read_text(encoding="utf-8"))["metrics"]
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            continue  # an evaluation cut short is not the run's record
        return {f"test_{k}": v for k, v in metrics.items() if type(v) is float}
    return {}


def started_from_name(path: Path) -> str:
    """``20261121-194815`` -> ``2026-11-21 19:48:15``; other names give nothing."""
    if not TIMESTAMP.fullmatch(path.name):
        return ""
    d, t = path.name[:8], path.name[9:15]
    return f"{d[:4]}-{d[4:6]}-{d[6:]} {t[:2]}:{t[2:4]}:{t[4:]}"


def differing_options(runs: list[Run]) -> list[str]:
    """The options whose values are not the same in every run (absent counts as a value)."""
    keys = sorted({key for run in runs for key in run.options} - HIDDEN_OPTIONS)
    return [
        key
        for key in keys
        if len({json.dumps(run.options.get(key), sort_keys=True) for run in runs}) > 1
    ]


@dataclass(frozen=True)
class Column:
    """A column of the table: its name, its value in a run, and how the terminal shows it."""

    name: str
    value: Callable[[Run], Any]
    show: Callable[[Any], str] = str


def metric(value: float) -> str:
    return f"{value:.4f}"


def columns(runs: list[Run]) -> list[Column]:
    """The table's columns for ``runs``: the run's record, its test metrics, and the options
    that differ between the runs that could be read."""
    monitors = sorted({run.monitor for run in runs if run.monitor})
    tests = sorted({name for run in runs for name in run.test})
    options = differing_options([run for run in runs if run.state != BROKEN])
    table = [
        Column("run", lambda run: run.name),
        Column("started", lambda run: run.started),
        Column("status", lambda run: run.status),
        Column("epochs", lambda run: run.epochs_text),
    ]
    if len(monitors) > 1:
        table.append(Column("monitor", lambda run: run.monitor))
    best = f"best {monitors[0]}" if len(monitors) == 1 else "best"
    table.append(Column(best, lambda run: run.best, metric))
    table.append(Column("time_s", lambda run: run.seconds, lambda value: f"{value:.1f}"))
    table.append(Column("memory_mib", lambda run: run.memory_mib, lambda value: f"{value:.0f}"))
    table += [Column(name, lambda run, name=name: run.test.get(name), metric) for name in tests]
    table += [Column(key, lambda run, key=key: run.options.get(key)) for key in options]
    return table


def find_column(table: list[Column], name: str) -> Column:
    """The column called ``name``; ``best`` and ``time`` name those columns in any table."""
    for column in table:
        if (
            column.name == name
            or column.name.startswith(f"{name} ")
            or (name == "time" and column.name == "time_s")
        ):
            return column
    known = ", ".join(column.name for column in table)
    raise UsageError(f"no column {name!r} in this table; known: {known}")


def sortable(value: Any) -> tuple[int, Any]:
    """Numbers before text, so a column mixing them still sorts."""
    return (0, value) if isinstance(value, int | float) else (1, str(value))


def sort_runs(runs: list[Run], column: Column, descending: bool) -> list[Run]:
    """``runs`` by ``column``, those without a value last."""
    present = [run for run in runs if column.value(run) is not None]
    present.sort(key=lambda run: sortable(column.value(run)), reverse=descending)
    return present + [run for run in runs if column.value(run) is None]


def matches(value: Any, wanted: str) -> bool:
    """Whether a cell holds ``wanted``: numbers compare as numbers, text as text, and a
    status by its state, so ``status=crashed`` matches ``crashed (OSError: ...)``."""
    if value is None:
        return wanted == ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(wanted) == value
        except ValueError:
            return False
    text = str(value)
    return text == wanted or text.startswith(f"{wanted} (")


def list_runs(roots: list[Path]) -> list[Run]:
    """Every run at or under ``roots``, each named by its path from its root."""
    runs = []
    for root in roots:
        if not root.is_dir():
            raise UsageError(f"{root}: not a directory; expected an output dir or a run dir")
        for path in find_runs(root):
            run = read_run(path)
            run.name = str(path.relative_to(root)) if path != root else path.name
            runs.append(run)
    if not runs:
        raise UsageError(f"no run found under {', '.join(map(str, roots))}")
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m utils.experiments.runs",
        description="List every run under some directories: status, epochs, best value, test "
        "metrics, and the options that differ.",
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="output dirs, sweep dirs or run dirs")
    parser.add_argument(
        "--sort",
        default="started",
        help="column to sort by (status, best, time, a test metric, an option...); best "
        "sorts best first",
    )
    parser.add_argument("--reverse", action="store_true", help="reverse the order")
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep the runs whose column KEY holds VALUE (repeatable), e.g. status=finished",
    )
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    runs = list_runs(args.dirs)
    table = columns(runs)
    for condition in args.filter:
        name, sep, wanted = condition.partition("=")
        if not sep:
            raise UsageError(f"--filter {condition}: expected KEY=VALUE, e.g. status=finished")
        column = find_column(table, name)
        runs = [run for run in runs if matches(column.value(run), wanted)]
    column = find_column(table, args.sort)
    modes = {run.mode for run in runs if run.best is not None}
    best_first = column.name.startswith("best") and modes == {"max"}
    runs = sort_runs(runs, column, descending=args.reverse != best_first)
    values = [[column.value(run) for column in table] for run in runs]
    shown = [
        [("" if v is None else c.show(v)) for c, v in zip(table, row, strict=True)]
        for row in values
    ]
    print(aligned([[column.name for column in table], *shown]))
    if args.csv:
        write_csv(
            args.csv,
            [[c.name for c in table], *([("" if v is None else v) for v in row] for row in values)],
        )
        print(f"written to {args.csv}")


if __name__ == "__main__":
    run_main(main)
