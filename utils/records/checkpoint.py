"""Saving and safely loading checkpoints.

A checkpoint is a dict of tensors and plain containers, so it loads with
``torch.load(weights_only=True)``, which refuses anything that would run code when unpickled.
"""

import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.atomic import atomic_write
from utils.errors import UsageError

# How torch's weights-only unpickler names the global it refused to import.
UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel, DistributedDataParallel and torch.compile wrappers.

    Checkpoints hold its state dict, so their keys carry no ``module.`` or ``_orig_mod.``
    prefix and load the same in single-process, DDP and compiled runs.
    """
    while True:
        if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: a crash mid-save leaves the previous file intact."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; anything else is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} not found; expected a .pth file written by a trainer")
    try:
        with warnings.catch_warnings():
            # Foreign pickles make torch warn before it refuses them; the refusal says enough.
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = UNSAFE_GLOBAL.search(str(err))
        if found is None:
            raise UsageError(f"checkpoint {path} is truncated or not a checkpoint") from None
        raise UsageError(
            f"checkpoint {path} refused: it would import {found.group(1)} when loaded; expected "
            "only tensors and plain containers"
        ) from None
    except Exception as err:  # torch raises many types for truncated or foreign files
        raise UsageError(
            f"checkpoint {path} is truncated or not a checkpoint ({type(err).__name__})"
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise UsageError(f"checkpoint {path} has no 'model' entry; expected a trainer checkpoint")
    return state


def load_model_state(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load weights strictly; a key or shape mismatch is one line naming what differs."""
    own = unwrap_model(model).state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_first(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch (checkpoint vs model) {_first(mismatched)}")
    if problems:
        raise UsageError(
            f"{source} does not fit the {type(unwrap_model(model)).__name__} model: "
            + "; ".join(problems)
        )
    unwrap_model(model).load_state_dict(state_dict)


def _first(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# Checkpoints that hold the latest state of a run; best is an earlier state, never newer.
RESUMABLE_KINDS = ("last", "interrupt")


def run_checkpoints(run_dir: Path) -> list[Path]:
    """The resumable checkpoints in ``run_dir``, newest first."""
    found = [p for kind in RESUMABLE_KINDS for p in run_dir.glob(f"*_{kind}_ckpt.pth")]
    return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)
