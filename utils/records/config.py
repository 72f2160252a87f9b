"""The run's JSON config: options plus the environment they ran in, read back by evaluators."""

import importlib.metadata
import json
import platform
import socket
import subprocess
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch

from utils.atomic import atomic_write
from utils.errors import UsageError

CONFIG_NAME = "config.json"


def git_commit(repo: Path) -> str | None:
    """The checked-out commit of ``repo`` (with ``-dirty`` for local changes), or None."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def environment_info(device: torch.device) -> dict[str, Any]:
    """What a run depends on besides its options: versions, device, host, command, commit."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": importlib.metadata.version("torchvision"),
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "hostname": socket.gethostname(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_commit": git_commit(Path(__file__).resolve().parent.parent),
    }


def save_config(path: str | Path, options: dict[str, Any], environment: dict[str, Any]) -> None:
    """Write ``{"options": ..., "environment": ...}`` as indented JSON, atomically."""
    write_config(path, {"options": options, "environment": environment})


def write_config(path: str | Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=True)
    atomic_write(path, lambda f: f.write((text + "\n").encode()))


def add_to_config(path: str | Path, key: str, value: Any) -> None:
    """Record ``key: value`` beside the options in the config at ``path``: what the run
    decided from its options and data (``"decided"``), where the options say ``auto``."""
    data = load_config(path)
    data[key] = value
    write_config(path, data)


def resolve_config_path(path: str | Path) -> Path:
    """A run directory means the ``config.json`` inside it; a file path is taken as is."""
    path = Path(path)
    return path / CONFIG_NAME if path.is_dir() else path


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a config written by :func:`save_config` (or a run dir holding one)."""
    path = resolve_config_path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"config {path} not found; expected the config.json of a run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"config {path} is not readable JSON ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("options"), dict):
        raise UsageError(f"config {path} has no 'options' object; expected a run's config.json")
    return data


# Options added since runs were first recorded, each with the recorded option whose value a run
# from before it used in its place: the split was drawn from --seed before --split_seed.
STAND_INS = {"split_seed": "seed"}


def with_stand_ins(options: dict[str, Any]) -> dict[str, Any]:
    """A recorded run's ``options`` with each option it predates (see :data:`STAND_INS`) set to
    the value that stood in for it, so the run's split and the like are read back as it had
    them."""
    missing = {
        new: options[old] for new, old in STAND_INS.items() if new not in options and old in options
    }
    return {**missing, **options}


class MissingOptionError(UsageError, AttributeError):
    """An option missing from a run's config.

    Also an AttributeError, so ``getattr(cfg, name, default)`` and ``hasattr`` keep working;
    uncaught, it is a one-line UsageError.
    """


class RunOptions(Namespace):
    """A run's saved options; reading one they lack names the option and where they came from.

    Options written by an older trainer, or edited by hand, may miss one that the current
    code reads; that is bad input, not a bug, so it is not an AttributeError traceback.
    ``source`` says where they were read, such as ``"config runs/x/config.json"``.
    """

    __slots__ = ("_source",)

    def __init__(self, source: str, options: dict[str, Any]) -> None:
        super().__init__(**options)
        self._source = source

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_source":  # copy/pickle probes, half-built objects
            raise AttributeError(name)
        raise MissingOptionError(
            f"{self._source} has no option {name!r}; expected options written by the current "
            "trainer"
        )
