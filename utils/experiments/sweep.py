"""Sweeps: every combination of some option values, over seeds, each a normal run of a task
script, in one directory, with a table of the results.

Usage::

    python -m utils.experiments.sweep trainer_vanilla.py --grid lr=1e-3,3e-3 batch_size=64,128 \\
        --seeds 0,1,2 -- --epochs 5 --data_dir ./Dataset
    python -m utils.experiments.sweep trainer_seg_on_carvana.py --grid base_width=8,16 --gpus 0,1
    python -m utils.experiments.sweep trainer_vanilla.py --grid lr=1e-3,3e-3 --nproc_per_node 2

Options after ``--`` go to every run. Each value of the grid is passed as typed
(``--lr 1e-3``), so any option of the task works, one declared beside a model or dataset
included. The values are checked first, by the task's own parser (``--print_config``), which
also tells where the task's ``--output_dir`` is. The sweep directory::

    <output_dir>/sweeps/<name>/       name: --name, or the script, the keys and a hash of all
        sweep.json                    script, grid, seeds, task args, processes per run
        results.csv                   one row per setting, best first
        lr=1e-3_batch_size=64_seed=0/ the run's --output_dir
            output.log                what the run printed, every attempt
            <timestamp>/              its run dir (config.json, status.json, metrics.csv...)

Runs go one after another, or ``--parallel N`` at once; with ``--gpus 0,1`` each gets its own
GPU (``--gpu_devices i``; under torchrun ``--nproc_per_node`` GPUs through
``CUDA_VISIBLE_DEVICES``). With ``--nproc_per_node N`` each run is launched by torchrun, the
task's options after its ``--``.

Rerunning the same command continues the sweep: a run that finished or stopped early is
skipped, one with a checkpoint (interrupted, killed, crashed) resumes with ``--resume auto``,
any other starts again; another grid under the same name is refused. A failed run is reported
and the others go on. Ctrl-C (or SIGTERM) stops the sweep: the running runs get the signal,
save their checkpoints and exit, and the sweep says which runs will resume; a second Ctrl-C
stops at once. Exit status: 0 when every run finished, 1 if any failed, 130/143 if stopped.

The table takes each run's best monitored value and epochs from its status.json and its time
from its metrics.csv (the sum of the epochs' times), with the mean and standard deviation over
seeds for each setting.
"""

import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import json
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from utils.atomic import atomic_write
from utils.cli import ArgumentParser, positive_int, run_main
from utils.errors import UsageError
from utils.experiments.runs import Run, find_runs, read_run
from utils.records.checkpoint import run_checkpoints
from utils.records.rundir import make_dirs
from utils.records.status import DONE
from utils.signals import stop_notice
from utils.table import aligned, write_csv

SWEEP_NAME, RESULTS_NAME, OUTPUT_NAME, LOCK_NAME = (
    "sweep.json",
    "results.csv",
    "output.log",
    ".lock",
)
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Options the sweep sets for each run; the grid and the task args leave them alone.
SWEEP_OWNS = ("output_dir", "resume")
POLL_SECONDS = 0.2
INTERRUPTED_CODES = (130, 143, -signal.SIGINT, -signal.SIGTERM)


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs; two commands with the same spec are the same sweep."""

    script: str
    grid: dict[str, list[str]]
    seeds: list[int] | None
    task_args: list[str]
    nproc_per_node: int | None


@dataclass
class SweepRun:
    """One run of the sweep: a setting of the grid and a seed, in its own output dir."""

    setting: tuple[tuple[str, str], ...]
    seed: int | None
    out: Path

    @property
    def name(self) -> str:
        return self.out.name

    def args(self) -> list[str]:
        """The task options of this run, after the sweep's task args."""
        args = [arg for key, value in self.setting for arg in (f"--{key}", value)]
        if self.seed is not None:
            args += ["--seed", str(self.seed)]
        return [*args, "--output_dir", str(self.out)]

    def records(self) -> list[Run]:
        """What each run dir in this run's output dir says, oldest first."""
        return [read_run(path) for path in find_runs(self.out)] if self.out.is_dir() else []

    def result(self) -> Run | None:
        """The newest of its run dirs that finished or stopped early, if any."""
        done = [run for run in self.records() if run.state in DONE]
        return done[-1] if done else None

    def resumable(self) -> bool:
        """Whether a run dir here holds a checkpoint to resume from."""
        return any(run_checkpoints(run.path) for run in self.records())

    def next_step(self) -> str:
        """What the sweep does with this run now: ``skip`` it (it finished or stopped early),
        ``resume`` it from its checkpoint, or ``start`` it (again)."""
        if self.result() is not None:
            return "skip"
        return "resume" if self.resumable() else "start"


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["lr=1e-3,3e-3", "batch_size=64"]`` -> ``{"lr": ["1e-3", "3e-3"],
    "batch_size": ["64"]}``; values stay text, passed to the task as typed."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        values = text.split(",")
        if not sep or not KEY.fullmatch(key) or "" in values:
            raise UsageError(f"--grid {item}: expected KEY=VALUE[,VALUE...], e.g. lr=1e-3,3e-3")
        if key in grid:
            raise UsageError(f"--grid {key}: given twice; list all its values in one KEY=...")
        if len(set(values)) < len(values):
            raise UsageError(f"--grid {item}: a value is listed twice")
        if key in SWEEP_OWNS or key == "seed":
            raise UsageError(
                f"--grid {key}: the sweep sets --{key} of each run"
                + ("; sweep seeds with --seeds" if key == "seed" else "")
            )
        grid[key] = values
    return grid


def parse_ints(text: str, flag: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; anything else is a UsageError naming ``flag``."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f"{flag} {text}: expected integers separated by commas") from None
    if len(set(values)) < len(values):
        raise UsageError(f"{flag} {text}: a value is listed twice")
    return values


def check_task_args(args: list[str], owned: Sequence[str]) -> None:
    """Refuse task args that set what the grid or the sweep sets for each run."""
    for key in owned:
        if any(arg == f"--{key}" or arg.startswith(f"--{key}=") for arg in args):
            raise UsageError(
                f"--{key} after --: the sweep sets it for each run (from --grid, --seeds, "
                "--gpus, or --resume when it continues one); drop it from the task args"
            )


def dir_name(text: str) -> str:
    """``text`` with what a directory name should not hold (``/``, spaces) as ``-``."""
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", text)


def plan_runs(spec: SweepSpec, sweep_dir: Path) -> list[SweepRun]:
    """Every run of the sweep: each seed's pass over every setting, so that a sweep stopped
    early has seen the settings once before it repeats them."""
    keys = list(spec.grid)
    settings = [
        tuple(zip(keys, values, strict=True)) for values in itertools.product(*spec.grid.values())
    ]
    runs = []
    for seed in spec.seeds or [None]:
        for setting in settings:
            parts = [f"{key}={value}" for key, value in setting]
            parts += [] if seed is None else [f"seed={seed}"]
            runs.append(SweepRun(setting, seed, sweep_dir / dir_name("_".join(parts))))
    names = [run.name for run in runs]
    if len(set(names)) < len(names):
        raise UsageError("--grid: two values give the same directory name; use plainer values")
    return runs


def default_name(spec: SweepSpec) -> str:
    """The script, the swept keys and a hash of the whole spec, e.g.
    ``trainer_vanilla-lr-batch_size-3f9a2c1b``: the same command finds the same dir."""
    digest = hashlib.sha1(json.dumps(dataclasses.asdict(spec), sort_keys=True).encode())
    keys = list(spec.grid) or ["seeds"]
    return "-".join([Path(spec.script).stem, *keys, digest.hexdigest()[:8]])


def task_command(spec: SweepSpec, args: list[str]) -> list[str]:
    """The command that runs the task with ``args``; under torchrun, after its ``--``, as
    torchrun would take an option such as ``--monitor`` for its own ``--monitor-interval``."""
    if spec.nproc_per_node is None:
        return [sys.executable, spec.script, *args]
    launcher = ["-m", "torch.distributed.run", "--standalone"]
    launcher += ["--nproc_per_node", str(spec.nproc_per_node)]
    return [sys.executable, *launcher, spec.script, "--", *args]


def resolved_options(spec: SweepSpec) -> dict[str, Any]:
    """Check every grid value with the task's own parser and return the options of the first
    setting (output_dir, monitor...); a value it refuses is a UsageError.

    ``max(len(values))`` settings cover every value of every key, each checked by one
    ``--print_config`` process; they run at once, as each mostly waits for imports.
    """
    count = max((len(values) for values in spec.grid.values()), default=1)
    checks = []
    for i in range(count):
        setting = {key: values[i % len(values)] for key, values in spec.grid.items()}
        args = [arg for key, value in setting.items() for arg in (f"--{key}", value)]
        command = [sys.executable, spec.script, *spec.task_args, *args, "--print_config"]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        checks.append((setting, process))
    printed = []
    try:
        for setting, process in checks:
            out, err = process.communicate()
            if process.returncode != 0:
                lines = err.strip().splitlines() or [f"exit status {process.returncode}"]
                given = " ".join(f"{k}={v}" for k, v in setting.items()) or "its args"
                error = lines[-1].removeprefix("error: ")
                raise UsageError(f"{spec.script} refused {given}: {error}")
            printed.append(out)
    finally:
        for _, process in checks:
            process.kill()  # those not yet waited for, after a refusal
            process.wait()
    try:
        return json.loads(printed[0])["options"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UsageError(
            f"{spec.script}: --print_config did not print the options; expected a task script "
            "whose parser is trainer.build_parser's"
        ) from None


def open_sweep_dir(sweep_dir: Path, spec: SweepSpec) -> None:
    """Create the sweep dir with its sweep.json, or check that the one there is this sweep."""
    record = sweep_dir / SWEEP_NAME
    wanted = dataclasses.asdict(spec)
    if record.exists():
        try:
            saved = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"{record} is not readable JSON ({err})") from None
        different = [key for key in wanted if saved.get(key) != wanted[key]]
        if different:
            listed = ", ".join(f"{key} {saved.get(key)} -> {wanted[key]}" for key in different)
            raise UsageError(
                f"{sweep_dir} holds another sweep ({listed}); rerun its command or pass --name"
            )
        return
    try:
        make_dirs(sweep_dir)
    except OSError as err:
        raise UsageError(f"{sweep_dir}: cannot create it ({err.strerror})") from None
    text = json.dumps({**wanted, "created": datetime.now().isoformat(timespec="seconds")}, indent=2)
    atomic_write(record, lambda f: f.write((text + "\n").encode()))


@contextlib.contextmanager
def locked(sweep_dir: Path) -> Iterator[None]:
    """Hold the sweep dir for this process: a second sweep on it is refused in one line. The
    lock goes with the process, however it ends."""
    with open(sweep_dir / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{sweep_dir}: another sweep is running there") from None
        yield


class Scheduler:
    """Runs the sweep's runs, ``parallel`` at a time, each in a session of its own: the
    terminal's Ctrl-C reaches the sweep alone, which passes it on once."""

    def __init__(self, spec: SweepSpec, parallel: int | None, gpus: list[int] | None) -> None:
        """``parallel`` runs at once; by default 1, or one per group of ``--nproc_per_node``
        of the ``gpus``."""
        self.spec = spec
        per_run = spec.nproc_per_node or 1
        gpus = gpus or []
        self.gpu_groups = [
            gpus[i : i + per_run] for i in range(0, len(gpus) - per_run + 1, per_run)
        ]
        self.parallel = parallel or max(1, len(self.gpu_groups))
        self.running: dict[int, tuple[SweepRun, subprocess.Popen]] = {}  # by slot
        self.stop_signal: int | None = None
        self.failed: list[SweepRun] = []

    def run(self, runs: list[SweepRun]) -> None:
        """Run or skip each of ``runs``; return when all are done or a signal stopped them."""
        pending, done = deque(runs), 0
        with self.signals():
            while pending or self.running:
                free = [slot for slot in range(self.parallel) if slot not in self.running]
                while pending and free and self.stop_signal is None:
                    run = pending.popleft()
                    step = run.next_step()
                    if step != "skip":
                        self.launch(free.pop(0), run, resume=step == "resume")
                        continue
                    done += 1
                    say(f"[{done}/{len(runs)}] {run.name}: {describe(run.result())}, skipped")
                for slot, (run, process) in list(self.running.items()):
                    if process.poll() is not None:
                        del self.running[slot]
                        done += 1
                        self.report(run, process.returncode, f"[{done}/{len(runs)}]")
                if self.stop_signal is not None and not self.running:
                    return
                time.sleep(POLL_SECONDS)

    def launch(self, slot: int, run: SweepRun, resume: bool) -> None:
        """Start ``run`` in ``slot``, or ``resume`` it with ``--resume auto``."""
        args = [*self.spec.task_args, *run.args(), *(["--resume", "auto"] if resume else [])]
        env = dict(os.environ)
        if self.gpu_groups:
            group = self.gpu_groups[slot % len(self.gpu_groups)]
            if self.spec.nproc_per_node is None:
                args += ["--gpu_devices", str(group[0])]
            else:  # torchrun's processes take the GPU of their local rank among these
                env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, group))
        command = task_command(self.spec, args)
        make_dirs(run.out)
        with open(run.out / OUTPUT_NAME, "a", encoding="utf-8") as output:
            output.write(
                f"=== {datetime.now().isoformat(timespec='seconds')} {shlex.join(command)}\n"
            )
            output.flush()
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.running[slot] = (run, process)
        say(f"{run.name}: {'resumed' if resume else 'started'}")

    def report(self, run: SweepRun, code: int, counter: str) -> None:
        """Say how ``run`` ended; a failure is remembered, and named with its error line."""
        result = run.result()
        if result is not None:
            say(f"{counter} {run.name}: {describe(result)}")
        elif code in INTERRUPTED_CODES:
            say(f"{counter} {run.name}: interrupted")
        else:
            self.failed.append(run)
            say(
                f"{counter} {run.name}: failed (exit {code}): {last_error(run)}; "
                f"see {run.out / OUTPUT_NAME}"
            )

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM go to :meth:`handle` while the runs go."""
        previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """Pass the signal on to every running run, which saves and exits, and start no more.
        A second Ctrl-C is passed on too (the runs stop at once) and stops the sweep."""
        again = self.stop_signal is not None
        self.stop_signal = self.stop_signal or signum
        for _, process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)
        if again and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not again:
            # Straight to the descriptor, as utils/signals.py does: a handler may run in the
            # middle of a print.
            doing = f"the {len(self.running)} running runs save a checkpoint and stop"
            os.write(2, stop_notice(signum, doing))


def say(text: str) -> None:
    print(text, flush=True)


def describe(run: Run) -> str:
    """How a run ended, for a progress line: ``finished: best val_acc 0.8512, epochs 3, 12.3 s``."""
    best = "-" if run.best is None else f"{run.best:.4f}"
    seconds = "-" if run.seconds is None else f"{run.seconds:.1f} s"
    return f"{run.state}: best {run.monitor} {best}, epochs {run.epochs}, {seconds}"


def last_error(run: SweepRun) -> str:
    """The last ``error:`` line the run printed, else its last line."""
    try:
        lines = (run.out / OUTPUT_NAME).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no output"
    lines = [line.strip() for line in lines if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no output"])[-1][:300]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation; None where there are too few values."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


@dataclass(frozen=True)
class Setting:
    """The results of one setting over its seeds: mean and standard deviation of the best
    monitored value, the epochs and the time of its runs that finished."""

    values: tuple[str, ...]
    finished: int
    runs: int
    best: tuple[float | None, float | None]
    epochs: tuple[float | None, float | None]
    seconds: tuple[float | None, float | None]


def summarize(runs: list[SweepRun], mode: str) -> list[Setting]:
    """One :class:`Setting` per setting of ``runs``, best first (``mode``: min or max)."""
    by_setting: dict[tuple, list[Run]] = {}
    for run in runs:
        by_setting.setdefault(run.setting, []).append(run.result())
    settings = []
    for setting, results in by_setting.items():
        done = [result for result in results if result is not None]
        settings.append(
            Setting(
                values=tuple(value for _, value in setting),
                finished=len(done),
                runs=len(results),
                best=mean_std([r.best for r in done if r.best is not None]),
                epochs=mean_std([float(r.epochs) for r in done if r.epochs is not None]),
                seconds=mean_std([r.seconds for r in done if r.seconds is not None]),
            )
        )
    sign = -1 if mode == "max" else 1
    return sorted(settings, key=lambda s: math.inf if s.best[0] is None else sign * s.best[0])


def results_csv(keys: list[str], monitor: str, settings: list[Setting]) -> list[list[Any]]:
    """The rows of results.csv, header first; every number with all its digits."""
    header = [*keys, "runs", f"{monitor}_mean", f"{monitor}_std", "epochs_mean", "epochs_std"]
    rows = [[*header, "time_s_mean", "time_s_std"]]
    for s in settings:
        numbers = [*s.best, *s.epochs, *s.seconds]
        rows.append(
            [*s.values, f"{s.finished}/{s.runs}", *("" if n is None else n for n in numbers)]
        )
    return rows


def results_text(keys: list[str], monitor: str, settings: list[Setting]) -> str:
    """The table the terminal shows: ``mean ± std`` in one column each."""

    def pair(mean_and_std: tuple[float | None, float | None], digits: int) -> str:
        mean, std = mean_and_std
        if mean is None:
            return ""
        return f"{mean:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")

    rows = [[*keys, "runs", f"best {monitor}", "epochs", "time_s"]]
    for s in settings:
        counts = f"{s.finished}/{s.runs}"
        rows.append([*s.values, counts, pair(s.best, 4), pair(s.epochs, 1), pair(s.seconds, 1)])
    return aligned(rows)


def build_sweep_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="python -m utils.experiments.sweep",
        description="Run a task script over a grid of option values and seeds, resumably, and "
        "tabulate the results. Options after -- go to every run.",
    )
    parser.add_argument("script", help="the task script, e.g. trainer_vanilla.py")
    parser.add_argument(
        "--grid",
        nargs="+",
        default=[],
        metavar="KEY=V1,V2",
        help="option values to combine, e.g. lr=1e-3,3e-3 batch_size=64,128",
    )
    parser.add_argument("--seeds", default=None, help="seeds of each setting, e.g. 0,1,2")
    parser.add_argument(
        "--name", default=None, help="the sweep dir's name; default: script, keys and a hash"
    )
    parser.add_argument(
        "--parallel",
        type=positive_int,
        default=None,
        help="runs at once; default 1, or one per GPU (group) of --gpus",
    )
    parser.add_argument(
        "--gpus", default=None, help="GPU ids, e.g. 0,1: each run gets its own (--gpu_devices)"
    )
    parser.add_argument(
        "--nproc_per_node",
        type=positive_int,
        default=None,
        help="launch each run with torchrun and this many processes",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = build_sweep_parser().parse_args(argv[:split])
    task_args = argv[split + 1 :]
    grid = parse_grid(args.grid)
    seeds = parse_ints(args.seeds, "--seeds") if args.seeds else None
    gpus = parse_ints(args.gpus, "--gpus") if args.gpus else None
    if not grid and not seeds:
        raise UsageError("nothing to sweep: give --grid KEY=V1,V2, --seeds 0,1,2 or both")
    if not Path(args.script).is_file():
        raise UsageError(f"{args.script}: no such task script")
    if gpus and len(gpus) < (args.nproc_per_node or 1):
        raise UsageError(f"--gpus {args.gpus}: fewer GPUs than --nproc_per_node")
    # The task's --output_dir is where the sweep dir goes; each run gets its own below it.
    owned = [*grid, "resume", *(["seed"] if seeds else []), *(["gpu_devices"] if gpus else [])]
    check_task_args(task_args, owned)
    spec = SweepSpec(args.script, grid, seeds, task_args, args.nproc_per_node)
    name = args.name or default_name(spec)
    if name != dir_name(name) or name in (".", ".."):
        raise UsageError(f"--name {name}: expected a plain directory name")
    options = resolved_options(spec)
    sweep_dir = Path(options["output_dir"]) / "sweeps" / name
    open_sweep_dir(sweep_dir, spec)
    scheduler = Scheduler(spec, args.parallel, gpus)
    with locked(sweep_dir):
        code = run_sweep(scheduler, plan_runs(spec, sweep_dir), sweep_dir, options)
    sys.exit(code)


def run_sweep(
    scheduler: Scheduler, runs: list[SweepRun], sweep_dir: Path, options: dict[str, Any]
) -> int:
    """Run the sweep, write and print its table; return the exit status."""
    say(f"sweep {sweep_dir}: {len(runs)} runs, {scheduler.parallel} at a time")
    start = time.perf_counter()
    try:
        scheduler.run(runs)
    except KeyboardInterrupt:
        say("stopped at once; the runs save what they have")
    keys = list(scheduler.spec.grid)
    settings = summarize(runs, options["monitor_mode"])
    write_csv(sweep_dir / RESULTS_NAME, results_csv(keys, options["monitor"], settings))
    say(results_text(keys, options["monitor"], settings))
    say(f"written to {sweep_dir / RESULTS_NAME}; {time.perf_counter() - start:.0f} s")
    if scheduler.stop_signal is not None:
        left = [run for run in runs if run.result() is None]
        resumable = sum(run.resumable() for run in left)
        say(
            f"stopped with {len(left)} runs to go, {resumable} of them from a checkpoint: "
            "rerun the same command to continue"
        )
        return 128 + scheduler.stop_signal
    if scheduler.failed:
        say(f"failed: {', '.join(run.name for run in scheduler.failed)}")
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
