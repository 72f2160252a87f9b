"""Tests for utils.loop.options: the base options every training script shares."""

import argparse

import pytest

from trainer import build_parser


@pytest.fixture
def parser() -> argparse.ArgumentParser:
    return build_parser("a task")


def test_every_option_says_what_it_does(parser):
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) > 50
    assert all(action.help for action in options), [a.dest for a in options if not a.help]


def test_the_groups_follow_what_a_run_does(parser):
    titles = [group.title for group in parser._action_groups]
    for title in ("run", "optimisation", "speed", "checkpoints, resuming and faults", "data"):
        assert title in titles
    assert "model options (UNet)" in titles  # declared beside the model


def test_defaults_parse_to_a_run_and_a_task_changes_them(parser):
    opt = parser.parse_args([])
    assert (opt.epochs, opt.batch_size, opt.amp, opt.compile) == (10, 64, "off", False)
    assert (opt.gpu_devices, opt.channels_last, opt.nonfinite) == ("auto", "auto", "stop")
    assert (opt.save_every_n_steps, opt.fast_dev_run, opt.folds, opt.accum_steps) == (0, 0, 0, 1)
    assert (opt.resume, opt.clip_grad_norm, opt.warmup_epochs) == (None, None, 0.0)
    parser.set_defaults(epochs=3)
    assert parser.parse_args([]).epochs == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "0"], "--lr"),
        (["--optimizer", "lion"], "invalid choice: 'lion'"),
        (["--compile", "fast"], "expected False, True or a mode"),
    ],
)
def test_bad_values_are_refused(parser, capsys, argv, message):
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    assert message in capsys.readouterr().err
