"""A run's checkpoints: the one ``--resume`` continues from, what a checkpoint holds and how a
run takes it back, each DDP rank's own part, and the interrupt checkpoint of a stopped run.

:class:`RunState` works on a trainer's objects (its model, optimizer, scaler, early stopper,
counters and meters) as a checkpoint connector: the trainer holds them and drives the loop,
this module knows how they go into a file and come back.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from utils.errors import NonFiniteLossError, UsageError
from utils.experiments.configcmp import format_table
from utils.loop.distributed import DistInfo, broadcast_object, gather_to_main
from utils.loop.optimizer import load_optimizer_state
from utils.loop.resume import (
    check_mid_epoch_changes,
    check_resume_options,
    find_latest_checkpoint,
    resume_command,
)
from utils.records.checkpoint import (
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    unwrap_model,
)
from utils.records.config import with_stand_ins
from utils.records.rundir import make_run_dir
from utils.seed import rng_state, seed_everything, set_rng_state
from utils.signals import StopRequested

if TYPE_CHECKING:
    from argparse import Namespace

    from utils.loop.cycles import Cycles
    from utils.loop.earlystopper import EarlyStopper
    from utils.loop.ema import WeightAverage
    from utils.loop.guard import RunGuard
    from utils.loop.meter import MeterGroup


class Trainer(Protocol):
    """The state of a trainer (``trainer.TrainerBase``) that its checkpoints write and read."""

    opt: "Namespace"
    dist: DistInfo
    data: Any  # the run's DataSplits, whose ``info`` checkpoints keep
    net: nn.Module  # the model as built (compiled where asked), without DDP
    model: nn.Module  # what the loop calls: ``net``, or ``net`` wrapped for several GPUs
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    ema: "WeightAverage | None"  # --ema: the average of the weights
    stopper: "EarlyStopper"
    guard: "RunGuard"
    cycles: "Cycles"
    amp: tuple[str, str]
    channels_last: bool
    run_dir: Path
    epoch: int
    batch_in_epoch: int
    global_step: int
    epoch_meters: "MeterGroup"
    epoch_skipped: int
    epoch_seconds_before: float
    epoch_start: float | None
    started_at: tuple[int, int]
    metrics: dict[str, float]

    def save(self, kind: str, every_rank_here: bool = True) -> Path: ...


log = logging.getLogger(__name__)

# What RunState.state_dict writes and a resume needs. Under DDP a checkpoint also holds
# "ranks": every rank's rank_state(), in rank order.
STATE_KEYS = (
    "model",
    "optimizer",
    "stopper",
    "epoch",
    "batch_in_epoch",
    "global_step",
    "epoch_meters",
    "epoch_skipped",
    "metrics",
    "config",
    "rng",
    "scaler",
)


@dataclass(frozen=True)
class Resume:
    """The checkpoint a run continues from, and the options it lets change."""

    path: Path
    state: dict[str, Any]
    changes: list[tuple[str, Any, Any]]  # (option, checkpoint's value, now)


def read_resume(opt: "Namespace", dist: DistInfo) -> Resume | None:
    """The ``--resume`` checkpoint (``auto``: the project's newest), if its options fit.

    Options that change the results must equal the checkpoint's unless
    ``--allow_config_change``; those that decide the batches of an epoch (and the number of
    processes) may not change in the middle of one.
    """
    if not opt.resume:
        return None
    path = None
    if opt.resume != "auto":
        path = Path(opt.resume)
    elif dist.is_main:
        path = find_latest_checkpoint(opt.output_dir, opt.proj_name)
    path = broadcast_object(path, dist)
    state = load_checkpoint(path)
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise UsageError(
            f"--resume {path}: lacks {', '.join(missing)}; expected a checkpoint written by "
            "this version of the trainer (weights alone can be evaluated, not resumed)"
        )
    saved = with_stand_ins(state["config"])
    for option in saved.keys() - state["config"].keys():  # the run predates the option
        setattr(opt, option, saved[option])
        log.info("--resume: a run from before --%s keeps %s", option, saved[option])
    changes = check_resume_options(path, saved, vars(opt), opt.allow_config_change)
    processes = state.get("world_size", 1)  # may change freely at an epoch end
    moved = [("processes", processes, dist.world_size)] if processes != dist.world_size else []
    check_mid_epoch_changes(path, (state["epoch"], state["batch_in_epoch"]), changes + moved)
    return Resume(path, state, changes)


def open_run_dir(opt: "Namespace", dist: DistInfo, resume: Resume | None) -> Path:
    """The checkpoint's run dir on resume, else a new one that rank 0 creates."""
    if resume is not None:
        return resume.path.parent
    return broadcast_object(make_run_dir(opt.output_dir) if dist.is_main else None, dist)


class RunState:
    """Writes and reads the checkpoints of ``trainer``'s run.

    It also remembers the state after the last optimizer step (:meth:`commit`): an exception
    may come in the middle of a step or an accumulation cycle, and the interrupt checkpoint
    then holds that state, whose batches a resumed run trains again.
    """

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        # Every rank's rank_state() at the (epoch, batch) where rank 0 last gathered them.
        self.gathered: tuple[tuple[int, int], list[dict[str, Any]]] | None = None
        self.committed: tuple[int, int, int, Any] | None = None

    def path(self, kind: str) -> Path:
        """``<run_dir>/<model_type>_<kind>_ckpt.pth`` for kind best, last or interrupt."""
        trainer = self.trainer
        return trainer.run_dir / f"{trainer.opt.model_type}_{kind}_ckpt.pth"

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on; only tensors and plain containers.

        The lr schedule needs no state of its own: it follows from the options and the step.
        """
        t = self.trainer
        return {
            **self.weights(),
            "optimizer": t.optimizer.state_dict(),
            "scaler": t.scaler.state_dict(),
            "stopper": t.stopper.state_dict(),
            "epoch": t.epoch,
            "batch_in_epoch": t.batch_in_epoch,
            "global_step": t.global_step,
            "metrics": t.metrics,
            "config": vars(t.opt),
            "data": t.data.info.state_dict(),  # for prediction; not needed to resume
            "precision": {"amp": t.amp[0], "channels_last": t.channels_last},
            "world_size": t.dist.world_size,
            "epoch_seconds": self.epoch_seconds(),
            **self.rank_state(),
        }

    def weights(self) -> dict[str, Any]:
        """``model``: the weights to evaluate and predict with. With ``--ema`` that is the
        average, and the weights the optimizer trains are kept as ``trained_model``."""
        t = self.trainer
        trained = unwrap_model(t.model).state_dict()
        if t.ema is None:
            return {"model": trained}
        return {
            "model": t.ema.module.state_dict(),
            "trained_model": trained,
            "ema_updates": t.ema.updates,
        }

    def epoch_seconds(self) -> float:
        """How long the epoch in progress has taken so far (0 at an epoch end): a run resumed
        in its middle reports the whole epoch's time."""
        t = self.trainer
        if not t.batch_in_epoch or t.epoch_start is None:
            return 0.0
        return time.perf_counter() - t.epoch_start

    def rank_state(self) -> dict[str, Any]:
        """What differs between DDP ranks: the RNG streams and the epoch's running meters."""
        t = self.trainer
        meters = t.epoch_meters.state_dict()
        return {"rng": rng_state(), "epoch_meters": meters, "epoch_skipped": t.epoch_skipped}

    def load(self, resume: Resume) -> None:
        """Restore what :meth:`state_dict` saved (checked for every entry on reading).

        Options changed with ``--allow_config_change`` take effect: the optimizer keeps its
        moments but takes the new hyperparameters (another ``--optimizer`` starts afresh), the
        lr follows the new schedule from the step reached, another ``--monitor`` starts a new
        best, and another ``--seed`` restarts the random streams from it.

        Under DDP each rank takes its own RNG states and meters when the checkpoint has them
        for this many ranks; otherwise rank 0 takes the saved ones and the other ranks keep
        their seeded streams and start their meters empty.
        """
        t, state = self.trainer, resume.state
        trained = state.get("trained_model", state["model"])
        load_model_state(t.model, trained, f"checkpoint {resume.path}")
        if t.ema is not None:  # a checkpoint saved without --ema starts the average afresh
            averaged = "trained_model" in state
            t.ema.load(state["model"] if averaged else trained, state.get("ema_updates", 0))
        changed = {key for key, _, _ in resume.changes}
        if "optimizer" in changed:
            self.note_change("optimizer", "its state (momenta, moments) starts empty")
        else:
            load_optimizer_state(t.optimizer, state["optimizer"])
        if state["scaler"]:
            t.scaler.load_state_dict(state["scaler"])
        if changed & {"monitor", "monitor_mode"}:
            self.note_change("monitor", "the best value and the patience count start afresh")
        else:
            t.stopper.load_state_dict(state["stopper"])
        t.epoch, t.batch_in_epoch = state["epoch"], state["batch_in_epoch"]
        t.epoch_seconds_before = state.get("epoch_seconds", 0.0)  # absent before it was kept
        t.global_step, t.metrics = state["global_step"], state["metrics"]
        t.scheduler.seek(t.cycles.done(t.epoch, t.batch_in_epoch))
        ranks = state.get("ranks", [])
        if len(ranks) == t.dist.world_size:
            self.load_rank_state(ranks[t.dist.rank])
        elif t.dist.is_main:
            self.load_rank_state(state)
        if "seed" in changed:
            self.note_change("seed", "the random streams restart from the new seed")
            seed_everything(t.opt.seed + t.dist.rank, t.opt.deterministic)
        if resume.changes and t.dist.is_main:
            log.warning(
                "resuming with changed options (--allow_config_change), in effect from here:\n%s",
                format_table(resume.changes, "checkpoint", "now"),
            )

    def note_change(self, option: str, effect: str) -> None:
        """Log what changing ``option`` on resume does beyond taking its new value."""
        if self.trainer.dist.is_main:
            log.warning("--%s changed on resume: %s", option, effect)

    def load_rank_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`rank_state` saved."""
        self.trainer.epoch_meters.load_state_dict(state["epoch_meters"])
        self.trainer.epoch_skipped = state["epoch_skipped"]
        set_rng_state(state["rng"])

    def gather(self) -> list[dict[str, Any]] | None:
        """Every rank's :meth:`rank_state` on rank 0 (None elsewhere); every rank calls this.

        Rank 0 keeps them with the position they belong to: an exception there before the
        next optimizer step can save a checkpoint from which every rank resumes exactly.
        """
        t = self.trainer
        ranks = gather_to_main(self.rank_state(), t.dist)
        if ranks is not None:
            self.gathered = ((t.epoch, t.batch_in_epoch), ranks)
        return ranks

    def save(self, kind: str, every_rank_here: bool = True) -> Path:
        """Write the ``kind`` checkpoint (rank 0 only); never one of non-finite weights.

        Under DDP, ``every_rank_here`` says that all ranks call this at the same point, so
        they can agree on non-finite losses and rank 0 can gather their :meth:`rank_state`;
        pass False where only some ranks may (after an exception), and rank 0 saves what it
        gathered last if that is still the current position.
        """
        t, path, ranks = self.trainer, self.path(kind), None
        if every_rank_here:
            t.guard.check_nonfinite()
            if t.dist.enabled:
                ranks = self.gather()
        else:
            t.guard.raise_if_nonfinite()
            if not all(torch.isfinite(p).all() for p in t.net.parameters()):
                raise NonFiniteLossError("the weights are not finite (a NaN on another rank?)")
            if self.gathered and self.gathered[0] == (t.epoch, t.batch_in_epoch):
                ranks = self.gathered[1]
        if t.dist.is_main:
            state = self.state_dict()
            if ranks is not None:
                state["ranks"] = ranks
            save_checkpoint(path, state)
        return path

    def commit(self) -> None:
        """Remember the state after the last optimizer step (or epoch end)."""
        t = self.trainer
        meters = t.epoch_meters.copy()
        self.committed = (t.batch_in_epoch, t.global_step, t.epoch_skipped, meters)

    def rollback(self) -> None:
        """Return the counters and meters to the last :meth:`commit`, for the interrupt
        checkpoint: the batches after it reached the gradients, which no checkpoint holds,
        never the weights."""
        t = self.trainer
        t.batch_in_epoch, t.global_step, t.epoch_skipped, t.epoch_meters = self.committed

    def drop_interrupt(self) -> None:
        """Rank 0 removes the interrupt checkpoint of a run that has trained to its end since:
        last and best supersede it, and ``--resume`` from it would train the end again."""
        path = self.path("interrupt")
        if self.trainer.dist.is_main and path.is_file():
            path.unlink()
            log.info("removed %s: the run went on from it to its end", path.name)

    def save_interrupt(self, exc: BaseException) -> None:
        """Write the interrupt checkpoint and log how to continue; never masks ``exc``.

        A stop signal is handled after an optimizer step; any other exception may come in the
        middle of one, so the checkpoint holds the state after the last step and the resumed
        run trains the batches since then again. Nothing is written when the run has not
        moved since it started or resumed, nor after a non-finite loss, where the log names
        the last checkpoint to continue from instead.
        """
        t = self.trainer
        if isinstance(exc, NonFiniteLossError):
            last = self.path("last")
            if t.dist.is_main and last.is_file():
                log.error("continue from the last checkpoint with: %s", resume_command(last))
            return
        agreed = isinstance(exc, StopRequested)  # on every rank, after an optimizer step
        if not agreed:
            self.rollback()
        if (t.epoch, t.batch_in_epoch) == t.started_at:
            return
        try:
            path = t.save("interrupt", every_rank_here=agreed)
        except Exception as err:
            log.error(
                "%s, and the interrupt checkpoint could not be written: %s", type(exc).__name__, err
            )
            return
        if not t.dist.is_main:
            return
        stopped = isinstance(exc, StopRequested | KeyboardInterrupt)
        log.log(
            logging.WARNING if stopped else logging.ERROR,
            "%s in epoch %d after batch %d (step %d); saved %s\ncontinue with: %s",
            exc if agreed else type(exc).__name__,
            t.epoch + 1,
            t.batch_in_epoch,
            t.global_step,
            path,
            resume_command(path),
        )
