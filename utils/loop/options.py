"""The options every training script shares (``build_parser``), grouped as ``--help`` shows
them, then those each model and dataset declares beside its code.

A task script takes this parser and changes its defaults with ``parser.set_defaults(...)``;
options also come from a ``--config`` file (``utils/experiments/config_file.py``). A run's
options are the base ones plus those of the entries it selects: ``--bilinear`` belongs to
UNet, so a Vanilla run neither records it nor accepts it (:class:`TaskParser`).
"""

import argparse
from collections.abc import Sequence
from typing import Any

from utils.cli import (
    fraction,
    non_negative_float,
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
    str2bool,
    zero_to_one,
)
from utils.experiments.config_file import ConfigFileParser
from utils.loop.amp import AMP_CHOICES, auto_or_bool
from utils.loop.compile import compile_choice
from utils.loop.optimizer import OPTIMIZERS
from utils.loop.scheduler import SCHEDULERS
from utils.registry import Registry


class TaskParser(ConfigFileParser):
    """The parser of a training script: its options' values keep only the options of the
    entries (dataset, model) the run selects.

    An entry's option named on the command line or in an options file while another entry is
    selected is an error that names the entries declaring it; one recorded in a run's
    config.json (``--config <run dir>``, or a run from before entries owned their options) is
    dropped.
    """

    def __init__(self, *args: Any, selectors: Sequence[Registry] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.selectors = selectors

    def settle(
        self, parsed: argparse.Namespace, chosen: dict[str, str], recorded: set[str]
    ) -> None:
        for registry in self.selectors:
            selected = getattr(parsed, registry.option)
            for dest, owners in registry.owners().items():
                if selected in owners:
                    continue
                if dest in chosen:
                    self.error(
                        f"--{dest} ({chosen[dest]}) is an option of --{registry.option} "
                        f"{' or '.join(owners)}; this run's --{registry.option} is {selected}"
                    )
                vars(parsed).pop(dest, None)


def build_parser(description: str | None, models: Registry, datasets: Registry) -> TaskParser:
    """The options every task shares, then those each of ``models`` and ``datasets``
    declares beside its code; a task script changes defaults with ``set_defaults``."""
    parser = TaskParser(description=description, selectors=(models, datasets))
    run = parser.add_argument_group("run")
    run.add_argument("--proj_name", default="Project", help="project name, kept in the config")
    run.add_argument("--model_type", default="Vanilla", choices=list(models), help="model")
    run.add_argument("--data_type", default="FashionMNIST", choices=list(datasets), help="data")
    run.add_argument("--data_dir", default="./Dataset", help="where the dataset lives")
    run.add_argument("--output_dir", default="./Results", help="each run gets a new dir here")
    run.add_argument(
        "--gpu_devices",
        default="auto",
        help="'auto' (GPU with most free memory, else CPU), 'cpu', or ids like '0' or '0,1' "
        "(several ids -> DataParallel)",
    )
    run.add_argument(
        "--seed", type=int, default=42, help="seed of training: init, data order, augmentation"
    )
    run.add_argument(
        "--split_seed",
        type=int,
        default=42,
        help="seed of the data's val/test split, folds and subsampling, fixed so that runs "
        "over several --seed values train on the same split",
    )
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
    optim.add_argument("--scheduler", default="cosine", choices=sorted(SCHEDULERS), help="lr decay")
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
        "--class_weights",
        choices=("none", "auto"),
        default="none",
        help="auto: weigh the cross-entropy of each class by its inverse frequency over the "
        "training split (labels, or mask pixels)",
    )
    optim.add_argument(
        "--sampler",
        choices=("random", "balanced"),
        default="random",
        help="balanced: draw each epoch's training samples with every class about equally "
        "likely (class labels only)",
    )
    optim.add_argument(
        "--freeze_backbone",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="fine-tuning: train only the model's head for the first N epochs (the backbone's "
        "lr held at 0); for models that name their head, such as torchvision's",
    )
    optim.add_argument(
        "--backbone_lr_mult",
        type=positive_float,
        default=1.0,
        metavar="F",
        help="fine-tuning: the backbone's lr is --lr times F (0.1: ten times smaller)",
    )
    optim.add_argument(
        "--ema",
        type=zero_to_one,
        default=0.0,
        metavar="DECAY",
        help="keep an exponential moving average of the weights with this decay (0.999: about "
        "the last 1000 steps) and validate, save and evaluate it; 0: off",
    )
    optim.add_argument(
        "--accum_steps",
        type=positive_int,
        default=1,
        help="batches whose gradients add up to one optimizer step",
    )

    speed = parser.add_argument_group("speed")
    speed.add_argument(
        "--profile",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="profile N training steps after 5 warm-up steps (torch.profiler): a Chrome trace "
        "profile_trace.json in the run dir (with --fast_dev_run, in --output_dir) and the top "
        "operators in the log; the run goes on; 0 = off",
    )
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
    models.add_options(parser)
    datasets.add_options(parser)
    return parser
