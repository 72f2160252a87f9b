"""EvaluatorBase: rebuild a run from its checkpoint and saved config, evaluate the test split.

Given only ``--model_path``, the evaluator reads ``config.json`` beside the checkpoint, builds
the same dataset and model through the same entry functions as the trainer, loads the weights
and streams the test split through ``reset`` / ``update`` / ``compute`` hooks::

    class MyEvaluator(EvaluatorBase):
        def reset(self): ...
        def update(self, inputs, outputs, targets): ...
        def compute(self): return {"accuracy": ...}
"""

import argparse
import json
import logging
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from data.data_entry import build_datasets, build_loader
from model.model_entry import build_model
from utils.atomic import atomic_write
from utils.checkpoint import load_checkpoint, load_model_state
from utils.cli import ArgumentParser, non_negative_int, positive_int
from utils.config import CONFIG_NAME, RunOptions, load_config
from utils.device import move_to, select_device
from utils.errors import UsageError
from utils.logger import setup_logging
from utils.progress import Progress
from utils.rundir import make_dirs

log = logging.getLogger(__name__)


def build_eval_parser(description: str | None = None) -> argparse.ArgumentParser:
    """Options of every evaluator; anything not given here comes from the run's config."""
    parser = ArgumentParser(description=description)
    parser.add_argument("--model_path", required=True, help="checkpoint (.pth) inside a run dir")
    parser.add_argument("--gpu_devices", default="auto", help="'auto', 'cpu' or a GPU id")
    parser.add_argument("--save_path", default=None, help="output dir; default: the run dir")
    parser.add_argument("--data_dir", default=None, help="dataset location; default: the run's")
    parser.add_argument("--batch_size", type=positive_int, default=None, help="default: the run's")
    parser.add_argument("--num_workers", type=non_negative_int, default=None, help="loader procs")
    return parser


def make_output_dir(path: Path) -> None:
    """Create ``path`` for the evaluator's outputs; a UsageError unless it is a writable dir."""
    try:
        make_dirs(path)
    except OSError as err:
        reason = f"{err.strerror}: {err.filename}"
    else:
        if os.access(path, os.W_OK | os.X_OK):
            return
        reason = "no write permission"
    raise UsageError(
        f"--save_path {path}: cannot write there ({reason}); expected a writable directory"
    )


class EvaluatorBase:
    """Evaluates one checkpoint on the test split of the data it was trained on."""

    OVERRIDES = ("data_dir", "batch_size", "num_workers")

    def __init__(self, opt: Namespace) -> None:
        setup_logging()
        self.opt = opt
        self.checkpoint_path = Path(opt.model_path)
        state = load_checkpoint(self.checkpoint_path)
        config = self.checkpoint_path.parent / CONFIG_NAME
        options = load_config(config)["options"]
        options.update({k: getattr(opt, k) for k in self.OVERRIDES if getattr(opt, k) is not None})
        self.cfg = RunOptions(config, options)

        self.device, _ = select_device(opt.gpu_devices)
        self.data = build_datasets(self.cfg)
        self.test_loader = build_loader(self.data.test, self.cfg, shuffle=False, device=self.device)
        self.model = build_model(self.cfg, self.data.input_shape, self.data.num_classes)
        load_model_state(self.model, state["model"], f"checkpoint {self.checkpoint_path}")
        self.model.to(self.device).eval()
        # Last, so that bad input found above leaves no empty output directory behind.
        self.save_path = Path(opt.save_path) if opt.save_path else self.checkpoint_path.parent
        make_output_dir(self.save_path)

    # ----- hooks -----------------------------------------------------------------------------

    def reset(self) -> None:
        """Clear accumulated state before a pass over the test split."""

    def update(self, inputs: Tensor, outputs: Tensor, targets: Tensor) -> None:
        """Accumulate one batch."""
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:
        """The metrics over everything accumulated since ``reset``; JSON-compatible values."""
        raise NotImplementedError

    def report(self, metrics: dict[str, Any]) -> None:
        """Show the metrics; by default one log line per scalar."""
        for name, value in metrics.items():
            if isinstance(value, float | int):
                log.info("test %s %.4f", name, value)

    # ----- the pass --------------------------------------------------------------------------

    @torch.inference_mode()
    def evaluate(self) -> dict[str, Any]:
        """One pass over the test split through the hooks."""
        self.reset()
        progress = Progress(self.test_loader, len(self.test_loader), "test")
        for step, batch in enumerate(progress, start=1):
            inputs, targets = move_to(batch, self.device)
            self.update(inputs, self.model(inputs), targets)
            progress.update(step, len(targets))
        return self.compute()

    def run(self) -> dict[str, Any]:
        """Evaluate, report, and save the metrics as JSON beside the other outputs."""
        log.info("evaluating %s on %d test samples", self.checkpoint_path, len(self.data.test))
        metrics = self.evaluate()
        self.report(metrics)
        path = self.output_path("test_metrics.json")
        record = {"checkpoint": str(self.checkpoint_path), "metrics": metrics}
        atomic_write(path, lambda f: f.write(json.dumps(record, indent=2).encode() + b"\n"))
        log.info("metrics saved to %s", path)
        return metrics

    def output_path(self, name: str) -> Path:
        """``<save_path>/<checkpoint stem>_<name>``, so evaluations of best and last coexist."""
        return self.save_path / f"{self.checkpoint_path.stem}_{name}"
