"""--wandb True: the scalars and images TensorBoard gets also go to a W&B run, and W&B never
stops a run.

wandb is not a requirement of the project (its wheel and dependencies are about 90 MB and it
starts a service process), so these tests put a stand-in ``wandb`` module in its place that
records what the writer sends; docs/development.md says so.
"""

import sys
import types

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_trainer import options, scalars
from toy_task import SCALAR_TAGS, ToyTrainer

from utils.errors import UsageError
from utils.loop.wandb_writer import WandbWriter
from utils.records.history import read_metrics


class RecordedRun:
    """What the stand-in's ``wandb.init`` returns: it records each ``log`` call."""

    def __init__(self, error: Exception | None = None) -> None:
        self.logged: list[tuple[int, dict]] = []
        self.finished = False
        self.error = error

    def log(self, data: dict, step: int) -> None:
        if self.error:
            raise self.error
        self.logged.append((step, data))

    def finish(self) -> None:
        self.finished = True


def stand_in(monkeypatch, run: RecordedRun, init_error: Exception | None = None):
    """Install a ``wandb`` module whose ``init`` returns ``run`` (or raises ``init_error``)."""
    module = types.ModuleType("wandb")

    def init(**kwargs):
        module.init_kwargs = kwargs
        if init_error:
            raise init_error
        return run

    module.init = init
    module.Settings = dict
    module.Image = lambda image: ("image", tuple(image.shape))
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def test_a_missing_package_is_one_line_before_a_run_dir_exists(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as when it is not installed
    with pytest.raises(UsageError, match=r"^--wandb True: the wandb package is not installed"):
        ToyTrainer(options(tmp_path / "out", "--wandb", "True"))
    assert not (tmp_path / "out").exists()


def test_wandb_gets_the_scalars_tensorboard_gets(tmp_path, monkeypatch):
    run = RecordedRun()
    wandb = stand_in(monkeypatch, run)
    trainer = ToyTrainer(options(tmp_path, "--wandb", "True", "--epochs", "2"))
    trainer.train()
    init = wandb.init_kwargs
    assert (init["project"], init["name"], init["dir"]) == (
        "Toy",
        trainer.run_dir.name,
        trainer.run_dir,
    )
    assert init["config"] == vars(trainer.opt) and init["resume"] == "allow"
    sent: dict[str, list[tuple[int, float]]] = {}
    for step, data in run.logged:
        for tag, value in data.items():
            sent.setdefault(tag, []).append((step, value))
    assert sent.keys() == SCALAR_TAGS
    rows = read_metrics(trainer.run_dir / "metrics.csv")
    assert sent["val/acc"] == [(row["step"], row["val_acc"]) for row in rows]
    assert [s for s, _ in sent["lr"]] == [s for s, _ in scalars(trainer.run_dir, "lr")]
    assert run.finished
    resumed = WandbWriter(trainer.run_dir, 21, vars(trainer.opt))
    assert wandb.init_kwargs["id"] == init["id"]  # a resumed run continues its W&B run
    resumed.close()


def test_wandb_gets_the_images_tensorboard_gets(tmp_path, monkeypatch):
    run = RecordedRun()
    stand_in(monkeypatch, run)
    writer = WandbWriter(tmp_path, None, {"proj_name": "P"})
    writer.add_images("val/panels", torch.rand(2, 3, 4, 5), 7)
    writer.close()
    assert run.logged == [(7, {"val/panels": [("image", (3, 4, 5))] * 2})]
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert events.Tags()["images"] == ["val/panels"]


@pytest.mark.parametrize("where", ["init", "log"])
def test_a_wandb_error_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch, caplog, where):
    error = RuntimeError("network   down")
    run = RecordedRun(error if where == "log" else None)
    stand_in(monkeypatch, run, init_error=error if where == "init" else None)
    trainer = ToyTrainer(options(tmp_path, "--wandb", "True", "--epochs", "2"))
    trainer.train()
    warnings = [r.message for r in caplog.records if "W&B" in r.message]
    assert warnings == ["W&B logging stops here (RuntimeError: network down); TensorBoard goes on"]
    assert [s for s, _ in scalars(trainer.run_dir, "val/acc")] == [10, 20]
    assert read_metrics(trainer.run_dir / "metrics.csv")[-1]["epoch"] == 2
