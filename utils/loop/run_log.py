"""What rank 0 records of a run in its run dir: train.log, config.json, TensorBoard (or W&B)
scalars and hparams, metrics.csv and status.json, and the lines logged when training starts
and at each epoch's end. Other ranks and ``--fast_dev_run`` (no run dir) record nothing."""

import logging
import math
import signal
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from utils.atomic import remove_partial_writes
from utils.cli import script_command
from utils.loop.amp import log_precision
from utils.loop.distributed import DistInfo
from utils.loop.earlystopper import EarlyStopper
from utils.loop.hparams import write_hparams
from utils.loop.logger import FILE_ONLY, setup_logging
from utils.loop.wandb_writer import WandbWriter
from utils.records.checkpoint import unwrap_model
from utils.records.config import CONFIG_NAME, add_to_config, environment_info, save_config
from utils.records.history import METRICS_NAME, MetricsHistory
from utils.records.status import STATUS_NAME, write_status

log = logging.getLogger(__name__)


def scalar_tag(metric: str) -> str:
    """The TensorBoard tag of a metric: ``val_acc`` -> ``val/acc``, ``epoch_time`` ->
    ``epoch/time``."""
    return metric.replace("_", "/", 1)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(total, trainable)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def summarize_model(name: str, counts: tuple[int, int], input_shape: tuple[int, ...]) -> str:
    """One line for the terminal: the model's name, its :func:`count_parameters` and the
    input shape."""
    total, trainable = counts
    shape = "x".join(map(str, input_shape))
    return f"{name}: {total:,} parameters ({trainable:,} trainable), input {shape}"


def describe_model(model: nn.Module) -> str:
    """The module tree followed by its parameter counts, for the start of the log."""
    total, trainable = count_parameters(model)
    return f"{model}\nparameters: {total:,} ({trainable:,} trainable)"


def describe_classes(names: list[str], most: int = 200) -> str:
    """``classes a, b, c``, cut after ``most`` characters with the count."""
    listed = ", ".join(names)
    return "classes " + (listed if len(listed) <= most else f"{len(names)} ({listed[:most]}...)")


def describe_groups(groups: dict[str, list[str]], most: int = 12) -> str:
    """``train a, b; val c; test d`` (the first ``most`` of a split, then how many in all)."""
    parts = []
    for split, names in groups.items():
        more = f", ... ({len(names)} in all)" if len(names) > most else ""
        parts.append(f"{split} {', '.join(names[:most])}{more}")
    return "; ".join(parts)


def epoch_line(metrics: dict[str, float]) -> str:
    """The metrics of an epoch as its log line shows them."""
    formats = {
        "lr": "{:.3g}",
        "epoch_time": "{:.1f}s",
        "memory_peak_mib": "{:.0f}",
        "train_skipped": "{:g}",
    }
    return "  ".join(f"{k} {formats.get(k, '{:.4f}').format(v)}" for k, v in metrics.items())


class RunLog:
    """The records of the run in ``run_dir`` (None: record nothing), kept by rank 0.

    Created when the run dir exists: the log goes to its train.log too, a new run writes
    config.json, and temp files of a save cut short by a kill are removed. :meth:`open`
    starts TensorBoard and metrics.csv once the run knows where it stands: a resumed run
    drops what the earlier process logged after its checkpoint.
    """

    def __init__(
        self, run_dir: Path | None, opt: Namespace, is_main: bool, device: torch.device
    ) -> None:
        self.run_dir = run_dir if is_main else None
        self.opt = opt
        self.is_main = is_main
        self.writer: SummaryWriter | None = None
        self.history: MetricsHistory | None = None
        self.peak_mib = 0.0  # the most any epoch of this process held
        if self.run_dir is None:
            return
        setup_logging(self.run_dir / "train.log")
        if not opt.resume:
            save_config(self.run_dir / CONFIG_NAME, vars(opt), environment_info(device))
        for leftover in remove_partial_writes(self.run_dir):
            log.info("removed %s, a save cut short when the run was killed", leftover.name)

    def open(self, global_step: int, epoch: int, resumed: bool) -> None:
        """Start TensorBoard (or W&B) and metrics.csv at ``global_step`` and ``epoch``."""
        if self.run_dir is None:
            return
        purge = global_step + 1 if resumed else None
        opt = self.opt
        self.writer = (
            WandbWriter(self.run_dir, purge, vars(opt))
            if opt.wandb
            else SummaryWriter(self.run_dir, purge_step=purge)
        )
        self.history = MetricsHistory(self.run_dir / METRICS_NAME, through_epoch=epoch)

    def start(
        self,
        device_ids: list[int],
        dist: DistInfo,
        precision: tuple[tuple[str, str], bool, str | None],
        data: dict[str, Any],
        model: nn.Module,
    ) -> None:
        """The lines that open a run's log: where it writes, on what (the GPUs, DDP), in
        which precision (``(amp, channels_last, why the layout)``), on which data, with which
        model."""
        if not self.is_main:
            return
        if self.opt.fast_dev_run:
            n = self.opt.fast_dev_run
            log.info("fast_dev_run: %d batches of each split; nothing is written", n)
        else:
            log.info("run dir %s", self.run_dir)
        devices = ", ".join(f"cuda:{i}" for i in device_ids) or "cpu"
        if dist.enabled:
            devices += f" (rank 0 of {dist.world_size} DDP processes)"
        log.info("device %s", devices)
        amp, channels_last, layout_why = precision
        log_precision(amp, channels_last, self.opt.channels_last, layout_why)
        train, val, test = data["samples"].values()
        classes = describe_classes(data["class_names"]) if data["class_names"] else ""
        log.info(
            "data %s: train %d, val %d, test %d samples; %s",
            self.opt.data_type,
            train,
            val,
            test,
            classes or f"{data['num_outputs']} outputs",
        )
        if data["groups"]:
            log.info("groups, each whole in one split: %s", describe_groups(data["groups"]))
        bare = unwrap_model(model)
        total, trainable = counts = count_parameters(bare)
        log.info("model %s", summarize_model(self.opt.model_type, counts, data["input_shape"]))
        log.info("model %s\n%s", self.opt.model_type, describe_model(bare), extra=FILE_ONLY)
        if self.run_dir is not None and not self.opt.resume:
            decided = {
                "device": devices,
                "amp": amp[0],
                "channels_last": channels_last,
                **{key: data[key] for key in ("input_shape", "num_outputs", "samples", "groups")},
                "parameters": total,
                "trainable_parameters": trainable,
            }
            add_to_config(self.run_dir / CONFIG_NAME, "decided", decided)

    def fast_dev_run(
        self, metrics: dict[str, float], batches: tuple[int, int, int], seconds: float
    ) -> None:
        """The metrics of a ``--fast_dev_run`` and the batches it ran of each split."""
        log.info("fast_dev_run: %s", "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        written = "only the --profile trace" if self.opt.profile else "nothing"
        log.info(
            "fast_dev_run: %s written (no run dir, checkpoint, TensorBoard or metrics); "
            "%d training, %d validation and %d test batches in %.1f s",
            written,
            *batches,
            seconds,
        )

    def hparams(self, metric_names: list[str]) -> None:
        """The options as TensorBoard hparams (less those of the datasets and models not
        selected), compared by every logged metric and the best ``--monitor`` value."""
        if self.writer is not None:
            tags = [scalar_tag(name) for name in metric_names] + [f"best/{self.opt.monitor}"]
            write_hparams(self.writer, vars(self.opt), tags)

    def epoch(
        self, epoch: int, global_step: int, metrics: dict[str, float], best: float, improved: bool
    ) -> None:
        """One log line per epoch; every metric and the best ``--monitor`` value so far to
        TensorBoard at the global step, and a row of metrics.csv."""
        if not self.is_main:
            return
        self.peak_mib = max(self.peak_mib, metrics.get("memory_peak_mib", 0.0))
        if self.writer is not None:
            for name, value in metrics.items():
                self.writer.add_scalar(scalar_tag(name), value, global_step)
            self.writer.add_scalar(f"best/{self.opt.monitor}", best, global_step)
            self.writer.flush()
            self.history.append(epoch, global_step, metrics)
        marked = "  *best*" if improved else ""
        log.info("epoch %d/%d  %s%s", epoch, self.opt.epochs, epoch_line(metrics), marked)

    def status(self, state: str, epoch: int, best: float, error: str | None = None) -> None:
        """Where the run stands, in status.json (``utils/records/status.py``); a failure to write it
        is logged, never raised over what ended the run."""
        if self.run_dir is None:
            return
        try:
            write_status(
                self.run_dir,
                state,
                epoch=epoch,
                epochs=self.opt.epochs,
                monitor=self.opt.monitor,
                best=best if math.isfinite(best) else None,
                error=error,
            )
        except OSError as err:
            log.error("could not write %s: %s", STATUS_NAME, err)

    def end(
        self, signum: int | None, stopper: EarlyStopper, eval_script: str | None, best: Path
    ) -> None:
        """How a run that trained to its end ended: a signal that came too late to stop it
        (``signum``), early stopping, the best value, the peak memory of the epochs this
        process trained, and the command that evaluates the ``best`` checkpoint with the
        task's ``eval_script``."""
        if signum is not None:
            name = signal.Signals(signum).name
            log.info("%s arrived as training ended; nothing was left to stop", name)
        monitor = self.opt.monitor
        if stopper.should_stop:
            log.info("early stop: %s has not improved for %d epochs", monitor, stopper.bad_epochs)
        memory = f"; peak memory {self.peak_mib:.0f} MiB" if self.peak_mib else ""
        log.info("done: best %s %.4f%s; run dir %s", monitor, stopper.best, memory, best.parent)
        if eval_script and best.is_file():
            command = script_command(eval_script, "--model_path", best)
            log.info("evaluate the best checkpoint with: %s", command)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
