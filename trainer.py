"""TrainerBase: a training run's objects and its loop.

A task subclasses TrainerBase, overrides only the hooks that differ (``build_loss``,
``compute_metrics``, ``train_step``...) and sets its own argparse defaults::

    parser = build_parser("Train my model.")
    parser.set_defaults(model_type="Vanilla", data_type="FashionMNIST", monitor="val_acc")
    MyTrainer(parser.parse_args()).train()

A run: select device(s) (one per process under torchrun) -> seed -> data -> run dir (new and
timestamped, or with ``--resume`` the checkpoint's own) -> model, loss, optimizer, scheduler,
AMP scaler, clipper, early stopper -> epochs of ``train_one_epoch`` -> ``validate`` -> log ->
best/last checkpoints -> early-stop check. The machinery the loop drives lives in
``utils/loop/``: the options in ``options.py``, the checkpoints and resuming in
``run_state.py``, the non-finite and stop checks in ``guard.py``, what the run records in
``run_log.py``, accumulation cycles in ``cycles.py``, ``--amp`` and ``--channels_last`` in
``amp.py``. The hot path never waits for the device for
book-keeping: losses and metrics are read only when a progress line or a summary shows them.
"""

import contextlib
import functools
import logging
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from data.augment import random_hflip
from data.data_entry import (
    DATASETS,
    FirstBatches,
    build_datasets,
    build_loader,
    end_workers,
    first_batch,
)
from data.splits import DataSplits, class_counts, class_labels, inverse_frequency
from model.model_entry import MODELS, build_model
from utils.loop import options
from utils.loop.amp import autocast, pick_precision, time_steps
from utils.loop.clipper import GradClipper
from utils.loop.compile import (
    check_compile_devices,
    compile_model,
    keep_gradients_allocated,
    replays_cuda_graphs,
)
from utils.loop.cycles import Cycles, scale_gradients
from utils.loop.device import channels_last, move_to, select_device
from utils.loop.distributed import gradients_synced, init_distributed, leave_process_group
from utils.loop.earlystopper import EarlyStopper, check_monitor
from utils.loop.ema import WeightAverage
from utils.loop.export import Pixels
from utils.loop.guard import RunGuard, warn_skipped
from utils.loop.logger import setup_logging
from utils.loop.memory import PeakMemory
from utils.loop.meter import MeterGroup
from utils.loop.optimizer import build_optimizer
from utils.loop.profile import StepProfiler
from utils.loop.progress import Progress
from utils.loop.run_log import RunLog
from utils.loop.run_state import RunState, open_run_dir, read_resume
from utils.loop.scheduler import build_scheduler, check_scheduler_options
from utils.loop.wandb_writer import import_wandb
from utils.records.status import FINISHED, RUNNING, STOPPED_EARLY, ending
from utils.seed import seed_everything
from utils.signals import StopRequested

__all__ = ["TrainerBase", "build_parser"]


def build_parser(description: str | None = None) -> options.TaskParser:
    """The options of every training script, with those of every registered dataset and
    model; a task script changes defaults with ``set_defaults``."""
    return options.build_parser(description, MODELS, DATASETS)


log = logging.getLogger(__name__)


def restart_epoch_averages(model: nn.Module) -> None:
    """Empty the running statistics of the BatchNorm layers built with ``momentum=None`` (a
    plain average of the batches seen), so that at the epoch's end they are its mean."""
    batch_norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
    for module in model.modules():
        if isinstance(module, batch_norms) and module.momentum is None:
            module.reset_running_stats()


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
            if self.device.type == "cuda":  # what asks "this GPU" (bf16 support...) asks it
                torch.cuda.set_device(self.device)
        else:  # torchrun: the GPU of this process's local rank, or the CPU
            self.device = dist_device
            self.device_ids = [dist_device.index] if dist_device.type == "cuda" else []
        check_compile_devices(opt.compile, self.device_ids)
        seed_everything(opt.seed + self.dist.rank, opt.deterministic)
        check_scheduler_options(opt)  # before a run dir exists
        if opt.wandb:
            import_wandb()  # a missing package is one line, before a run dir exists
        resume = read_resume(opt, self.dist)
        self.resume_path = resume.path if resume else None
        # Data first: a wrong --data_dir then fails before an empty run dir is left behind.
        self.data = self.build_data()
        # --fast_dev_run writes nothing: no run dir, log file, config, TensorBoard, metrics.
        self.run_dir = None if opt.fast_dev_run else open_run_dir(opt, self.dist, resume)
        self.run_log = RunLog(self.run_dir, opt, self.dist.is_main, self.device)

        self.train_loader = self.build_loader(self.data.train, train=True)
        self.val_loader = self.build_loader(self.data.val, train=False)
        self.steps_per_epoch = len(self.train_loader)  # batches of a whole epoch, this rank
        self.cycles = Cycles(opt.accum_steps, self.steps_per_epoch)
        self.class_weights = self.count_class_weights() if opt.class_weights == "auto" else None
        self.criterion = self.build_loss().to(self.device)
        model = self.build_model().to(self.device)
        picked = resume.state.get("precision") if resume else None
        batch = functools.partial(first_batch, self.data.train, opt.batch_size, self.device)
        timer = functools.partial(time_steps, model, batch, self.compute_loss)
        compiled = bool(opt.compile)  # auto then follows the rules: eager timings would not hold
        self.amp, self.channels_last, self.layout_why = pick_precision(
            opt.amp, opt.channels_last, self.device, model, picked, timer, self.dist, compiled
        )
        # net: the model on the device (compiled, if asked); model: what a training step calls,
        # net wrapped in DDP or DataParallel when there are several devices.
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.net = compile_model(model, opt.compile)
        self.model = self.wrap_model(self.net)
        self.cuda_graphs = replays_cuda_graphs(opt.compile, self.device)
        if self.cuda_graphs:  # gradients outside the graphs' memory pool
            keep_gradients_allocated(self.net)
        self.optimizer = build_optimizer(self.model, opt)
        self.ema = WeightAverage(model, opt.ema) if opt.ema else None  # model: the bare one
        self.scheduler = build_scheduler(self.optimizer, opt, self.cycles.per_epoch)
        self.fp16 = self.amp[0] == "fp16"  # whether the loss is scaled
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.fp16)
        self.clipper = GradClipper(opt.clip_grad_norm, opt.clip_grad_value)
        self.stopper = EarlyStopper(opt.patience, opt.min_delta, opt.monitor_mode)
        self.guard = RunGuard(self.steps_per_epoch, self.dist, self.device)
        self.peak_memory = PeakMemory(self.device)
        trace = (self.run_dir or Path(opt.output_dir)) / "profile_trace.json"
        steps = opt.profile if self.dist.is_main else 0
        self.profiler = StepProfiler(steps, self.device, trace)

        self.epoch = 0  # epochs completed
        self.batch_in_epoch = 0  # batches of the epoch in progress completed
        self.global_step = 0  # batches completed
        self.epoch_meters = MeterGroup()  # training averages of the epoch in progress
        self.epoch_skipped = 0  # batches of the epoch in progress skipped for a non-finite loss
        self.cycle_learned = 0  # batches of the accumulation cycle in progress in the gradients
        self.epoch_seconds_before = 0.0  # what the epoch in progress took before a resume
        self.epoch_start: float | None = None  # perf_counter() at which it would have begun
        self.metrics: dict[str, float] = {}
        self.state = RunState(self)
        if resume is not None:
            self.state.load(resume)
            position = (self.epoch + 1, self.batch_in_epoch, self.global_step)
            log.info("resuming %s at epoch %d, batch %d (step %d)", resume.path, *position)
        self.started_at = (self.epoch, self.batch_in_epoch)
        self.state.commit()
        self.run_log.open(self.global_step, self.epoch, resumed=resume is not None)

    # ----- hooks -----------------------------------------------------------------------------

    def build_data(self) -> DataSplits:
        """The train/val/test splits, by default from ``data_entry`` and ``--data_type``."""
        return build_datasets(self.opt)

    def build_model(self) -> nn.Module:
        """The bare model, by default from ``model_entry`` and ``--model_type``, told how the
        data preprocesses its images (a pretrained model adapts to it and loads its weights).
        A resumed run is not told: the checkpoint holds both, and the weights file may be gone."""
        data, pixels = self.data, DATASETS.lookup(self.opt.data_type).pixels
        if self.resume_path is not None:
            return build_model(self.opt, data.input_shape, data.num_outputs)
        if pixels is None:  # no images to describe: inputs taken as they come, as [0, 1]
            channels = data.input_shape[0]
            described = Pixels(tuple(data.input_shape[1:]), (0.0,) * channels, (1.0,) * channels)
        else:
            described = pixels(self.opt, data.info)
        return build_model(self.opt, data.input_shape, data.num_outputs, pixels=described)

    def build_loss(self) -> nn.Module:
        """The training criterion; cross-entropy (with ``--label_smoothing``) by default."""
        return nn.CrossEntropyLoss(
            weight=self.class_weights, label_smoothing=self.opt.label_smoothing
        )

    def count_class_weights(self) -> Tensor:
        """``--class_weights auto``: each class's inverse frequency over the training split
        (its labels, or its masks' pixels: a binary mask counts background and object), on the
        device, for :meth:`build_loss`."""
        labels = class_labels(self.data.train, "--class_weights auto")
        counts = class_counts(labels, max(self.data.num_outputs, 2))
        weights = inverse_frequency(counts)
        log.info(
            "--class_weights auto: counts %s, weights %s",
            counts.tolist(),
            [round(w, 4) for w in weights.tolist()],
        )
        return weights.to(self.device)

    def compute_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.criterion(outputs, targets)

    def compute_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, Tensor | float]:
        """Per-sample means over one batch (e.g. ``{"iou": ...}``), or per-sample outcomes as
        a 1-D bool tensor, which the meters count (``{"acc": correct(outputs, targets)}``); the
        loss is added for you.

        Return tensors rather than floats: ``.item()`` would make every step wait for the
        device, while the meters read them only when something is shown.
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
        self.run_log.start(
            self.device_ids, self.dist, self.precision(), self.data.summary(), self.model
        )
        self.write_status(RUNNING)
        together = False  # whether every rank ends here at the same point
        try:
            self.run_log.hparams(self.check_monitor())
            with self.guard.stop_signal:
                while self.epoch < self.opt.epochs and not self.stopper.should_stop:
                    self.train_epoch_and_validate()
                    self.guard.check_stop(self.global_step // self.opt.accum_steps, now=True)
                # Still inside: a signal now only sets a flag, so a run that trained to its end
                # is recorded as finished, never as interrupted halfway through saying so.
                self.write_status(STOPPED_EARLY if self.stopper.should_stop else FINISHED)
                together = True
        except BaseException as exc:
            if not together:  # training did not reach its end: record where it stopped
                together = isinstance(exc, StopRequested) or getattr(exc, "every_rank", False)
                self.state.save_interrupt(exc)
                self.write_status(*ending(exc))
            raise
        finally:
            self.profiler.close()
            self.run_log.close()
            self.end_workers()
            self.leave_process_group(together)
        self.state.drop_interrupt()
        best = self.checkpoint_path("best")
        self.run_log.end(self.guard.stop_signal.signum, self.stopper, self.EVAL_SCRIPT, best)
        return self.metrics

    def fast_dev_run(self) -> dict[str, float]:
        """``--fast_dev_run N``: N batches of training, of validation and of the test split
        through the task's hooks, writing nothing; a check in seconds that a long run gets
        going. Returns their metrics, named ``train_*``, ``val_*`` and ``test_*``."""
        start = time.perf_counter()
        self.run_log.start(
            self.device_ids, self.dist, self.precision(), self.data.summary(), self.model
        )
        together = False
        test_loader = self.build_loader(self.data.test, train=False)
        try:
            self.check_monitor()
            with self.guard.stop_signal:
                train = self.train_one_epoch()
            val = self.validate()
            test = self.evaluate(test_loader)
            together = True
        finally:
            self.profiler.close()
            self.end_workers()
            end_workers(test_loader)
            self.leave_process_group(together)
        splits = {"train": train, "val": val, "test": test}
        self.metrics = {f"{split}_{k}": v for split, m in splits.items() for k, v in m.items()}
        batches = (self.batch_in_epoch - self.started_at[1], len(self.val_loader), len(test_loader))
        self.run_log.fast_dev_run(self.metrics, batches, time.perf_counter() - start)
        return self.metrics

    def train_epoch_and_validate(self) -> None:
        """One epoch of training and validation with logging and checkpoints; its time
        includes what it took before a resume in its middle."""
        start = self.epoch_start = time.perf_counter() - self.epoch_seconds_before
        self.peak_memory.reset()
        self.epoch_seconds_before = 0.0
        train = self.train_one_epoch()
        if self.dist.enabled:  # an exception in validation saves from here, for every rank
            self.state.gather()
        val = self.validate()
        self.metrics = {
            **{f"train_{k}": v for k, v in train.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": self.lr,
            "epoch_time": time.perf_counter() - start,
            "memory_peak_mib": self.peak_memory.read_mib(),
        }
        if self.epoch_skipped:
            self.metrics["train_skipped"] = self.epoch_skipped
        self.epoch += 1
        self.batch_in_epoch = 0
        self.epoch_meters = MeterGroup()
        self.epoch_skipped = 0
        improved = self.stopper.step(self.metrics[self.opt.monitor])
        self.state.commit()
        self.run_log.epoch(self.epoch, self.global_step, self.metrics, self.stopper.best, improved)
        # Best before last: a kill between the two leaves last behind, never best.
        if improved:
            self.save("best")
        self.save("last")
        every = self.opt.log_images_every
        if self.dist.is_main and every and self.epoch % every == 0:
            self.log_images()

    def train_one_epoch(self) -> dict[str, float]:
        """Train over the epoch's batches (from ``batch_in_epoch`` on when resuming).

        Under DDP the ranks agree every ``utils.loop.guard.STOP_SYNC_STEPS`` optimizer steps on
        whether a stop signal or a non-finite loss arrived on any of them, and at its end.
        """
        self.model.train()
        if self.batch_in_epoch == 0:  # a resumed epoch goes on with the averages it had
            restart_epoch_averages(self.net)
        start = self.batch_in_epoch * self.opt.batch_size
        self.train_loader.sampler.set_epoch(self.epoch, start=start)
        every = self.opt.save_every_n_steps if self.run_dir else 0  # --fast_dev_run: no saves
        title = f"epoch {self.epoch + 1}/{self.opt.epochs}"
        progress = Progress(self.train_loader, self.steps_per_epoch, title, self.dist.is_main)
        for step, batch in enumerate(progress, start=1):
            inputs, targets = self.augment(*self.to_device(batch))
            samples = len(targets)
            ends_cycle = self.cycles.ends_at(self.batch_in_epoch + 1)
            skipped = self.epoch_skipped
            if self.cuda_graphs:  # this step's graph replays may reuse the last one's outputs
                torch.compiler.cudagraph_mark_step_begin()
            with gradients_synced(self.model, ends_cycle):
                loss, outputs = self.train_step(inputs, targets)
            self.batch_in_epoch += 1
            self.global_step += 1
            if self.epoch_skipped == skipped:
                self.guard.note(self.global_step, loss)
                self.epoch_meters.update(self.batch_stats(loss, outputs, targets), samples)
            if ends_cycle:
                self.optimizer_step()
            self.profiler.step()
            shown = progress.update(step, samples, self.running_stats)
            if shown and not self.dist.enabled:
                self.guard.raise_if_nonfinite()  # the host has just waited for the device
            if ends_cycle:  # a consistent state to stop or save
                if every and self.global_step % every == 0:
                    self.save("last")
                self.guard.check_stop(self.global_step // self.opt.accum_steps)
        self.guard.check_nonfinite()
        self.guard.check_skipped(self.epoch + 1, self.epoch_skipped, self.batch_in_epoch)
        return self.epoch_meters.global_averages(self.device)

    def validate(self, max_batches: int | None = None) -> dict[str, float]:
        """Loss and metrics over the validation split (or its first ``max_batches``)."""
        return self.evaluate(self.val_loader, max_batches)

    @torch.inference_mode()
    def evaluate(self, loader: Any, max_batches: int | None = None) -> dict[str, float]:
        """Loss and metrics over the batches of ``loader`` (or its first ``max_batches``).

        Under DDP each rank evaluates its own shard with the bare model (no collectives per
        batch) and the sums are reduced across ranks at the end. With ``--ema`` it is the
        weight average that is evaluated.
        """
        model = self.eval_model
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
        """The loss and the task's metrics of one batch, without autograd or waiting: on the
        outputs detached (cheaper per step than entering ``no_grad``)."""
        if isinstance(outputs, list):  # deep supervision
            outputs = [output.detach() for output in outputs]
        else:
            outputs = outputs.detach()
        return {"loss": loss, **self.compute_metrics(outputs, targets)}

    def running_stats(self) -> dict[str, float]:
        """What the progress bar shows: the epoch's running loss and the learning rate."""
        return {"loss": self.epoch_meters.average("loss"), "lr": self.lr}

    # ----- one optimisation step -------------------------------------------------------------

    def backward(self, loss: Tensor) -> bool:
        """Add this batch's gradients: the loss averaged over its accumulation cycle, scaled
        for ``--amp fp16``. Returns False, adding nothing, when ``--nonfinite skip`` drops it
        (which waits for the device, to decide)."""
        if self.opt.nonfinite == "skip" and not self.guard.finite(loss):
            self.epoch_skipped += 1
            position = (self.epoch + 1, self.batch_in_epoch + 1, self.global_step + 1)
            warn_skipped(*position, self.epoch_skipped)
            return False
        cycle = self.cycles.length(self.batch_in_epoch + 1)
        loss = loss if cycle == 1 else loss / cycle
        (self.scaler.scale(loss) if self.fp16 else loss).backward()
        self.cycle_learned += 1
        return True

    def optimizer_step(self) -> None:
        """End an accumulation cycle: unscale (fp16), clip, step, update the scaler, clear the
        gradients, advance the lr, and remember the state reached (``RunState.commit``).

        A cycle with skipped batches averages over the batches it kept; one that kept none
        leaves the weights alone but keeps its place in the schedule.
        """
        learned, cycle = self.cycle_learned, self.cycles.length(self.batch_in_epoch)
        if learned:
            if learned < cycle:  # average over the batches kept, not over the whole cycle
                scale_gradients(self.model.parameters(), cycle / learned)
            if self.fp16:  # the disabled scaler's calls cost a few Python frames a step
                self.scaler.unscale_(self.optimizer)
            if self.clipper.enabled:
                self.clipper(self.model.parameters())
            if self.fp16:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            if self.ema is not None:
                self.ema.update()
        self.optimizer.zero_grad(set_to_none=not self.cuda_graphs)
        self.scheduler.step()
        self.cycle_learned = 0
        self.state.commit()

    # ----- around the loop -------------------------------------------------------------------

    def check_monitor(self) -> list[str]:
        """Validate two batches before training, so a wrong ``--monitor`` fails in seconds;
        return the names of the metrics each epoch will report."""
        return check_monitor(self.opt.monitor, self.validate(max_batches=2))

    def save(self, kind: str, every_rank_here: bool = True) -> Path:
        """Write the ``kind`` (best, last, interrupt) checkpoint; see ``RunState.save``."""
        return self.state.save(kind, every_rank_here)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds: everything the next step depends on."""
        return self.state.state_dict()

    def checkpoint_path(self, kind: str) -> Path:
        return self.state.path(kind)

    def write_status(self, state: str, error: str | None = None) -> None:
        """Rank 0 records in status.json where the run stands."""
        self.run_log.status(state, self.epoch, self.stopper.best, error)

    @property
    def writer(self) -> SummaryWriter | None:
        """TensorBoard (or W&B) of this run; None on other ranks and with --fast_dev_run."""
        return self.run_log.writer

    # ----- the run's objects -----------------------------------------------------------------

    @property
    def eval_model(self) -> nn.Module:
        """What validation runs: the weight average with ``--ema``; else the model, bare under
        DDP (each rank evaluates its own shard, with no collectives)."""
        if self.ema is not None:
            return self.ema.module
        return self.net if self.dist.enabled else self.model

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def build_loader(self, dataset: Any, train: bool) -> Any:
        """A loader over this rank's shard, training shards padded to equal length; with
        ``--fast_dev_run N`` its first N batches."""
        dist, n = self.dist, self.opt.fast_dev_run
        loader = build_loader(
            dataset, self.opt, train, self.device, dist.world_size, dist.rank, train
        )
        return FirstBatches(loader, n) if n else loader

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """DDP under torchrun, DataParallel over several ``--gpu_devices``, else the model."""
        if self.dist.enabled:
            return DistributedDataParallel(model, device_ids=self.device_ids or None)
        if len(self.device_ids) > 1:
            log.info("DataParallel over GPUs %s", self.device_ids)
            return nn.DataParallel(model, device_ids=self.device_ids)
        return model

    def end_workers(self) -> None:
        """End the loaders' worker processes as training ends, not whenever the garbage
        collector gets to them (see ``data_entry.end_workers``)."""
        end_workers(self.train_loader)
        end_workers(self.val_loader)

    def leave_process_group(self, together: bool) -> None:
        """Under DDP, drop the wrapper that holds the process group, then leave it. Together,
        the ranks first wait for rank 0's last save: torchrun stops the others once one exits.
        """
        if self.dist.enabled:
            self.model = self.net
            leave_process_group(wait_for_all=together)

    def precision(self) -> tuple[tuple[str, str], bool, str | None]:
        """``(--amp as resolved and why, channels_last, why the layout if not the rule)``."""
        return self.amp, self.channels_last, self.layout_why

    def to_device(self, batch: Any) -> tuple[Tensor, Tensor]:
        """``(inputs, targets)`` on the device; image batches in ``--channels_last`` format."""
        inputs, targets = batch
        if isinstance(inputs, Tensor) and isinstance(targets, Tensor):  # the usual pair: no walk
            inputs = inputs.to(self.device, non_blocking=True)
            targets = targets.to(self.device, non_blocking=True)
        else:
            inputs, targets = move_to(batch, self.device)
        return (channels_last(inputs) if self.channels_last else inputs), targets

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision as ``--amp`` resolved on this device; a no-op when off."""
        return autocast(self.device, self.amp[0])
