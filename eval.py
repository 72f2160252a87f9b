"""EvaluatorBase: rebuild a run from its checkpoint; evaluate the test split or predict images.

Given only ``--model_path``, the evaluator reads the run's options and the description of its
data (input shape, classes) from the checkpoint (a checkpoint without options: from the
``config.json`` beside it), builds the same model through the same entry functions as the
trainer, loads the weights and streams the test split through ``reset`` / ``update`` /
``compute`` hooks::

    class MyEvaluator(EvaluatorBase):
        def reset(self): ...
        def update(self, inputs, outputs, targets): ...
        def compute(self): return {"accuracy": ...}

With ``--input`` (image files, folders, globs) it predicts those images instead, without the
training data: each file is preprocessed by its dataset's ``load_input`` in DataLoader workers,
and the outputs go to the ``prediction_files`` / ``save_predictions`` / ``finish_predictions``
hooks. With ``--export PATH`` it writes the model instead, with the run's input preprocessing
and the task's output head, as a program that plain PyTorch loads (``utils/loop/export.py``):
the ``export_head`` hook says what the program returns.
"""

import argparse
import json
import logging
import os
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from data.data_entry import DATASETS, build_datasets, build_loader, input_loader
from data.image_files import ImageFiles, collate_by_shape, find_images
from data.splits import DataInfo
from model.model_entry import MODELS, build_model
from utils.atomic import atomic_write
from utils.cli import ArgumentParser, fraction, non_negative_int, positive_int, str2bool
from utils.errors import UsageError
from utils.loop.amp import (
    AMP_CHOICES,
    auto_or_bool,
    autocast,
    log_precision,
    resolve_amp,
    resolve_channels_last,
)
from utils.loop.device import channels_last, move_to, select_device
from utils.loop.export import Head, Program, check_export_path, export_program
from utils.loop.logger import setup_logging
from utils.loop.progress import Progress
from utils.loop.tta import TTA_CHOICES, flip_average
from utils.records.checkpoint import load_checkpoint, load_model_state
from utils.records.config import CONFIG_NAME, RunOptions, load_config, with_stand_ins
from utils.records.rundir import make_dirs

log = logging.getLogger(__name__)

# What runs trained before an option existed did, for configs that lack it.
OLD_RUN_DEFAULTS = {"amp": "off", "channels_last": False}


def build_eval_parser(description: str | None = None) -> argparse.ArgumentParser:
    """Options of every evaluator; anything not given here comes from the run's options."""
    parser = ArgumentParser(description=description)
    parser.add_argument("--model_path", required=True, help="checkpoint (.pth) written by a run")
    parser.add_argument(
        "--input",
        nargs="+",
        default=None,
        metavar="PATH",
        help="predict these image files, folders (their images) or globs instead of evaluating "
        "the test split; needs --save_path",
    )
    parser.add_argument(
        "--export",
        default=None,
        metavar="PATH",
        help="write the model with its input preprocessing and output head as a program plain "
        "PyTorch runs: PATH.pt2 (torch.export) or PATH.onnx (needs onnx, onnxscript); "
        "nothing is evaluated",
    )
    parser.add_argument(
        "--tta",
        choices=TTA_CHOICES,
        default="none",
        help="flip: predict with the mean of each image's and its mirror's probabilities; an "
        "evaluation reports it beside the plain figures",
    )
    parser.add_argument("--gpu_devices", default="auto", help="'auto', 'cpu' or a GPU id")
    parser.add_argument("--save_path", default=None, help="output dir; default: the run dir")
    parser.add_argument(
        "--overwrite", type=str2bool, default=False, help="replace earlier predictions there"
    )
    parser.add_argument("--data_dir", default=None, help="dataset location; default: the run's")
    parser.add_argument(
        "--test_sample_rate", type=fraction, default=None, help="share of the test split to score"
    )
    parser.add_argument("--batch_size", type=positive_int, default=None, help="default: the run's")
    parser.add_argument("--num_workers", type=non_negative_int, default=None, help="loader procs")
    parser.add_argument(
        "--amp", choices=AMP_CHOICES, default=None, help="default: the run's, auto resolved here"
    )
    parser.add_argument(
        "--channels_last", type=auto_or_bool, default=None, help="NHWC batches; default: the run's"
    )
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


def check_new_files(files: list[Path], overwrite: bool) -> None:
    """Refuse to write one file twice, or over an earlier one unless ``overwrite``."""
    seen: set[Path] = set()
    for path in files:
        if path in seen:
            raise UsageError(
                f"two --input images would both write {path}; rename one or predict them "
                "into separate --save_path folders"
            )
        seen.add(path)
    existing = [path for path in files if path.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise UsageError(
            f"{existing[0]} already exists{more}; pass --overwrite True to replace it, or "
            "another --save_path"
        )


class EvaluatorBase:
    """Evaluates one checkpoint on the test split of its data, or predicts image files."""

    OVERRIDES = (
        "data_dir",
        "test_sample_rate",
        "batch_size",
        "num_workers",
        "amp",
        "channels_last",
    )

    def __init__(self, opt: Namespace) -> None:
        setup_logging()
        self.opt = opt
        self.checkpoint_path = Path(opt.model_path)
        if opt.input and not opt.save_path:
            raise UsageError("--input: pass --save_path too, the folder for the predictions")
        if opt.export:
            check_export_path(Path(opt.export))
            if Path(opt.export).exists() and not opt.overwrite:
                raise UsageError(
                    f"--export {opt.export}: already exists; pass --overwrite True to replace it"
                )
        self.inputs = find_images(opt.input) if opt.input else []
        state = load_checkpoint(self.checkpoint_path)
        self.cfg = self.read_options(state)
        self.device, _ = select_device(opt.gpu_devices)
        # Prediction and export need no data, unless the checkpoint is too old to describe it.
        self.data = None if self.inputs or opt.export else build_datasets(self.cfg)
        self.data_info = self.read_data_info(state)
        if self.inputs:
            self.load_input = input_loader(self.cfg, self.data_info)  # refuses data without it
        self.model = self.prepare_model(state["model"])
        self.save_path = Path(opt.save_path) if opt.save_path else self.checkpoint_path.parent
        if self.inputs:
            check_new_files(self.prediction_files(), opt.overwrite)
        # Last, so that bad input found above leaves no empty output directory behind.
        make_output_dir(self.save_path)

    def read_options(self, state: dict[str, Any]) -> RunOptions:
        """The run's options from the checkpoint (or the config.json beside a checkpoint that
        holds none), with what this command overrides."""
        config = self.checkpoint_path.parent / CONFIG_NAME
        if "config" in state:
            source, options = f"checkpoint {self.checkpoint_path}", state["config"]
        elif config.exists():
            source, options = f"config {config}", load_config(config)["options"]
        else:
            raise UsageError(
                f"checkpoint {self.checkpoint_path} holds no options (it predates them) and "
                f"config {config} not found; put the config.json of its run beside it"
            )
        given = {
            k: getattr(self.opt, k) for k in self.OVERRIDES if getattr(self.opt, k) is not None
        }
        return RunOptions(source, {**OLD_RUN_DEFAULTS, **with_stand_ins(options), **given})

    def read_data_info(self, state: dict[str, Any]) -> DataInfo:
        """Input shape and classes from the checkpoint; a checkpoint written before it kept
        them gets them from the run's data."""
        if "data" in state:
            return DataInfo.from_state_dict(state["data"])
        if self.data is None:
            try:
                self.data = build_datasets(self.cfg)
            except UsageError as err:
                raise UsageError(
                    f"checkpoint {self.checkpoint_path} does not hold the input shape and class "
                    f"names (it predates them), and the run's data could not tell them: {err}. "
                    "Pass --data_dir with the data the run trained on"
                ) from None
        return self.data.info

    def prepare_model(self, weights: dict[str, Tensor]) -> nn.Module:
        """The run's model with the checkpoint's weights, on the device, in eval mode."""
        model = build_model(self.cfg, self.data_info.input_shape, self.data_info.num_outputs)
        load_model_state(model, weights, f"checkpoint {self.checkpoint_path}")
        model.to(self.device).eval()
        self.amp = resolve_amp(self.cfg.amp, self.device)
        self.channels_last = resolve_channels_last(self.cfg.channels_last, model)
        log_precision(self.amp, self.channels_last, self.cfg.channels_last)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    # ----- hooks: evaluation -----------------------------------------------------------------

    def build_test_set(self) -> Dataset:
        """What the test pass iterates; by default the test split."""
        return self.data.test

    def reset(self) -> None:
        """Clear accumulated state before a pass over the test split or the inputs."""

    def update(self, inputs: Tensor, outputs: Tensor, targets: Any) -> None:
        """Accumulate one batch."""
        raise NotImplementedError

    def compute(self) -> dict[str, Any]:
        """The metrics over everything accumulated since ``reset``; JSON-compatible values."""
        raise NotImplementedError

    def report(self, metrics: dict[str, Any]) -> None:
        """Show the metrics; by default one log line per scalar."""
        for name, value in metrics.items():
            if isinstance(value, int):  # a count, such as the samples scored
                log.info("test %s %d", name, value)
            elif isinstance(value, float):
                log.info("test %s %.4f", name, value)

    # ----- hooks: prediction -----------------------------------------------------------------

    def prediction_files(self) -> list[Path]:
        """Every file that predicting ``self.inputs`` will write, checked before it starts."""
        raise NotImplementedError

    def save_predictions(
        self, paths: list[Path], outputs: Tensor, sizes: list[tuple[int, int]]
    ) -> None:
        """Write or collect the predictions of one batch of input files; ``sizes`` holds each
        image's own ``(height, width)``."""
        raise NotImplementedError

    def finish_predictions(self) -> None:
        """Write what ``save_predictions`` collected, once every input is through."""

    # ----- the passes ------------------------------------------------------------------------

    def forward(self, inputs: Tensor, tta: str = "none") -> Tensor:
        """Float outputs of a batch on the device, under the run's ``--amp`` and memory format;
        with ``tta`` ``flip``, outputs whose probabilities are those of the image and its mirror
        averaged (``utils/loop/tta.py``)."""
        if tta == "flip":
            per_pixel = MODELS.lookup(self.cfg.model_type).per_pixel
            return flip_average(self.forward, inputs, self.activation, per_pixel)
        if self.channels_last:
            inputs = channels_last(inputs)
        with autocast(self.device, self.amp[0]):
            return self.model(inputs).float()

    @property
    def activation(self) -> str:
        """How the outputs become probabilities, for ``--tta``: ``softmax`` over classes,
        ``sigmoid`` or ``identity`` (outputs averaged as they are, the default)."""
        return "identity"

    @torch.inference_mode()
    def evaluate(self, tta: str = "none") -> dict[str, Any]:
        """One pass over the test split through the hooks, with test-time augmentation
        ``tta``."""
        self.reset()
        loader = build_loader(self.build_test_set(), self.cfg, shuffle=False, device=self.device)
        progress = Progress(loader, len(loader), "test" if tta == "none" else f"test, tta {tta}")
        for step, batch in enumerate(progress, start=1):
            inputs, targets = move_to(batch, self.device)
            self.update(inputs, self.forward(inputs, tta), targets)
            progress.update(step, len(inputs))
        return self.compute()

    @torch.inference_mode()
    def predict(self) -> int:
        """Predict every input file through the hooks; return how many could not be read.

        Images of one shape are batched together; an unreadable file is logged in one line
        and the others go on.
        """
        self.reset()
        loader = DataLoader(
            ImageFiles(self.inputs, self.load_input),
            batch_size=self.cfg.batch_size,
            num_workers=self.cfg.num_workers,
            collate_fn=collate_by_shape,
            pin_memory=self.device.type == "cuda",
        )
        failed = 0
        progress = Progress(loader, len(loader), "predict")
        for step, (errors, batches) in enumerate(progress, start=1):
            for error in errors:
                log.error("skipped: %s", error)
            failed += len(errors)
            for batch in batches:
                inputs = batch.inputs.to(self.device, non_blocking=True)
                outputs = self.forward(inputs, self.opt.tta)
                self.save_predictions(batch.paths, outputs, batch.sizes)
            progress.update(step, len(errors) + sum(len(batch.paths) for batch in batches))
        self.finish_predictions()
        return failed

    def run(self) -> dict[str, Any] | None:
        """Export the model, predict the ``--input`` files, or evaluate the test split and save
        its metrics."""
        if self.opt.export:
            if self.opt.tta != "none":
                raise UsageError(
                    f"--tta {self.opt.tta} with --export: the exported program returns the plain "
                    "prediction; average it with its mirror's in your own code, or drop --tta"
                )
            return self.run_export(Path(self.opt.export))
        return self.run_prediction() if self.inputs else self.run_evaluation()

    # ----- hooks: export ---------------------------------------------------------------------

    def export_head(self) -> tuple[Head, str]:
        """What the exported program returns for a batch of images: a function of the model's
        outputs and the uint8 images, and its description for ``task.json``. By default the
        outputs as they are."""
        return lambda outputs, images: outputs, "the model's outputs"

    def run_export(self, path: Path) -> None:
        """Write the model with its dataset's preprocessing and :meth:`export_head` to
        ``path`` (see ``utils/loop/export.py``)."""
        pixels = DATASETS.lookup(self.cfg.data_type).pixels
        if pixels is None:
            raise UsageError(
                f"--export: --data_type {self.cfg.data_type} names no pixels (how an image "
                "becomes the model's input); the exported program takes images"
            )
        head, outputs = self.export_head()
        info = self.data_info
        model = self.model.float().cpu().to(memory_format=torch.contiguous_format)
        program = Program(pixels(self.cfg, info), model, head).requires_grad_(False)
        task = {
            "run": self.checkpoint_path.parent.name,
            "checkpoint": self.checkpoint_path.name,
            "model_type": self.cfg.model_type,
            "data_type": self.cfg.data_type,
            "channels": info.input_shape[0],
            "trained_size": list(program.preprocess.size),
            "class_names": list(info.class_names),
            "input": "uint8 images (N, C, H, W) of any size; batch, height and width dynamic",
            "outputs": outputs,
        }
        start = time.perf_counter()
        make_dirs(path.parent)
        export_program(program, info.input_shape[0], task, path)
        seconds = time.perf_counter() - start
        log.info("exported %s to %s in %.1f s", self.checkpoint_path, path, seconds)
        log.info("it takes %s and returns %s", task["input"], outputs)

    def run_evaluation(self) -> dict[str, Any]:
        """Evaluate, report, and save the metrics as JSON beside the other outputs."""
        rate = self.cfg.test_sample_rate
        share = f" ({rate:g} of the split: --test_sample_rate)" if rate < 1 else ""
        log.info(
            "evaluating %s on %d test samples%s", self.checkpoint_path, len(self.data.test), share
        )
        if self.data.groups:
            log.info("test groups: %s", ", ".join(self.data.groups["test"]))
        metrics = self.evaluate()
        self.report(metrics)
        record = {"checkpoint": str(self.checkpoint_path), "metrics": metrics}
        if self.opt.tta != "none":  # beside the plain figures and files, not instead of them
            log.info("with --tta %s:", self.opt.tta)
            self.variant = f"tta_{self.opt.tta}"
            augmented = self.evaluate(self.opt.tta)
            self.report(augmented)
            self.variant = ""
            record[f"metrics_tta_{self.opt.tta}"] = augmented
        path = self.output_path("test_metrics.json")
        atomic_write(path, lambda f: f.write(json.dumps(record, indent=2).encode() + b"\n"))
        log.info("metrics saved to %s", path)
        return metrics

    def run_prediction(self) -> None:
        """Predict, log images/s, and fail at the end if any input could not be read."""
        log.info("predicting %d images with %s", len(self.inputs), self.checkpoint_path)
        start = time.perf_counter()
        failed = self.predict()
        seconds = time.perf_counter() - start
        done = len(self.inputs) - failed
        log.info(
            "predicted %d images in %.1f s (%.1f images/s); saved to %s",
            done,
            seconds,
            done / seconds,
            self.save_path,
        )
        if failed:
            raise UsageError(
                f"{failed} of {len(self.inputs)} input files could not be read (listed above); "
                "the others were predicted"
            )

    variant = ""  # "tta_flip" while the --tta pass writes its files

    def output_path(self, name: str) -> Path:
        """``<save_path>/<checkpoint stem>_<name>``, so evaluations of best and last coexist;
        the files of a ``--tta`` pass are named ``<stem>_tta_flip_<name>`` beside them."""
        variant = f"_{self.variant}" if self.variant else ""
        return self.save_path / f"{self.checkpoint_path.stem}{variant}_{name}"
