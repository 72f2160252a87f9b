"""``--profile N``: a trace of N training steps that loads as JSON and names the model's ops,
the top operators in the log, and a run that goes on as it would have."""

import json
import logging

from toy_task import TOY_ARGS, ToyTrainer, build_toy_parser

from utils.loop.profile import WARMUP_STEPS


def options(tmp_path, *extra):
    return build_toy_parser().parse_args(["--output_dir", str(tmp_path), *TOY_ARGS, *extra])


def test_profiled_steps_give_a_trace_and_the_top_operators_and_the_run_goes_on(tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        trainer = ToyTrainer(
            options(tmp_path, "--profile", "20", "--epochs", "3", "--linear", "True")
        )
        trainer.train()
    trace = json.loads((trainer.run_dir / "profile_trace.json").read_text())
    names = {event.get("name", "") for event in trace["traceEvents"]}
    assert {"aten::addmm", "aten::linear"} <= names  # the model's nn.Linear, in its steps
    steps = [name for name in names if name.startswith("ProfilerStep")]
    assert steps == []  # steps are marked by the trainer's own loop, not a schedule
    assert "profiled 20 training steps; trace" in caplog.text
    assert "operators by self time" in caplog.text and "Self CPU" in caplog.text
    assert trainer.epoch == 3 and (trainer.run_dir / "Vanilla_last_ckpt.pth").is_file()


def test_a_run_shorter_than_the_profile_writes_what_it_recorded(tmp_path, caplog):
    """``--fast_dev_run 8`` trains 8 batches: the profile holds the last 8 - warm-up, written
    into --output_dir, the run dir being none."""
    with caplog.at_level(logging.INFO):
        ToyTrainer(options(tmp_path, "--profile", "20", "--fast_dev_run", "8")).fast_dev_run()
    assert json.loads((tmp_path / "profile_trace.json").read_text())["traceEvents"]
    assert "fast_dev_run: only the --profile trace written" in caplog.text
    recorded = 8 - WARMUP_STEPS
    assert (
        f"profiled {recorded} training steps (the run had no more than {recorded})" in caplog.text
    )
    assert [p.name for p in tmp_path.iterdir()] == ["profile_trace.json"]
