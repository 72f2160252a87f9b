"""Tests for utils.cli: argparse value types and run_main."""

import argparse
import shlex

import pytest
from torch.utils.data import DataLoader, Dataset

from utils.cli import (
    PROJECT_ROOT,
    ArgumentParser,
    fraction,
    non_negative_float,
    non_negative_int,
    open_fraction,
    positive_float,
    positive_int,
    run_main,
    script_command,
    str2bool,
)
from utils.errors import UsageError


@pytest.mark.parametrize("text", ["True", "true", "TRUE", " yes ", "Y", "y", "1"])
def test_str2bool_true_spellings(text):
    assert str2bool(text) is True


@pytest.mark.parametrize("text", ["False", "false", "NO", "n", "0", " False "])
def test_str2bool_false_spellings(text):
    assert str2bool(text) is False


@pytest.mark.parametrize("text", ["", "2", "maybe", "tru", "on", "off", "-1"])
def test_str2bool_refuses_other_text(text):
    with pytest.raises(argparse.ArgumentTypeError):
        str2bool(text)


@pytest.mark.parametrize(
    ("func", "text", "expected"),
    [
        (positive_int, "1", 1),
        (positive_int, "17", 17),
        (non_negative_int, "0", 0),
        (non_negative_int, "5", 5),
        (positive_float, "1e-9", 1e-9),
        (positive_float, "3.5", 3.5),
        (non_negative_float, "0", 0.0),
        (non_negative_float, "2.5", 2.5),
        (fraction, "1", 1.0),
        (fraction, "1e-9", 1e-9),
        (fraction, "0.25", 0.25),
        (open_fraction, "0.5", 0.5),
        (open_fraction, "1e-9", 1e-9),
        (open_fraction, "0.999", 0.999),
    ],
)
def test_types_accept_values_in_range(func, text, expected):
    value = func(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("func", "text"),
    [
        (positive_int, "0"),
        (positive_int, "-3"),
        (non_negative_int, "-1"),
        (positive_float, "0"),
        (positive_float, "-0.5"),
        (positive_float, "nan"),
        (positive_float, "inf"),
        (non_negative_float, "-1e-9"),
        (non_negative_float, "nan"),
        (non_negative_float, "inf"),
        (fraction, "0"),
        (fraction, "-0.1"),
        (fraction, "1.0000001"),
        (fraction, "nan"),
        (open_fraction, "0"),
        (open_fraction, "1"),
        (open_fraction, "1.5"),
        (open_fraction, "nan"),
    ],
)
def test_types_refuse_values_out_of_range(func, text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"^expected .*, got {text}$"):
        func(text)


@pytest.mark.parametrize(
    ("func", "text", "message"),
    [
        (positive_int, "ten", "expected an integer >= 1, got 'ten'"),
        (positive_int, "1.5", "expected an integer >= 1, got '1.5'"),
        (non_negative_float, "", "expected a finite number >= 0, got ''"),
        (fraction, "half", "expected a number in (0, 1], got 'half'"),
    ],
)
def test_types_say_what_they_expected_of_a_non_number(func, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as info:
        func(text)
    assert str(info.value) == message


def test_parser_errors_are_one_line_and_exit_2(capsys):
    parser = ArgumentParser(prog="prog")
    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--optimizer", choices=["adam", "sgd"])
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--epochs", "0"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "error: argument --epochs: expected an integer >= 1, got 0 (see prog --help)\n"
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["--optimizer", "lamb"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "invalid choice: 'lamb'" in err and "'adam', 'sgd'" in err


def test_an_on_off_flag_alone_means_true_and_still_takes_a_value():
    """``--overwrite`` alone is ``--overwrite True``; ``--viz True`` and ``False`` still parse,
    in the parsers of the scripts and of options a task adds after they are built."""
    from eval_seg_on_carvana import build_seg_eval_parser
    from trainer_vanilla import build_vanilla_parser

    def parse(argv):
        return build_seg_eval_parser().parse_args(["--model_path", "best.pth", *argv])

    assert parse(["--overwrite"]).overwrite is True
    assert parse(["--viz", "True", "--overwrite", "False"]).viz is True
    assert parse(["--viz", "--overwrite"]).overwrite is True and parse([]).overwrite is False
    parser = build_vanilla_parser()
    parser.add_argument("--mine", type=str2bool, default=False)
    opt = parser.parse_args(["--flip", "--compile", "--mine", "--epochs", "2"])
    assert (opt.flip, opt.compile, opt.mine, opt.epochs) == (True, True, True, 2)
    assert parser.parse_args(["--compile", "reduce-overhead"]).compile == "reduce-overhead"


def test_a_number_option_still_needs_its_value():
    parser = ArgumentParser(prog="prog")
    parser.add_argument("--epochs", type=positive_int)
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs"])


def test_run_main_usage_error_is_one_line_and_exit_2(capsys):
    def main():
        raise UsageError("--lr -1: expected a number > 0")

    with pytest.raises(SystemExit) as info:
        run_main(main)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == "error: --lr -1: expected a number > 0\n"
    assert captured.out == ""


@pytest.mark.parametrize(
    ("rank", "every_rank", "printed"),
    [(None, True, True), ("0", True, True), ("1", True, False), ("1", False, True)],
)
def test_under_torchrun_an_error_of_every_rank_is_printed_by_rank_0_alone(
    monkeypatch, capsys, rank, every_rank, printed
):
    if rank is None:
        monkeypatch.delenv("RANK", raising=False)
    else:
        monkeypatch.setenv("RANK", rank)

    def main():
        raise UsageError("--monitor nope: not a metric", every_rank=every_rank)

    with pytest.raises(SystemExit) as info:
        run_main(main)
    assert info.value.code == 2
    assert capsys.readouterr().err == ("error: --monitor nope: not a metric\n" if printed else "")


def test_usage_errors_belong_to_one_rank_unless_said():
    assert not UsageError("a bad file").every_rank
    assert UsageError("agreed", every_rank=True).every_rank


class BadFile(Dataset):
    """A dataset whose item 1 is a bad file, found when a worker reads it."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        if index == 1:
            raise UsageError("cannot read b.png (truncated); expected a valid image file")
        return index


def test_a_usage_error_of_a_dataloader_worker_is_its_one_line(capsys):
    def main():
        for _ in DataLoader(BadFile(), batch_size=1, num_workers=1):
            pass

    with pytest.raises(SystemExit) as info:
        run_main(main)
    assert info.value.code == 2
    expected = "error: cannot read b.png (truncated); expected a valid image file\n"
    assert capsys.readouterr().err == expected


def test_run_main_lets_other_exceptions_propagate():
    def main():
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_main(main)


def test_run_main_keyboard_interrupt_exits_130():
    def main():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as info:
        run_main(main)
    assert info.value.code == 130


def test_run_main_returns_normally_when_main_succeeds():
    calls = []
    run_main(lambda: calls.append("ran"))
    assert calls == ["ran"]


def test_script_command_runs_the_project_script_from_here(monkeypatch, tmp_path):
    monkeypatch.chdir(PROJECT_ROOT)
    command = script_command("eval_vanilla.py", "--model_path", tmp_path / "a b.pth")
    assert shlex.split(command) == [
        "python",
        "eval_vanilla.py",
        "--model_path",
        f"{tmp_path}/a b.pth",
    ]
    monkeypatch.chdir(tmp_path)  # elsewhere, the script's full path
    assert shlex.split(script_command("eval_vanilla.py"))[1] == str(
        PROJECT_ROOT / "eval_vanilla.py"
    )
