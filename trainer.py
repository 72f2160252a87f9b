"""TrainerBase: the generic train/validate loop and the base command-line options.

A task subclasses TrainerBase, overrides only the hooks that differ (``build_loss``,
``compute_metrics``, ``train_step``...) and sets its own argparse defaults::

    parser = build_parser("Train my model.")
    parser.set_defaults(model_type="Vanilla", data_type="FashionMNIST", monitor="val_acc")
    MyTrainer(parser.parse_args()).train()

Options come from the task's defaults, a ``--config`` file and the command line, in that
order; models and datasets declare their own beside their code (``add_options`` in their
registry lines). Per run: select device(s) (one per process under torchrun) -> seed -> data ->
new timestamped run dir (or, with ``--resume``, the checkpoint's own) -> config.json +
train.log -> model (channels_last, DDP/DataParallel, torch.compile), loss, optimizer,
scheduler, AMP scaler, clipper, early stopper, TensorBoard and metrics.csv -> status.json says
running -> epochs of train_one_epoch -> validate -> log -> best/last checkpoints -> early-stop
check -> status.json says how it ended. SIGTERM/SIGINT and exceptions end the run with a
checkpoint from which ``--resume`` continues; a non-finite loss stops it (or skips the batch).
``--fast_dev_run N`` runs N batches of each split instead, and writes nothing.

The hot path never waits for the device for book-keeping: meters add up on the device and are
read only when a progress line or the epoch summary shows them.
"""

import argparse
import contextlib
import copy
import logging
import math
import signal
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import default_collate
from torch.utils.tensorboard import SummaryWriter

from data.data_entry import (
    DATASETS,
    FirstBatches,
    add_data_options,
    build_datasets,
    build_loader,
)
from data.splits import DataSplits
from model.model_entry import MODELS, add_model_options, build_model, describe_model
from utils.amp import (
    AMP_CHOICES,
    Precision,
    auto_or_bool,
    autocast,
    candidates,
    describe_precision,
    log_precision,
    resolve_amp,
    resolve_channels_last,
    time_candidates,
    timed_here,
)
from utils.atomic import remove_partial_writes
from utils.augment import random_hflip
from utils.checkpoint import load_checkpoint, load_model_state, save_checkpoint, unwrap_model
from utils.cli import (
    fraction,
    non_negative_float,
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
    script_command,
    str2bool,
    zero_to_one,
)
from utils.clipper import GradClipper
from utils.compile import compile_choice, compile_model, replays_cuda_graphs
from utils.config import CONFIG_NAME, environment_info, save_config
from utils.config_file import ConfigFileParser
from utils.configcmp import format_table
from utils.device import channels_last, move_to, select_device
from utils.distributed import (
    all_ranks,
    broadcast_object,
    gather_to_main,
    init_distributed,
    leave_process_group,
    max_over_ranks,
)
from utils.earlystopper import EarlyStopper
from utils.errors import NonFiniteLossError, UsageError
from utils.history import METRICS_NAME, MetricsHistory
from utils.hparams import write_hparams
from utils.logger import setup_logging
from utils.meter import MeterGroup
from utils.nonfinite import LossWatch
from utils.optimizer import OPTIMIZERS, build_optimizer, load_optimizer_state
from utils.progress import Progress
from utils.resume import (
    check_mid_epoch_changes,
    check_resume_options,
    find_latest_checkpoint,
    resume_command,
)
from utils.rundir import make_run_dir
from utils.scheduler import SCHEDULERS, build_scheduler, check_scheduler_options
from utils.seed import rng_state, seed_everything, set_rng_state
from utils.signals import GracefulStop, StopRequested
from utils.status import FINISHED, RUNNING, STATUS_NAME, STOPPED_EARLY, ending, write_status
from utils.wandb_writer import WandbWriter, import_wandb

log = logging.getLogger(__name__)

# What TrainerBase.state_dict writes and a resume needs.
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
# Under DDP a checkpoint also holds "ranks": every rank's rank_state(), in rank order.

# Under DDP, how often (in optimizer steps) the ranks agree on whether a stop signal arrived.
STOP_SYNC_STEPS = 10


def scalar_tag(metric: str) -> str:
    """The TensorBoard tag of a metric: ``val_acc`` -> ``val/acc``, ``epoch_time`` ->
    ``epoch/time``."""
    return metric.replace("_", "/", 1)


def restart_epoch_averages(model: nn.Module) -> None:
    """Empty the running statistics of the BatchNorm layers built with ``momentum=None`` (a
    plain average of the batches seen), so that at the epoch's end they are its mean."""
    batch_norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    for module in model.modules():
        if isinstance(module, batch_norms) and module.momentum is None:
            module.reset_running_stats()


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The options every task shares, then those each model and dataset declares beside its
    code; a task script changes defaults with ``set_defaults``."""
    parser = ConfigFileParser(description=description)
    run = parser.add_argument_group("run")
    run.add_argument("--proj_name", default="Project", help="project name, kept in the config")
    run.add_argument("--model_type", default="Vanilla", choices=sorted(MODELS), help="model")
    run.add_argument("--data_type", default="FashionMNIST", choices=sorted(DATASETS), help="data")
    run.add_argument("--data_dir", default="./Dataset", help="where the dataset lives")
    run.add_argument("--output_dir", default="./Results", help="each run gets a new dir here")
    run.add_argument(
        "--gpu_devices",
        default="auto",
        help="'auto' (GPU with most free memory, else CPU), 'cpu', or ids like '0' or '0,1' "
        "(several ids -> DataParallel)",
    )
    run.add_argument("--seed", type=int, default=42, help="seed for python, numpy, torch, data")
    run.add_argument(
        "--deterministic", type=str2bool, default=False, help="forbid nondeterministic kernels"
    )
    run.add_argument(
        "--fast_dev_run",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="push N batches through training, validation and the test split, write nothing, "
        "and exit: a check before a long run; 0 = a normal run",
    )

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=positive_int, default=10, help="number of epochs")
    optim.add_argument("--batch_size", type=positive_int, default=64, help="samples per batch")
    optim.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate")
    optim.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS), help="optimizer")
    optim.add_argument("--momentum", type=non_negative_float, default=0.9, help="SGD momentum")
    optim.add_argument("--weight_decay", type=non_negative_float, default=0.0, help="L2 decay")
    optim.add_argument("--scheduler", default="none", choices=sorted(SCHEDULERS), help="lr decay")
    optim.add_argument(
        "--warmup_epochs", type=non_negative_float, default=0.0, help="linear lr warmup length"
    )
    optim.add_argument(
        "--lr_step_epochs", type=positive_int, default=30, help="'step' scheduler: decay period"
    )
    optim.add_argument(
        "--lr_gamma", type=positive_float, default=0.1, help="'step' scheduler: decay factor"
    )
    optim.add_argument(
        "--clip_grad_norm", type=positive_float, default=None, help="max global gradient norm"
    )
    optim.add_argument(
        "--clip_grad_value", type=positive_float, default=None, help="max absolute gradient"
    )
    optim.add_argument(
        "--label_smoothing", type=zero_to_one, default=0.0, help="cross-entropy smoothing"
    )
    optim.add_argument(
        "--accum_steps",
        type=positive_int,
        default=1,
        help="batches whose gradients add up to one optimizer step",
    )

    speed = parser.add_argument_group("speed")
    speed.add_argument(
        "--amp",
        default="off",
        choices=AMP_CHOICES,
        help="mixed precision autocast; fp16 adds a GradScaler; auto: bf16 where the device has "
        "it natively, fp16 on GPUs without bf16, off elsewhere",
    )
    speed.add_argument(
        "--channels_last",
        type=auto_or_bool,
        default="auto",
        help="NHWC memory format for the model and image batches; auto: for models with 2-D "
        "convolutions",
    )
    speed.add_argument(
        "--compile",
        type=compile_choice,
        default=False,
        help="torch.compile the model: True (mode default: fused kernels), reduce-overhead (and "
        "CUDA graphs: a step is a few launches), max-autotune (and a search for the fastest "
        "kernels); False: eager",
    )

    stop = parser.add_argument_group("monitoring and early stopping")
    stop.add_argument("--monitor", default="val_loss", help="metric that picks the best epoch")
    stop.add_argument(
        "--monitor_mode", default="min", choices=["min", "max"], help="min: lower is better"
    )
    stop.add_argument(
        "--patience", type=non_negative_int, default=5, help="epochs without gain; 0 = never stop"
    )
    stop.add_argument(
        "--min_delta", type=non_negative_float, default=0.0, help="smallest change that counts"
    )
    stop.add_argument(
        "--log_images_every",
        type=non_negative_int,
        default=0,
        help="epochs between example images in TensorBoard; 0 = never",
    )
    stop.add_argument(
        "--wandb",
        type=str2bool,
        default=False,
        help="also send the scalars and images to Weights & Biases (pip install wandb; "
        "WANDB_MODE=offline logs without an account)",
    )

    faults = parser.add_argument_group("checkpoints, resuming and faults")
    faults.add_argument(
        "--resume",
        default=None,
        help="checkpoint to continue from, in its own run dir; 'auto': the newest checkpoint "
        "of the newest --proj_name run in --output_dir",
    )
    faults.add_argument(
        "--allow_config_change",
        type=str2bool,
        default=False,
        help="resume even when options that change the results differ from the checkpoint's",
    )
    faults.add_argument(
        "--save_every_n_steps",
        type=non_negative_int,
        default=0,
        help="also write the last checkpoint every N steps; 0 = at epoch ends only",
    )
    faults.add_argument(
        "--nonfinite",
        default="stop",
        choices=["stop", "skip"],
        help="a NaN/inf training loss: stop (the weights before it are kept) or skip the batch",
    )

    data = parser.add_argument_group("data")
    data.add_argument("--num_workers", type=non_negative_int, default=2, help="loader processes")
    data.add_argument(
        "--val_ratio", type=open_fraction, default=0.1, help="share of train data held for val"
    )
    data.add_argument(
        "--train_val_sample_rate", type=fraction, default=1.0, help="use this share of train+val"
    )
    data.add_argument(
        "--test_sample_rate", type=fraction, default=1.0, help="use this share of the test set"
    )
    data.add_argument(
        "--test_ratio",
        type=open_fraction,
        default=0.2,
        help="share held for test where the data has no official test split (Carvana: of cars)",
    )
    data.add_argument(
        "--flip", type=str2bool, default=False, help="random horizontal flips of training batches"
    )
    data.add_argument(
        "--folds",
        type=non_negative_int,
        default=0,
        help="k-fold split: deal the data (Carvana: its cars) into this many folds and test on "
        "--fold, never used to pick a checkpoint; 0 = the usual train/val/test split",
    )
    data.add_argument(
        "--fold", type=non_negative_int, default=0, help="the fold tested, 0..folds-1"
    )
    add_model_options(parser)
    add_data_options(parser)
    return parser


class TrainerBase:
    """Owns one training run: its devices, run dir, data, model, optimisation and checkpoints.

    Hooks a task may override: ``build_data``, ``build_model``, ``build_loss``,
    ``compute_loss``, ``compute_metrics``, ``augment``, ``log_images``, ``train_step``.
    """

    EVAL_SCRIPT: str | None = None  # the task's evaluator, named in the log when a run ends

    def __init__(self, opt: Namespace) -> None:
        self.opt = opt
        self.dist, dist_device = init_distributed(opt.gpu_devices)
        setup_logging(level=logging.INFO if self.dist.is_main else logging.WARNING)
        if dist_device is None:
            self.device, self.device_ids = select_device(opt.gpu_devices)
        else:
            self.device = dist_device
            self.device_ids = [dist_device.index] if dist_device.type == "cuda" else []
        seed_everything(opt.seed + self.dist.rank, opt.deterministic)
        check_scheduler_options(opt)  # before a run dir exists
        if opt.wandb:
            import_wandb()  # a missing package is one line, before a run dir exists
        self.resume_path: Path | None = None
        self.config_changes: list[tuple[str, Any, Any]] = []
        resume = self.read_resume_checkpoint()
        # Data first: a wrong --data_dir then fails before an empty run dir is left behind.
        self.data = self.build_data()
        # --fast_dev_run writes nothing: no run dir, log file, config, TensorBoard, metrics.
        self.run_dir = None if opt.fast_dev_run else self.open_run_dir()
        if self.dist.is_main and self.run_dir is not None:
            setup_logging(self.run_dir / "train.log")
            if resume is None:
                save_config(self.run_dir / CONFIG_NAME, vars(opt), environment_info(self.device))
            for leftover in remove_partial_writes(self.run_dir):
                log.info("removed %s, a save cut short when the run was killed", leftover.name)

        self.train_loader = self.first_batches(self.build_loader(self.data.train, train=True))
        self.val_loader = self.first_batches(self.build_loader(self.data.val, train=False))
        self.steps_per_epoch = len(self.train_loader)  # batches of a whole epoch, this rank
        self.cycles_per_epoch = math.ceil(self.steps_per_epoch / opt.accum_steps)
        self.criterion = self.build_loss().to(self.device)
        model = self.build_model().to(self.device)
        self.amp, self.channels_last = self.pick_precision(model, resume)  # (mode, why), bool
        # net: the model on the device (compiled, if asked); model: what a training step calls,
        # net wrapped in DDP or DataParallel when there are several devices.
        self.net = self.prepare_model(model)
        self.model = self.wrap_model(self.net)
        self.cuda_graphs = replays_cuda_graphs(opt.compile, self.device)
        self.optimizer = build_optimizer(self.model, opt)
        self.scheduler = build_scheduler(self.optimizer, opt, self.cycles_per_epoch)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp[0] == "fp16")
        self.clipper = GradClipper(opt.clip_grad_norm, opt.clip_grad_value)
        self.stopper = EarlyStopper(opt.patience, opt.min_delta, opt.monitor_mode)
        self.stop_signal = GracefulStop()

        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches of the epoch in progress completed
        self.global_step = 0  # batches completed
        self.epoch_meters = MeterGroup()  # training averages of the epoch in progress
        self.epoch_skipped = 0  # batches of the epoch in progress skipped for a non-finite loss
        self.cycle_learned = 0  # batches of the accumulation cycle in progress in the gradients
        self.losses = LossWatch()  # --nonfinite stop: each step's loss, read when shown
        self.metrics: dict[str, float] = {}
        # Every rank's rank_state() at the (epoch, batch) where rank 0 last gathered them.
        self.gathered: tuple[tuple[int, int], list[dict[str, Any]]] | None = None
        if resume is not None:
            self.load_state_dict(resume)
            log.info(
                "resuming %s at epoch %d, batch %d (step %d)",
                self.resume_path,
                self.epoch + 1,
                self.batch_in_epoch,
                self.global_step,
            )
        self.started_at = (self.epoch, self.batch_in_epoch)
        self.commit()
        # On resume, TensorBoard and metrics.csv drop what the earlier process logged after
        # this checkpoint.
        self.writer: SummaryWriter | None = None
        self.history: MetricsHistory | None = None
        if self.dist.is_main and self.run_dir is not None:
            purge = self.global_step + 1 if resume else None
            self.writer = (
                WandbWriter(self.run_dir, purge, vars(opt))
                if opt.wandb
                else SummaryWriter(self.run_dir, purge_step=purge)
            )
            self.history = MetricsHistory(self.run_dir / METRICS_NAME, through_epoch=self.epoch)

    def read_resume_checkpoint(self) -> dict[str, Any] | None:
        """The ``--resume`` checkpoint (``auto``: the project's newest), if its options fit.

        Options that change the results must equal the checkpoint's unless
        ``--allow_config_change``; the differences it lets through go to ``config_changes``.
        Those that decide the batches of an epoch may not change in the middle of one.
        """
        if not self.opt.resume:
            return None
        if self.opt.resume != "auto":
            self.resume_path = Path(self.opt.resume)
        elif self.dist.is_main:
            self.resume_path = find_latest_checkpoint(self.opt.output_dir, self.opt.proj_name)
        self.resume_path = broadcast_object(self.resume_path, self.dist)
        state = load_checkpoint(self.resume_path)
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise UsageError(
                f"--resume {self.resume_path}: lacks {', '.join(missing)}; expected a checkpoint "
                "written by this version of the trainer (weights alone can be evaluated, not "
                "resumed)"
            )
        self.config_changes = check_resume_options(
            self.resume_path, state["config"], vars(self.opt), self.opt.allow_config_change
        )
        processes = state.get("world_size", 1)  # may change freely at an epoch end
        moved = [("processes", processes, self.dist.world_size)]
        plan_changes = self.config_changes + (moved if processes != self.dist.world_size else [])
        position = (state["epoch"], state["batch_in_epoch"])
        check_mid_epoch_changes(self.resume_path, position, plan_changes)
        return state

    def open_run_dir(self) -> Path:
        """The checkpoint's run dir on resume, else a new one that rank 0 creates."""
        if self.resume_path is not None:
            return self.resume_path.parent
        run_dir = make_run_dir(self.opt.output_dir) if self.dist.is_main else None
        return broadcast_object(run_dir, self.dist)

    # ----- hooks -----------------------------------------------------------------------------

    def build_data(self) -> DataSplits:
        """The train/val/test splits, by default from ``data_entry`` and ``--data_type``."""
        return build_datasets(self.opt)

    def build_model(self) -> nn.Module:
        """The bare model, by default from ``model_entry`` and ``--model_type``."""
        return build_model(self.opt, self.data.input_shape, self.data.num_classes)

    def build_loss(self) -> nn.Module:
        """The training criterion; cross-entropy (with ``--label_smoothing``) by default."""
        return nn.CrossEntropyLoss(label_smoothing=self.opt.label_smoothing)

    def compute_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.criterion(outputs, targets)

    def compute_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor | float]:
        """Per-sample means over one batch (e.g. ``{"acc": ...}``); the loss is added for you.

        Return 0-dim tensors rather than floats: ``.item()`` would make every step wait for
        the device, while the meters read them only when something is shown.
        """
        return {}

    def augment(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Random changes to a training batch on the device: ``--flip`` mirrors inputs.

        Draw randomness here rather than in a Dataset: this runs in the main process on the
        torch RNG that checkpoints save, so a resumed run replays it exactly. A task whose
        targets are images (masks) overrides this to flip them with their inputs.
        """
        if self.opt.flip:
            (inputs,) = random_hflip(inputs)
        return inputs, targets

    def log_images(self) -> None:
        """Write example images to TensorBoard; called every ``--log_images_every`` epochs."""

    def train_step(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """One batch: forward and loss under ``--amp``, then :meth:`backward`. Returns the
        detached loss and the outputs.

        The optimizer steps in the loop, once every ``--accum_steps`` batches. An override
        computes its loss and hands it to ``self.backward``, which applies ``--nonfinite``,
        the AMP loss scale and the accumulation average.
        """
        with self.autocast():
            outputs = self.model(inputs)
            loss = self.compute_loss(outputs, targets)
        self.backward(loss)
        return loss.detach(), outputs

    # ----- the loop --------------------------------------------------------------------------

    def train(self) -> dict[str, float]:
        """Train until ``--epochs`` or early stopping; return the last epoch's metrics.

        SIGTERM and SIGINT stop after the current optimizer step. Any exception, a stop signal
        included, first writes an interrupt checkpoint and logs the command that continues
        the run, then propagates. With ``--fast_dev_run`` see :meth:`fast_dev_run`.
        """
        if self.opt.fast_dev_run:
            return self.fast_dev_run()
        if self.dist.is_main:
            self.log_start()
            self.write_status(RUNNING)
        together = False  # whether every rank ends here at the same point
        try:
            self.start_hparams(self.check_monitor())
            with self.stop_signal:
                while self.epoch < self.opt.epochs and not self.stopper.should_stop:
                    self.train_epoch_and_validate()
                    self.check_stop(now=True)
                # Still inside: a signal now only sets a flag, so a run that trained to its end
                # is recorded as finished, never as interrupted halfway through saying so.
                self.write_status(STOPPED_EARLY if self.stopper.should_stop else FINISHED)
                together = True
        except BaseException as exc:
            if not together:  # training did not reach its end: record where it stopped
                together = isinstance(exc, StopRequested) or getattr(exc, "every_rank", False)
                self.save_interrupt_checkpoint(exc)
                self.write_status(*ending(exc))
            raise
        finally:
            if self.writer is not None:
                self.writer.close()
            self.leave_process_group(together)
        if self.stop_signal.signum is not None:
            name = signal.Signals(self.stop_signal.signum).name
            log.info("%s arrived as training ended; nothing was left to stop", name)
        if self.stopper.should_stop:
            log.info(
                "early stop: %s has not improved for %d epochs",
                self.opt.monitor,
                self.stopper.bad_epochs,
            )
        log.info(
            "done: best %s %.4f; run dir %s", self.opt.monitor, self.stopper.best, self.run_dir
        )
        best = self.checkpoint_path("best")
        if self.EVAL_SCRIPT and best.is_file():
            command = script_command(self.EVAL_SCRIPT, "--model_path", best)
            log.info("evaluate the best checkpoint with: %s", command)
        return self.metrics

    def fast_dev_run(self) -> dict[str, float]:
        """``--fast_dev_run N``: N batches of training, of validation and of the test split
        through the task's hooks, writing nothing; a check in seconds that a long run gets
        going. Returns their metrics, named ``train_*``, ``val_*`` and ``test_*``."""
        start = time.perf_counter()
        if self.dist.is_main:
            self.log_start()
        together = False
        try:
            self.check_monitor()
            with self.stop_signal:
                train = self.train_one_epoch()
            val = self.validate()
            test_loader = self.first_batches(self.build_loader(self.data.test, train=False))
            test = self.evaluate(test_loader)
            together = True
        finally:
            self.leave_process_group(together)
        splits = {"train": train, "val": val, "test": test}
        self.metrics = {f"{split}_{k}": v for split, m in splits.items() for k, v in m.items()}
        log.info("fast_dev_run: %s", "  ".join(f"{k} {v:.4f}" for k, v in self.metrics.items()))
        log.info(
            "fast_dev_run: nothing written (no run dir, checkpoint, TensorBoard or metrics); "
            "%d training, %d validation and %d test batches in %.1f s",
            self.batch_in_epoch - self.started_at[1],
            len(self.val_loader),
            len(test_loader),
            time.perf_counter() - start,
        )
        return self.metrics

    def train_epoch_and_validate(self) -> None:
        """One epoch of training and validation with logging and checkpoints."""
        start = time.perf_counter()
        train = self.train_one_epoch()
        if self.dist.enabled:  # an exception in validation saves from here, for every rank
            self.gather_rank_states()
        val = self.validate()
        self.metrics = {
            **{f"train_{k}": v for k, v in train.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": self.lr,
            "epoch_time": time.perf_counter() - start,
        }
        if self.epoch_skipped:
            self.metrics["train_skipped"] = self.epoch_skipped
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_meters = MeterGroup()
        self.epoch_skipped = 0
        improved = self.stopper.step(self.metrics[self.opt.monitor])
        self.commit()
        if self.dist.is_main:
            self.log_epoch(improved)
        # Best before last: a kill between the two leaves last behind, never best.
        if improved:
            self.save("best")
        self.save("last")
        every = self.opt.log_images_every
        if self.dist.is_main and every and self.epoch % every == 0:
            self.log_images()

    def train_one_epoch(self) -> dict[str, float]:
        """Train over the epoch's batches (from ``batch_in_epoch`` on when resuming).

        Under DDP the ranks agree every ``STOP_SYNC_STEPS`` optimizer steps on whether a stop
        signal or a non-finite loss arrived on any of them, and at the end of the epoch.
        """
        self.model.train()
        if self.batch_in_epoch == 0:  # a resumed epoch goes on with the averages it had
            restart_epoch_averages(self.net)
        self.train_loader.sampler.set_epoch(
            self.epoch, start=self.batch_in_epoch * self.opt.batch_size
        )
        every = self.opt.save_every_n_steps if self.run_dir else 0  # --fast_dev_run: no saves
        progress = Progress(
            self.train_loader,
            len(self.train_loader),
            f"epoch {self.epoch + 1}/{self.opt.epochs}",
            enabled=self.dist.is_main,
        )
        for step, batch in enumerate(progress, start=1):
            inputs, targets = self.augment(*self.to_device(batch))
            ends_cycle = self.cycle_ends_at(self.batch_in_epoch + 1)
            skipped = self.epoch_skipped
            if self.cuda_graphs:  # this step's graph replays may reuse the last one's outputs
                torch.compiler.cudagraph_mark_step_begin()
            with self.gradient_sync(ends_cycle):
                loss, outputs = self.train_step(inputs, targets)
            self.batch_in_epoch += 1
            self.global_step += 1
            if self.epoch_skipped == skipped:
                self.losses.note(self.global_step, loss)
                self.epoch_meters.update(self.batch_stats(loss, outputs, targets), len(targets))
            if ends_cycle:
                self.optimizer_step()
            shown = progress.update(step, len(targets), self.running_stats)
            if shown and not self.dist.enabled:
                self.raise_if_nonfinite()  # the host has just waited for the device anyway
            if ends_cycle:  # a consistent state to stop or save
                if every and self.global_step % every == 0:
                    self.save("last")
                self.check_stop()
        self.check_nonfinite()
        if self.batch_in_epoch and self.epoch_skipped == self.batch_in_epoch:
            raise NonFiniteLossError(
                f"every batch of epoch {self.epoch + 1} had a non-finite loss; lower --lr or "
                "clip gradients (--clip_grad_norm)",
                every_rank=True,
            )
        return self.epoch_meters.global_averages(self.device)

    def validate(self, max_batches: int | None = None) -> dict[str, float]:
        """Loss and metrics over the validation split (or its first ``max_batches``)."""
        return self.evaluate(self.val_loader, max_batches)

    @torch.inference_mode()
    def evaluate(self, loader: Any, max_batches: int | None = None) -> dict[str, float]:
        """Loss and metrics over the batches of ``loader`` (or its first ``max_batches``).

        Under DDP each rank evaluates its own shard with the bare model (no collectives per
        batch) and the sums are reduced across ranks at the end.
        """
        model = self.net if self.dist.enabled else self.model
        model.eval()
        meters = MeterGroup()
        total = min(len(loader), max_batches or len(loader))
        for step, batch in enumerate(loader, start=1):
            inputs, targets = self.to_device(batch)
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with self.autocast():
                outputs = model(inputs)
                loss = self.compute_loss(outputs, targets)
            meters.update(self.batch_stats(loss, outputs, targets), len(targets))
            if step == total:
                break
        return meters.global_averages(self.device)

    def batch_stats(self, loss: Tensor, outputs: Tensor, targets: Tensor) -> dict[str, Any]:
        """The loss and the task's metrics of one batch, without autograd or waiting."""
        with torch.no_grad():
            return {"loss": loss, **self.compute_metrics(outputs, targets)}

    def running_stats(self) -> dict[str, float]:
        """What the progress bar shows: the epoch's running loss and the learning rate."""
        loss = self.epoch_meters.meters.get("loss")
        return {"loss": loss.avg if loss else math.nan, "lr": self.lr}

    # ----- one optimisation step -------------------------------------------------------------

    def backward(self, loss: Tensor) -> bool:
        """Add this batch's gradients: the loss averaged over its accumulation cycle, scaled
        for ``--amp fp16``. Returns False, adding nothing, when ``--nonfinite skip`` drops it.
        """
        if self.opt.nonfinite == "skip" and not self.loss_is_finite(loss):
            return False
        cycle = self.cycle_length(self.batch_in_epoch + 1)
        self.scaler.scale(loss if cycle == 1 else loss / cycle).backward()
        self.cycle_learned += 1
        return True

    def optimizer_step(self) -> None:
        """End an accumulation cycle: unscale (fp16), clip, step, update the scaler, clear the
        gradients, advance the lr, and :meth:`commit` the new state.

        A cycle with skipped batches averages over the batches it kept; one that kept none
        leaves the weights alone but keeps its place in the schedule.
        """
        learned, cycle = self.cycle_learned, self.cycle_length(self.batch_in_epoch)
        if learned:
            if learned < cycle:
                for param in self.model.parameters():
                    if param.grad is not None:
                        param.grad.mul_(cycle / learned)
            self.scaler.unscale_(self.optimizer)
            self.clipper(self.model.parameters())
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.cycle_learned = 0
        self.commit()

    def commit(self) -> None:
        """Remember the state after the last optimizer step (or epoch end), where an interrupt
        checkpoint written after an exception resumes."""
        self.committed = (
            self.batch_in_epoch,
            self.global_step,
            self.epoch_skipped,
            self.epoch_meters.copy(),
        )

    def rollback(self) -> None:
        """Return the counters and meters to the last :meth:`commit`, for the interrupt
        checkpoint: the batches after it reached the gradients, which no checkpoint holds,
        never the weights."""
        self.batch_in_epoch, self.global_step, self.epoch_skipped, self.epoch_meters = (
            self.committed
        )

    # ----- checks ----------------------------------------------------------------------------

    def loss_is_finite(self, loss: Tensor) -> bool:
        """``--nonfinite skip``: whether to learn from ``loss``, which waits for the device
        (agreed across DDP ranks); a batch skipped is counted and warned about.

        ``--nonfinite stop`` waits for nothing: the loop notes each loss in ``self.losses``,
        read where the host reads the device anyway (a progress line, a save, the epoch end;
        under DDP the ranks' next agreement), and the run stops there.
        """
        if all_ranks(bool(torch.isfinite(loss).all()), self.dist, self.device):
            return True
        self.epoch_skipped += 1
        if self.epoch_skipped <= 3:
            log.warning(
                "non-finite training loss at epoch %d, batch %d (step %d): batch skipped "
                "(%d this epoch)",
                self.epoch + 1,
                self.batch_in_epoch + 1,
                self.global_step + 1,
                self.epoch_skipped,
            )
        return False

    def raise_if_nonfinite(self) -> None:
        """Stop with one line naming the first batch whose loss was NaN or infinite."""
        step = self.losses.read()
        if step is None:
            return
        epoch, batch = divmod(step - 1, self.steps_per_epoch)
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {epoch + 1}, batch {batch + 1} (step {step}); "
            "the checkpoints written before it are kept. Lower --lr, clip gradients "
            "(--clip_grad_norm) or pass --nonfinite skip",
            every_rank=self.dist.enabled,
        )

    def agree(self) -> bool:
        """Under DDP, share what each rank noted: whether a stop signal arrived and the first
        non-finite loss. Every rank calls this at the same point; it raises
        :class:`NonFiniteLossError` on all of them if any saw one, else returns whether any
        received a stop signal. One all-reduce."""
        none = torch.iinfo(torch.long).min  # the maximum of -step picks the earliest step
        first = self.losses.read()
        received, earliest = max_over_ranks(
            [int(self.stop_signal.signum is not None), none if first is None else -first],
            self.dist,
            self.device,
        )
        if earliest != none:
            self.losses.first_bad = -earliest
            self.raise_if_nonfinite()
        return bool(received)

    def check_nonfinite(self) -> None:
        """Raise :class:`NonFiniteLossError` if a non-finite loss was noted (on any rank)."""
        if self.dist.enabled:
            self.agree()
        else:
            self.raise_if_nonfinite()

    def check_stop(self, now: bool = False) -> None:
        """Raise :class:`StopRequested` once SIGTERM/SIGINT arrived; under DDP on every rank
        together, agreed every ``STOP_SYNC_STEPS`` optimizer steps or ``now``."""
        if not self.dist.enabled:
            self.stop_signal.check()
            return
        steps = self.global_step // self.opt.accum_steps
        if (now or steps % STOP_SYNC_STEPS == 0) and self.agree():
            raise StopRequested(self.stop_signal.signum or signal.SIGTERM)

    def check_monitor(self) -> list[str]:
        """Validate two batches before training, so a wrong ``--monitor`` fails in seconds.

        Returns the names of the metrics each epoch will report.
        """
        reported = self.validate(max_batches=2)
        names = [f"{split}_{k}" for split in ("train", "val") for k in reported]
        names += ["lr", "epoch_time"]
        if self.opt.monitor not in names:
            known = ", ".join(names)
            raise UsageError(
                f"--monitor {self.opt.monitor}: not a metric of this task; known: {known}",
                every_rank=True,
            )
        return names

    # ----- helpers ---------------------------------------------------------------------------

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def first_batches(self, loader: Any) -> Any:
        """With ``--fast_dev_run N`` the first N batches of ``loader``, else the loader."""
        return FirstBatches(loader, self.opt.fast_dev_run) if self.opt.fast_dev_run else loader

    def leave_process_group(self, together: bool) -> None:
        """Under DDP, drop the wrapper that holds the process group, then leave it. Together,
        the ranks first wait for rank 0's last save: torchrun stops the others once one exits.
        """
        if self.dist.enabled:
            self.model = self.net
            leave_process_group(wait_for_all=together)

    def build_loader(self, dataset: Any, train: bool) -> Any:
        """A loader over this rank's shard; training shards are padded to equal length."""
        return build_loader(
            dataset,
            self.opt,
            shuffle=train,
            device=self.device,
            num_replicas=self.dist.world_size,
            rank=self.dist.rank,
            pad=train,
        )

    def pick_precision(
        self, model: nn.Module, resume: dict[str, Any] | None
    ) -> tuple[tuple[str, str], bool]:
        """What ``--amp`` and ``--channels_last`` come to: ``((mode, why), channels_last)``.

        ``auto`` follows the device's rule (``utils/amp.py``), except on a GPU, where a few
        training steps of each candidate are timed and the fastest is taken (by rank 0, for
        every DDP rank). A resumed run keeps what it picked, so it computes as it did.
        """
        amp = resolve_amp(self.opt.amp, self.device)
        layout = resolve_channels_last(self.opt.channels_last, model)
        self.layout_why: str | None = None  # where auto did not follow the rule
        picked = (resume or {}).get("precision")
        if picked is not None:
            kept = "auto: as the run picked when it started"
            if self.opt.amp == "auto":
                amp = (picked["amp"], kept)
            if self.opt.channels_last == "auto":
                layout, self.layout_why = picked["channels_last"], kept
            return amp, layout
        choices = candidates(amp, self.opt.amp, self.opt.channels_last, model)
        if len(choices) == 1 or not timed_here(self.device):
            return amp, layout
        best = None
        if self.dist.is_main:
            seconds = self.time_precisions(model, choices)
            best = min(seconds, key=seconds.__getitem__)
            timings = ", ".join(
                f"{describe_precision(c)} {t * 1e3:.2f} ms" for c, t in seconds.items()
            )
            log.info(
                "auto: a training step on %s takes %s; picked %s",
                self.device,
                timings,
                describe_precision(best),
            )
        mode, layout = broadcast_object(best, self.dist)
        timed = "auto: the fastest of the steps timed"
        if self.opt.channels_last == "auto":
            self.layout_why = timed
        return (mode, timed) if self.opt.amp == "auto" else amp, layout

    def time_precisions(self, model: nn.Module, choices: list[Precision]) -> dict[Precision, float]:
        """Seconds of a forward and backward on the first training samples, with each choice,
        on copies of ``model`` (its BatchNorm statistics stay untouched) and forked RNGs (its
        dropout draws leave the run's random streams alone)."""
        dataset, keyed = self.data.train, getattr(self.data.train, "epoch_keyed", False)
        first = range(min(self.opt.batch_size, len(dataset)))
        samples = [dataset[(0, i) if keyed else i] for i in first]
        inputs, targets = move_to(default_collate(samples), self.device)

        def step(choice: Precision) -> Callable[[], None]:
            mode, layout = choice
            trial = copy.deepcopy(model).train()
            batch = channels_last(inputs) if layout else inputs
            if layout:
                trial = trial.to(memory_format=torch.channels_last)

            def run() -> None:
                with autocast(self.device, mode):
                    loss = self.compute_loss(trial(batch), targets)
                loss.backward()
                trial.zero_grad(set_to_none=True)

            return run

        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            return time_candidates(step, choices, self.device)

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """In the memory format picked for ``--channels_last``, through ``torch.compile``."""
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return compile_model(model, self.opt.compile)

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """DDP under torchrun, DataParallel over several ``--gpu_devices``, else the model."""
        if self.dist.enabled:
            return DistributedDataParallel(model, device_ids=self.device_ids or None)
        if len(self.device_ids) > 1:
            log.info("DataParallel over GPUs %s", self.device_ids)
            return nn.DataParallel(model, device_ids=self.device_ids)
        return model

    def to_device(self, batch: Any) -> tuple[Tensor, Tensor]:
        """``(inputs, targets)`` on the device; image batches in ``--channels_last`` format."""
        inputs, targets = move_to(batch, self.device)
        return (channels_last(inputs) if self.channels_last else inputs), targets

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision as ``--amp`` resolved on this device; a no-op when off."""
        return autocast(self.device, self.amp[0])

    def gradient_sync(self, ends_cycle: bool) -> contextlib.AbstractContextManager:
        """Under DDP, gradients are averaged across ranks only in the batch that ends an
        accumulation cycle; the others run forward and backward inside ``no_sync()`` (the
        forward too, or DDP all-reduces in that batch's backward all the same)."""
        if ends_cycle or not isinstance(self.model, DistributedDataParallel):
            return contextlib.nullcontext()
        return self.model.no_sync()

    def cycle_ends_at(self, batch: int) -> bool:
        """Whether batch ``batch`` (1-based) of an epoch ends a gradient accumulation cycle."""
        return batch % self.opt.accum_steps == 0 or batch == self.steps_per_epoch

    def cycle_length(self, batch: int) -> int:
        """How many batches the accumulation cycle holding batch ``batch`` (1-based) has: the
        epoch's last cycle may be shorter than ``--accum_steps``."""
        first = (batch - 1) // self.opt.accum_steps * self.opt.accum_steps
        return min(self.opt.accum_steps, self.steps_per_epoch - first)

    def optimizer_steps_done(self) -> int:
        """Optimizer steps (accumulation cycles) done: where the lr schedule stands."""
        done_this_epoch = math.ceil(self.batch_in_epoch / self.opt.accum_steps)
        return self.epoch * self.cycles_per_epoch + done_this_epoch

    def log_start(self) -> None:
        if self.run_dir is None:
            log.info(
                "fast_dev_run: %d batches of each split; nothing is written", self.opt.fast_dev_run
            )
        else:
            log.info("run dir %s", self.run_dir)
        devices = ", ".join(f"cuda:{i}" for i in self.device_ids) or "cpu"
        if self.dist.enabled:
            devices += f" (rank 0 of {self.dist.world_size} DDP processes)"
        log.info("device %s", devices)
        log_precision(self.amp, self.channels_last, self.opt.channels_last, self.layout_why)
        log.info(
            "data %s: train %d, val %d, test %d samples",
            self.opt.data_type,
            len(self.data.train),
            len(self.data.val),
            len(self.data.test),
        )
        log.info("model %s\n%s", self.opt.model_type, describe_model(unwrap_model(self.model)))

    def log_epoch(self, improved: bool) -> None:
        """One log line per epoch; every metric and the best ``--monitor`` value so far to
        TensorBoard at the global step, and a row of metrics.csv."""
        for name, value in self.metrics.items():
            self.writer.add_scalar(scalar_tag(name), value, self.global_step)
        self.writer.add_scalar(f"best/{self.opt.monitor}", self.stopper.best, self.global_step)
        self.writer.flush()
        self.history.append(self.epoch, self.global_step, self.metrics)
        text = "  ".join(
            f"{k} {v:.3g}"
            if k == "lr"
            else f"{k} {v:.1f}s"
            if k == "epoch_time"
            else f"{k} {v:g}"
            if k == "train_skipped"
            else f"{k} {v:.4f}"
            for k, v in self.metrics.items()
        )
        log.info(
            "epoch %d/%d  %s%s", self.epoch, self.opt.epochs, text, "  *best*" if improved else ""
        )

    def start_hparams(self, metric_names: list[str]) -> None:
        """Rank 0 records the options as TensorBoard hparams, compared by every logged metric
        and the best ``--monitor`` value."""
        if self.dist.is_main:
            tags = [scalar_tag(name) for name in metric_names] + [f"best/{self.opt.monitor}"]
            write_hparams(self.writer, vars(self.opt), tags)

    def write_status(self, state: str, error: str | None = None) -> None:
        """Rank 0 records in status.json where the run stands (``utils/status.py``); a failure
        to write it is logged, never raised over what ended the run."""
        if not self.dist.is_main:
            return
        best = self.stopper.best if math.isfinite(self.stopper.best) else None
        try:
            write_status(
                self.run_dir,
                state,
                epoch=self.epoch,
                epochs=self.opt.epochs,
                monitor=self.opt.monitor,
                best=best,
                error=error,
            )
        except OSError as err:
            log.error("could not write %s: %s", STATUS_NAME, err)

    # ----- checkpoints -----------------------------------------------------------------------

    def checkpoint_path(self, kind: str) -> Path:
        """``<run_dir>/<model_type>_<kind>_ckpt.pth`` for kind best, last or interrupt."""
        return self.run_dir / f"{self.opt.model_type}_{kind}_ckpt.pth"

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on; only tensors and plain containers.

        The lr schedule needs no state of its own: it follows from the options and the step.
        """
        return {
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "stopper": self.stopper.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "metrics": self.metrics,
            "config": vars(self.opt),
            "data": self.data.info.state_dict(),  # for prediction; not needed to resume
            "precision": {"amp": self.amp[0], "channels_last": self.channels_last},
            "world_size": self.dist.world_size,
            **self.rank_state(),
        }

    def rank_state(self) -> dict[str, Any]:
        """What differs between DDP ranks: the RNG streams and the epoch's running meters."""
        return {
            "rng": rng_state(),
            "epoch_meters": self.epoch_meters.state_dict(),
            "epoch_skipped": self.epoch_skipped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (checked for every entry on reading).

        Options changed with ``--allow_config_change`` take effect: the optimizer keeps its
        moments but takes the new hyperparameters (another ``--optimizer`` starts afresh), the
        lr follows the new schedule from the step reached, another ``--monitor`` starts a new
        best, and another ``--seed`` restarts the random streams from it.

        Under DDP each rank takes its own RNG states and meters when the checkpoint has them
        for this many ranks; otherwise rank 0 takes the saved ones and the other ranks keep
        their seeded streams and start their meters empty.
        """
        load_model_state(self.model, state["model"], f"checkpoint {self.resume_path}")
        changed = {key: (old, new) for key, old, new in self.config_changes}
        if "optimizer" in changed:
            self.note_change("optimizer", "its state (momenta, moments) starts empty")
        else:
            load_optimizer_state(self.optimizer, state["optimizer"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        if changed.keys() & {"monitor", "monitor_mode"}:
            self.note_change("monitor", "the best value and the patience count start afresh")
        else:
            self.stopper.load_state_dict(state["stopper"])
        self.epoch = state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.global_step = state["global_step"]
        self.metrics = state["metrics"]
        self.scheduler.seek(self.optimizer_steps_done())
        ranks = state.get("ranks", [])
        if len(ranks) == self.dist.world_size:
            self.load_rank_state(ranks[self.dist.rank])
        elif self.dist.is_main:
            self.load_rank_state(state)
        if "seed" in changed:
            self.note_change("seed", "the random streams restart from the new seed")
            seed_everything(self.opt.seed + self.dist.rank, self.opt.deterministic)
        if self.config_changes and self.dist.is_main:
            log.warning(
                "resuming with changed options (--allow_config_change), in effect from here:\n%s",
                format_table(self.config_changes, "checkpoint", "now"),
            )

    def note_change(self, option: str, effect: str) -> None:
        """Log what changing ``option`` on resume does beyond taking its new value."""
        if self.dist.is_main:
            log.warning("--%s changed on resume: %s", option, effect)

    def load_rank_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`rank_state` saved."""
        self.epoch_meters.load_state_dict(state["epoch_meters"])
        self.epoch_skipped = state["epoch_skipped"]
        set_rng_state(state["rng"])

    def gather_rank_states(self) -> list[dict[str, Any]] | None:
        """Every rank's :meth:`rank_state` on rank 0 (None elsewhere); every rank calls this.

        Rank 0 keeps them with the position they belong to: an exception there before the
        next optimizer step can save a checkpoint from which every rank resumes exactly.
        """
        ranks = gather_to_main(self.rank_state(), self.dist)
        if ranks is not None:
            self.gathered = ((self.epoch, self.batch_in_epoch), ranks)
        return ranks

    def save(self, kind: str, every_rank_here: bool = True) -> Path:
        """Write the ``kind`` checkpoint (rank 0 only); never one of non-finite weights.

        Under DDP, ``every_rank_here`` says that all ranks call this at the same point, so
        they can agree on non-finite losses and rank 0 can gather their :meth:`rank_state`;
        pass False where only some ranks may (after an exception), and rank 0 saves what it
        gathered last if that is still the current position.
        """
        path = self.checkpoint_path(kind)
        ranks = None
        if every_rank_here:
            self.check_nonfinite()
            if self.dist.enabled:
                ranks = self.gather_rank_states()
        else:
            self.raise_if_nonfinite()
            if not all(torch.isfinite(p).all() for p in self.net.parameters()):
                raise NonFiniteLossError("the weights are not finite (a NaN on another rank?)")
            if self.gathered and self.gathered[0] == (self.epoch, self.batch_in_epoch):
                ranks = self.gathered[1]
        if self.dist.is_main:
            state = self.state_dict()
            if ranks is not None:
                state["ranks"] = ranks
            save_checkpoint(path, state)
        return path

    def save_interrupt_checkpoint(self, exc: BaseException) -> None:
        """Write the interrupt checkpoint and log how to continue; never masks ``exc``.

        A stop signal is handled after an optimizer step; any other exception may come in the
        middle of one, so the checkpoint holds the state after the last step (:meth:`rollback`)
        and the resumed run trains the batches since then again. Nothing is written when the
        run has not moved since it started or resumed.
        """
        if isinstance(exc, NonFiniteLossError):
            last = self.checkpoint_path("last")
            if self.dist.is_main and last.is_file():
                log.error("continue from the last checkpoint with: %s", resume_command(last))
            return
        agreed = isinstance(exc, StopRequested)  # on every rank, after an optimizer step
        if not agreed:
            self.rollback()
        if (self.epoch, self.batch_in_epoch) == self.started_at:
            return
        try:
            path = self.save("interrupt", every_rank_here=agreed)
        except Exception as err:
            log.error(
                "%s, and the interrupt checkpoint could not be written: %s", type(exc).__name__, err
            )
            return
        if not self.dist.is_main:
            return
        stopped = isinstance(exc, StopRequested | KeyboardInterrupt)
        log.log(
            logging.WARNING if stopped else logging.ERROR,
            "%s in epoch %d after batch %d (step %d); saved %s\ncontinue with: %s",
            exc if agreed else type(exc).__name__,
            self.epoch + 1,
            self.batch_in_epoch,
            self.global_step,
            path,
            resume_command(path),
        )
