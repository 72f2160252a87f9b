"""Finding the checkpoint to resume, checking that it fits the options, and the resume command."""

import shlex
import sys
from pathlib import Path
from typing import Any

from utils.errors import UsageError
from utils.experiments.configcmp import diff_configs
from utils.records.checkpoint import run_checkpoints
from utils.records.config import CONFIG_NAME, load_config

# Options that may change between a run and its resumption without changing what it computes.
RESUME_FREE_OPTIONS = frozenset(
    {
        "resume",
        "allow_config_change",
        "gpu_devices",
        "num_workers",
        "data_dir",
        "output_dir",
        "cache_dir",
        "save_every_n_steps",
        "nonfinite",
        "fast_dev_run",
        "wandb",
    }
)

# Options that decide which samples the rest of an epoch holds and how its batches group into
# accumulation cycles. A checkpoint written mid-epoch resumes only with the values it was
# written with (and as many processes); at an epoch end they may change.
EPOCH_PLAN_OPTIONS = frozenset(
    {
        "batch_size",
        "accum_steps",
        "seed",
        "split_seed",
        "sampler",
        "data_type",
        "val_ratio",
        "test_ratio",
        "train_val_sample_rate",
        "folds",
        "fold",
    }
)


def find_latest_checkpoint(output_dir: str | Path, proj_name: str) -> Path:
    """``--resume auto``: the newest last/interrupt checkpoint of the newest ``proj_name`` run.

    Runs are the directories in ``output_dir`` whose ``config.json`` names the project; a run
    that died before its first checkpoint is passed over for the one before it.
    """
    output_dir = Path(output_dir)
    runs = []
    for config in output_dir.glob(f"*/{CONFIG_NAME}"):
        try:
            if load_config(config)["options"].get("proj_name") == proj_name:
                runs.append(config)
        except UsageError:
            continue  # a foreign or damaged directory is not a run of this project
    for config in sorted(runs, key=lambda c: c.stat().st_mtime_ns, reverse=True):
        checkpoints = run_checkpoints(config.parent)
        if checkpoints:
            return checkpoints[0]
    raise UsageError(
        f"--resume auto: no checkpoint of a {proj_name!r} run in {output_dir}; expected "
        f"<output_dir>/<timestamp>/<model>_last_ckpt.pth (check --output_dir and --proj_name)"
    )


def option_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, saved, current)`` for each option that differs and may change the results.

    An option the checkpoint has and this run does not is none: a run reads only its own
    entries' options, and runs from before that recorded every entry's.
    """
    return [
        row
        for row in diff_configs(saved, current)
        if row[0] not in RESUME_FREE_OPTIONS and row[0] in current
    ]


def check_resume_options(
    checkpoint: Path, saved: dict[str, Any], current: dict[str, Any], allow: bool
) -> list[tuple[str, Any, Any]]:
    """Refuse to resume with options that differ from the checkpoint's, unless ``allow``.

    Returns the differences (empty when the options match) so the caller can log them.
    """
    changes = option_changes(saved, current)
    if changes and not allow:
        listed = ", ".join(f"{key} {old} -> {new}" for key, old, new in changes)
        raise UsageError(
            f"--resume {checkpoint}: options differ from the run's ({listed}); resume with the "
            "run's options (its logged command has them) or pass --allow_config_change True"
        )
    return changes


def check_mid_epoch_changes(
    checkpoint: Path, position: tuple[int, int], changes: list[tuple[str, Any, Any]]
) -> None:
    """Refuse ``changes`` to the epoch's plan when ``position`` (epoch, batch) is mid-epoch.

    Allowed or not, such a change would repeat or skip samples of the epoch in progress.
    """
    epoch, batch = position
    planned = [row for row in changes if row[0] in EPOCH_PLAN_OPTIONS | {"processes"}]
    if batch == 0 or not planned:
        return
    listed = ", ".join(f"{key} {old} -> {new}" for key, old, new in planned)
    raise UsageError(
        f"--resume {checkpoint}: written in the middle of epoch {epoch + 1} (after batch {batch}), "
        f"where {listed} would repeat or skip samples of that epoch; resume with the run's "
        "values, or change them from a checkpoint written at an epoch end"
    )


def resume_command(checkpoint: Path) -> str:
    """This process's command line with ``--resume <checkpoint>`` in place of any earlier one.

    A script run with ``python -m package.module`` is named the same way.
    """
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True
        elif not arg.startswith("--resume="):
            args.append(arg)
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = ["-m", spec.name.removesuffix(".__main__")] if spec else [sys.argv[0]]
    return shlex.join(["python", *program, *args, "--resume", str(checkpoint)])
