"""EvaluatorBase in-process: where a run's options come from, and running as the run trained."""

import shutil
from pathlib import Path

import pytest
import torch

from data.synthetic_carvana import VIEWS, write_synthetic_carvana
from eval_seg_on_carvana import SegEvaluator, build_seg_eval_parser
from trainer_seg_on_carvana import SegTrainer, build_seg_parser
from utils.records.checkpoint import load_checkpoint, save_checkpoint

CPU = ("--gpu_devices", "cpu", "--num_workers", "0")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The best checkpoint of a one-epoch UNet run in bf16 and channels_last."""
    root = tmp_path_factory.mktemp("eval")
    write_synthetic_carvana(root / "data", cars=3, size=(32, 24), seed=4)
    options = ["--data_dir", root / "data", "--output_dir", root / "Results", *CPU]
    options += ["--cache_dir", root / "cache", "--epochs", "1", "--base_width", "4"]
    options += ["--img_scale", "1.0", "--amp", "bf16", "--channels_last", "True"]
    trainer = SegTrainer(build_seg_parser().parse_args(list(map(str, options))))
    trainer.train()
    return trainer.checkpoint_path("best")


def evaluator(checkpoint: Path, save_path: Path, *extra: str) -> SegEvaluator:
    argv = ["--model_path", str(checkpoint), "--save_path", str(save_path), *CPU, *extra]
    return SegEvaluator(build_seg_eval_parser().parse_args(argv))


def watch(model: torch.nn.Module) -> set[tuple[bool, torch.dtype]]:
    """Record, per forward, whether the input was channels_last and the output's dtype."""
    seen: set[tuple[bool, torch.dtype]] = set()
    model.register_forward_hook(
        lambda _, args, out: seen.add(
            (args[0].is_contiguous(memory_format=torch.channels_last), out.dtype)
        )
    )
    return seen


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), (True, torch.bfloat16)),  # as the run trained
        (("--amp", "off", "--channels_last", "False"), (False, torch.float32)),
    ],
)
def test_batches_run_with_the_runs_amp_and_memory_format_unless_overridden(
    run, tmp_path, extra, expected
):
    seg = evaluator(run, tmp_path, *extra)
    seen = watch(seg.model)
    metrics = seg.evaluate()
    assert seen == {expected}
    conv = next(m for m in seg.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is expected[0]
    assert 0 <= metrics["dice"] <= 1


def test_test_sample_rate_scores_a_share_of_the_test_split(run, tmp_path):
    assert evaluator(run, tmp_path).run()["images"] == VIEWS
    half = evaluator(run, tmp_path, "--test_sample_rate", "0.5")
    assert len(half.data.test) == VIEWS // 2
    assert half.run()["images"] == VIEWS // 2


def test_a_checkpoint_alone_evaluates_as_in_its_run_dir(run, tmp_path):
    (tmp_path / "alone").mkdir()
    alone = Path(shutil.copy(run, tmp_path / "alone"))
    assert evaluator(alone, tmp_path / "a").run() == evaluator(run, tmp_path / "b").run()


def test_a_checkpoint_without_its_data_description_predicts_with_the_runs_data(run, tmp_path):
    state = load_checkpoint(run)
    older = tmp_path / "older" / run.name
    older.parent.mkdir()
    save_checkpoint(older, {key: value for key, value in state.items() if key != "data"})
    images = sorted((Path(state["config"]["data_dir"]) / "train").iterdir())[:3]
    predict = ("--input", *map(str, images))
    evaluator(run, tmp_path / "new", *predict).run()
    evaluator(older, tmp_path / "old", *predict).run()
    for image in images:
        mask = f"{image.stem}_pred.png"
        assert (tmp_path / "old" / mask).read_bytes() == (tmp_path / "new" / mask).read_bytes()
