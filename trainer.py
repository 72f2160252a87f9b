"""TrainerBase: the generic train/validate loop and the base command-line options.

A task subclasses TrainerBase, overrides only the hooks that differ (``build_loss``,
``compute_metrics``, ``train_step``...) and sets its own argparse defaults::

    parser = build_parser("Train my model.")
    parser.set_defaults(model_type="Vanilla", data_type="FashionMNIST", monitor="val_acc")
    MyTrainer(parser.parse_args()).train()

Per run: select device(s) -> seed -> data -> new timestamped run dir (or, with ``--resume``,
the checkpoint's own) -> config.json + train.log -> model, loss, optimizer, scheduler, clipper,
early stopper, TensorBoard -> epochs of train_one_epoch -> validate -> log -> best/last
checkpoints -> early-stop check. SIGTERM/SIGINT, exceptions and non-finite losses end the run
with a checkpoint from which ``--resume`` continues exactly.
"""

import argparse
import logging
import math
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.tensorboard import SummaryWriter

from data.data_entry import DATASETS, build_datasets, build_loader
from data.splits import DataSplits
from model.model_entry import MODELS, build_model, describe_model
from utils.atomic import remove_partial_writes
from utils.augment import random_hflip
from utils.checkpoint import load_checkpoint, load_model_state, save_checkpoint, unwrap_model
from utils.cli import (
    ArgumentParser,
    fraction,
    non_negative_float,
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
    str2bool,
    zero_to_one,
)
from utils.clipper import GradClipper
from utils.config import CONFIG_NAME, environment_info, save_config
from utils.configcmp import format_table
from utils.device import move_to, select_device
from utils.earlystopper import EarlyStopper
from utils.errors import NonFiniteLossError, UsageError
from utils.logger import setup_logging
from utils.meter import MeterGroup
from utils.optimizer import OPTIMIZERS, build_optimizer
from utils.progress import Progress
from utils.resume import check_resume_options, find_latest_checkpoint, resume_command
from utils.rundir import make_run_dir
from utils.scheduler import SCHEDULERS, build_scheduler
from utils.seed import rng_state, seed_everything, set_rng_state
from utils.signals import GracefulStop, StopRequested

log = logging.getLogger(__name__)

# What TrainerBase.state_dict writes and a resume needs.
STATE_KEYS = (
    "model",
    "optimizer",
    "scheduler",
    "stopper",
    "epoch",
    "batch_in_epoch",
    "global_step",
    "epoch_meters",
    "epoch_skipped",
    "metrics",
    "config",
    "rng",
)


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The options every task shares; a task script changes defaults with ``set_defaults``."""
    parser = ArgumentParser(description=description)
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
        choices=["off", "bf16", "fp16"],
        help="mixed precision autocast; fp16 adds a GradScaler",
    )
    speed.add_argument(
        "--channels_last", type=str2bool, default=False, help="NHWC memory format for conv models"
    )
    speed.add_argument("--compile", type=str2bool, default=False, help="torch.compile the model")

    model = parser.add_argument_group("conv models (UNet, UNetpp)")
    model.add_argument(
        "--base_width", type=positive_int, default=32, help="channels of the first conv block"
    )
    model.add_argument(
        "--bilinear", type=str2bool, default=True, help="UNet: bilinear upsampling, else ConvT"
    )
    model.add_argument(
        "--deep_supervision",
        type=str2bool,
        default=False,
        help="UNetpp: train every nested decoder output, predict with their mean",
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
    data.add_argument(
        "--in_memory",
        type=str2bool,
        default=True,
        help="hold a dataset that offers it (FashionMNIST) as one uint8 tensor on the device and "
        "batch it by index; False: torchvision's per-sample DataLoader",
    )
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
        "--img_scale", type=fraction, default=1.0, help="resize images by this factor (Carvana)"
    )
    data.add_argument(
        "--cache", type=str2bool, default=True, help="decode images once and reuse the arrays"
    )
    data.add_argument(
        "--cache_dir", default=None, help="where decoded arrays go; default <data_dir>/.cache"
    )
    data.add_argument(
        "--flip", type=str2bool, default=False, help="random horizontal flips of training batches"
    )
    return parser


class TrainerBase:
    """Owns one training run: its devices, run dir, data, model, optimisation and checkpoints.

    Hooks a task may override: ``build_data``, ``build_model``, ``build_loss``,
    ``compute_loss``, ``compute_metrics``, ``augment``, ``log_images``, ``train_step``.
    """

    def __init__(self, opt: Namespace) -> None:
        self.opt = opt
        setup_logging()
        self.device, self.device_ids = select_device(opt.gpu_devices)
        seed_everything(opt.seed, opt.deterministic)
        self.resume_path: Path | None = None
        self.config_changes: list[tuple[str, Any, Any]] = []
        resume = self.read_resume_checkpoint()
        # Data first: a wrong --data_dir then fails before an empty run dir is left behind.
        self.data = self.build_data()
        self.run_dir = self.resume_path.parent if self.resume_path else make_run_dir(opt.output_dir)
        setup_logging(self.run_dir / "train.log")
        if resume is None:
            save_config(self.run_dir / CONFIG_NAME, vars(opt), environment_info(self.device))
        for leftover in remove_partial_writes(self.run_dir):
            log.info("removed %s, a save cut short when the run was killed", leftover.name)
        if self.config_changes:
            log.warning(
                "resuming with changed options (--allow_config_change):\n%s",
                format_table(self.config_changes, "checkpoint", "now"),
            )

        self.train_loader = build_loader(self.data.train, opt, shuffle=True, device=self.device)
        self.val_loader = build_loader(self.data.val, opt, shuffle=False, device=self.device)
        self.model = self.wrap_model(self.build_model().to(self.device))
        self.criterion = self.build_loss().to(self.device)
        self.optimizer = build_optimizer(self.model, opt)
        self.scheduler = build_scheduler(self.optimizer, opt, len(self.train_loader))
        self.clipper = GradClipper(opt.clip_grad_norm, opt.clip_grad_value)
        self.stopper = EarlyStopper(opt.patience, opt.min_delta, opt.monitor_mode)
        self.stop_signal = GracefulStop()

        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches of the epoch in progress completed
        self.global_step = 0
        self.epoch_meters = MeterGroup()  # training averages of the epoch in progress
        self.epoch_skipped = 0  # batches of the epoch in progress skipped for a non-finite loss
        self.metrics: dict[str, float] = {}
        if resume is not None:
            self.load_state_dict(resume)
            log.info(
                "resuming %s at epoch %d, batch %d (step %d)",
                self.resume_path,
                self.epoch + 1,
                self.batch_in_epoch,
                self.global_step,
            )
        # On resume, TensorBoard hides what the earlier process logged after this checkpoint.
        purge = self.global_step + 1 if resume else None
        self.writer = SummaryWriter(self.run_dir, purge_step=purge)

    def read_resume_checkpoint(self) -> dict[str, Any] | None:
        """The ``--resume`` checkpoint (``auto``: the project's newest), if its options fit.

        Options that change the results must equal the checkpoint's unless
        ``--allow_config_change``; the differences it lets through go to ``config_changes``.
        """
        if not self.opt.resume:
            return None
        self.resume_path = (
            find_latest_checkpoint(self.opt.output_dir, self.opt.proj_name)
            if self.opt.resume == "auto"
            else Path(self.opt.resume)
        )
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
        return state

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

    def compute_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Per-sample means over one batch (e.g. ``{"acc": 0.91}``); the loss is added for you."""
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
        """One optimisation step; returns the detached loss and the outputs.

        An override should call ``check_loss`` before ``backward`` and skip the update when it
        returns False, as here, so that a non-finite loss never reaches the weights.
        """
        outputs = self.model(inputs)
        loss = self.compute_loss(outputs, targets)
        if self.check_loss(loss):
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.clipper(self.model.parameters())
            self.optimizer.step()
        self.scheduler.step()  # skipped batches keep their place in the schedule
        return loss.detach(), outputs

    # ----- the loop --------------------------------------------------------------------------

    def train(self) -> dict[str, float]:
        """Train until ``--epochs`` or early stopping; return the last epoch's metrics.

        SIGTERM and SIGINT stop after the current step. Any exception, a stop signal included,
        first writes an interrupt checkpoint and logs the command that continues the run, then
        propagates.
        """
        self.log_start()
        self.check_monitor()
        try:
            with self.stop_signal:
                while self.epoch < self.opt.epochs and not self.stopper.should_stop:
                    self.train_epoch_and_validate()
                    self.stop_signal.check()
        except BaseException as exc:
            self.save_interrupt_checkpoint(exc)
            raise
        finally:
            self.writer.close()
        if self.stopper.should_stop:
            log.info(
                "early stop: %s has not improved for %d epochs",
                self.opt.monitor,
                self.stopper.bad_epochs,
            )
        log.info(
            "done: best %s %.4f; run dir %s", self.opt.monitor, self.stopper.best, self.run_dir
        )
        return self.metrics

    def train_epoch_and_validate(self) -> None:
        """One epoch of training and validation with logging and checkpoints."""
        start = time.perf_counter()
        train = self.train_one_epoch()
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
        self.log_epoch(improved)
        every = self.opt.log_images_every
        if every and self.epoch % every == 0:
            self.log_images()
        # Best before last: a kill between the two leaves last behind, never best.
        if improved:
            self.save("best")
        self.save("last")

    def train_one_epoch(self) -> dict[str, float]:
        """Train over the epoch's batches (from ``batch_in_epoch`` on when resuming)."""
        self.model.train()
        self.train_loader.sampler.set_epoch(
            self.epoch, start=self.batch_in_epoch * self.opt.batch_size
        )
        every = self.opt.save_every_n_steps
        progress = Progress(
            self.train_loader, len(self.train_loader), f"epoch {self.epoch + 1}/{self.opt.epochs}"
        )
        for step, batch in enumerate(progress, start=1):
            inputs, targets = self.augment(*move_to(batch, self.device))
            loss, outputs = self.train_step(inputs, targets)
            self.batch_in_epoch += 1
            self.global_step += 1
            stats = self.batch_stats(loss, outputs, targets)
            if math.isfinite(stats["loss"]):
                self.epoch_meters.update(stats, len(targets))
            running = self.epoch_meters.averages().get("loss", math.nan)
            progress.update(step, len(targets), loss=running, lr=self.lr)
            if every and self.global_step % every == 0:
                self.save("last")
            self.stop_signal.check()
        if "loss" not in self.epoch_meters.meters:
            raise NonFiniteLossError(
                f"every batch of epoch {self.epoch + 1} had a non-finite loss; lower --lr or "
                "clip gradients (--clip_grad_norm)"
            )
        return self.epoch_meters.averages()

    @torch.inference_mode()
    def validate(self, max_batches: int | None = None) -> dict[str, float]:
        """Loss and metrics over the validation split (or its first ``max_batches``)."""
        self.model.eval()
        meters = MeterGroup()
        total = min(len(self.val_loader), max_batches or len(self.val_loader))
        progress = Progress(self.val_loader, total, "validate", lines=0)
        for step, batch in enumerate(progress, start=1):
            inputs, targets = move_to(batch, self.device)
            outputs = self.model(inputs)
            loss = self.compute_loss(outputs, targets)
            meters.update(self.batch_stats(loss, outputs, targets), len(targets))
            progress.update(step, len(targets), loss=meters.meters["loss"].avg)
            if step == total:
                break
        return meters.averages()

    def batch_stats(self, loss: Tensor, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """The loss and the task's metrics of one batch, computed without autograd."""
        with torch.no_grad():
            return {"loss": loss.item(), **self.compute_metrics(outputs, targets)}

    def check_loss(self, loss: Tensor) -> bool:
        """True if ``loss`` is finite. Otherwise ``--nonfinite stop`` raises, naming the step,
        before the weights change; ``--nonfinite skip`` counts the batch and returns False.
        """
        if torch.isfinite(loss).all():
            return True
        where = (
            f"epoch {self.epoch + 1}, batch {self.batch_in_epoch + 1} (step {self.global_step + 1})"
        )
        if self.opt.nonfinite == "stop":
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at {where}; the weights before this "
                "batch are kept. Lower --lr, clip gradients (--clip_grad_norm) or pass "
                "--nonfinite skip"
            )
        self.epoch_skipped += 1
        if self.epoch_skipped <= 3:
            log.warning(
                "non-finite training loss at %s: batch skipped (%d this epoch)",
                where,
                self.epoch_skipped,
            )
        return False

    # ----- helpers ---------------------------------------------------------------------------

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """DataParallel over the selected GPUs when there is more than one."""
        if len(self.device_ids) > 1:
            log.info("DataParallel over GPUs %s", self.device_ids)
            return nn.DataParallel(model, device_ids=self.device_ids)
        return model

    def check_monitor(self) -> None:
        """Validate two batches before training, so a wrong ``--monitor`` fails in seconds."""
        reported = self.validate(max_batches=2)
        names = [f"{split}_{k}" for split in ("train", "val") for k in reported]
        names += ["lr", "epoch_time"]
        if self.opt.monitor not in names:
            known = ", ".join(names)
            raise UsageError(
                f"--monitor {self.opt.monitor}: not a metric of this task; known: {known}"
            )

    def log_start(self) -> None:
        log.info("run dir %s", self.run_dir)
        log.info("device %s", ", ".join(f"cuda:{i}" for i in self.device_ids) or "cpu")
        log.info(
            "data %s: train %d, val %d, test %d samples",
            self.opt.data_type,
            len(self.data.train),
            len(self.data.val),
            len(self.data.test),
        )
        log.info("model %s\n%s", self.opt.model_type, describe_model(unwrap_model(self.model)))

    def log_epoch(self, improved: bool) -> None:
        """One log line per epoch, and every metric to TensorBoard at the global step."""
        for name, value in self.metrics.items():
            self.writer.add_scalar(name.replace("_", "/", 1), value, self.global_step)
        self.writer.flush()
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

    # ----- checkpoints -----------------------------------------------------------------------

    def checkpoint_path(self, kind: str) -> Path:
        """``<run_dir>/<model_type>_<kind>_ckpt.pth`` for kind best, last or interrupt."""
        return self.run_dir / f"{self.opt.model_type}_{kind}_ckpt.pth"

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on; only tensors and plain containers."""
        return {
            "model": unwrap_model(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "stopper": self.stopper.state_dict(),
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "global_step": self.global_step,
            "epoch_meters": self.epoch_meters.state_dict(),
            "epoch_skipped": self.epoch_skipped,
            "metrics": self.metrics,
            "config": vars(self.opt),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (checked for every entry on reading)."""
        load_model_state(self.model, state["model"], f"checkpoint {self.resume_path}")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stopper.load_state_dict(state["stopper"])
        self.epoch = state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self.global_step = state["global_step"]
        self.epoch_meters.load_state_dict(state["epoch_meters"])
        self.epoch_skipped = state["epoch_skipped"]
        self.metrics = state["metrics"]
        set_rng_state(state["rng"])

    def save(self, kind: str) -> Path:
        path = self.checkpoint_path(kind)
        save_checkpoint(path, self.state_dict())
        return path

    def save_interrupt_checkpoint(self, exc: BaseException) -> None:
        """Write the interrupt checkpoint and log how to continue; never masks ``exc``."""
        try:
            path = self.save("interrupt")
        except Exception as err:
            log.error(
                "%s, and the interrupt checkpoint could not be written: %s", type(exc).__name__, err
            )
            return
        stopped = isinstance(exc, StopRequested | KeyboardInterrupt)
        log.log(
            logging.WARNING if stopped else logging.ERROR,
            "%s in epoch %d after batch %d (step %d); saved %s\ncontinue with: %s",
            exc if isinstance(exc, StopRequested) else type(exc).__name__,
            self.epoch + 1,
            self.batch_in_epoch,
            self.global_step,
            path,
            resume_command(path),
        )
