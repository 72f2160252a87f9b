"""metrics.csv: one row per epoch with the numbers TensorBoard has, each epoch once on resume;
and the options as TensorBoard hparams."""

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from test_trainer import interrupting, options, scalars
from toy_task import BATCHES_PER_EPOCH, SCALAR_TAGS, ToyTrainer

from utils.records.history import METRICS_NAME, MetricsHistory, read_metrics
from utils.records.status import read_status


def test_each_epoch_is_a_row_with_the_numbers_tensorboard_has(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--lr", "0.003"))
    trainer.train()
    rows = read_metrics(trainer.run_dir / METRICS_NAME)
    assert [(r["epoch"], r["step"]) for r in rows] == [
        (e, e * BATCHES_PER_EPOCH) for e in (1, 2, 3)
    ]
    metrics = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time")
    for name in (*metrics, "memory_peak_mib"):
        logged = scalars(trainer.run_dir, name.replace("_", "/", 1))
        assert [step for step, _ in logged] == [r["step"] for r in rows]
        assert [value for _, value in logged] == pytest.approx([r[name] for r in rows])
    assert rows[-1] == {"epoch": 3, "step": 30, **trainer.metrics}  # exactly, not approximately
    best = scalars(trainer.run_dir, "best/val_acc")
    assert best[-1][1] == pytest.approx(max(r["val_acc"] for r in rows))


def test_a_resumed_run_drops_the_rows_after_its_checkpoint(tmp_path):
    stopped = interrupting(25, "ctrl-c")(options(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        stopped.train()
    path = stopped.run_dir / METRICS_NAME
    assert [r["epoch"] for r in read_metrics(path)] == [1, 2]
    # What a process killed after logging epoch 3 but before saving its checkpoint leaves.
    with open(path, "a") as f:
        f.write("3,30,9.0,0.1,9.0,0.1,0.001,1.0\n")
    resumed = ToyTrainer(options(tmp_path, "--resume", "auto"))
    assert [r["epoch"] for r in read_metrics(path)] == [1, 2]
    resumed.train()
    rows = read_metrics(path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["val_acc"] == resumed.metrics["val_acc"]


def test_rows_with_a_metric_only_some_epochs_have(tmp_path):
    history = MetricsHistory(tmp_path / METRICS_NAME, through_epoch=0)
    history.append(1, 10, {"loss": 0.5})
    history.append(2, 20, {"loss": 0.25, "skipped": 2})
    assert (
        tmp_path / METRICS_NAME
    ).read_text() == "epoch,step,loss,skipped\n1,10,0.5,\n2,20,0.25,2\n"
    assert read_metrics(tmp_path / METRICS_NAME)[0] == {"epoch": 1, "step": 10, "loss": 0.5}


def test_the_options_are_hparams_compared_by_the_logged_metrics(tmp_path):
    trainer = ToyTrainer(options(tmp_path, "--lr", "0.003", "--epochs", "1"))
    trainer.train()
    events = EventAccumulator(str(trainer.run_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == 0.003
    assert hparams["optimizer"].string_value == "adam"
    assert hparams["flip"].bool_value is False
    assert hparams["clip_grad_norm"].string_value == "None"
    # Options of the datasets and models the run did not select are left out.
    assert "batch_size" in hparams and not {"base_width", "mask_suffix", "img_scale"} & set(hparams)
    experiment = HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    tags = {metric.name.tag for metric in experiment.metric_infos}
    assert tags == SCALAR_TAGS
    assert scalars(trainer.run_dir, "best/val_acc")[-1][1] == pytest.approx(
        read_status(trainer.run_dir)["best"]
    )
