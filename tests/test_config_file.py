"""--config FILE and --print_config: precedence, a run's own config.json, bad files."""

import json
from pathlib import Path

import pytest
from toy_task import TOY_ARGS, ToyTrainer, build_toy_parser

from trainer_vanilla import build_vanilla_parser


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_the_command_line_beats_the_file_which_beats_the_task_defaults(tmp_path):
    config = write(tmp_path / "exp.json", {"lr": 0.003, "epochs": 4, "scheduler": "step"})
    opt = build_vanilla_parser().parse_args(["--config", str(config), "--epochs", "7"])
    assert (opt.lr, opt.epochs, opt.scheduler) == (0.003, 7, "step")  # file, command line, file
    assert (opt.batch_size, opt.monitor) == (64, "val_acc")  # base default, task default
    assert "config" not in vars(opt)


def test_a_runs_config_json_reproduces_its_options_exactly(tmp_path):
    argv = [*TOY_ARGS, "--epochs", "1", "--lr", "0.003", "--clip_grad_norm", "0.5", "--flip", "1"]
    trainer = ToyTrainer(build_toy_parser().parse_args([*argv, "--output_dir", str(tmp_path)]))
    saved = json.loads((trainer.run_dir / "config.json").read_text())["options"]
    for source in (trainer.run_dir / "config.json", trainer.run_dir):
        opt = build_toy_parser().parse_args(["--config", str(source)])
        assert json.dumps(vars(opt), sort_keys=True) == json.dumps(saved, sort_keys=True)
    opt = build_toy_parser().parse_args(["--config", str(trainer.run_dir), "--lr", "0.01"])
    assert {k for k in saved if saved[k] != vars(opt)[k]} == {"lr"}


def test_a_runs_config_resumes_it(tmp_path):
    trainer = ToyTrainer(build_toy_parser().parse_args([*TOY_ARGS, "--output_dir", str(tmp_path)]))
    trainer.train()
    config = trainer.run_dir / "config.json"
    resumed = ToyTrainer(
        build_toy_parser().parse_args(["--config", str(config), "--resume", "auto"])
    )
    assert resumed.resume_path == trainer.run_dir / "Vanilla_last_ckpt.pth"


def test_print_config_writes_a_file_that_config_reads_back(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_vanilla_parser().parse_args(["--lr", "0.02", "--amp", "bf16", "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    options = json.loads(printed)["options"]
    assert (options["lr"], options["amp"], options["clip_grad_norm"]) == (0.02, "bf16", None)
    assert "config" not in options and "print_config" not in options
    file = tmp_path / "printed.json"
    file.write_text(printed)
    assert vars(build_vanilla_parser().parse_args(["--config", str(file)])) == options


BAD_FILES = [
    ({"lrr": 0.1}, "lrr: not an option; did you mean lr?"),
    ({"lr": 0}, "lr: expected a finite number > 0, got 0"),
    ({"batch_size": "many"}, "batch_size: expected an integer >= 1, got 'many'"),
    ({"seed": 1.5}, "seed: invalid int value: '1.5'"),
    ({"optimizer": "lamb"}, "optimizer: invalid choice: 'lamb'"),
    ({"flip": "maybe"}, "flip: expected True or False, got 'maybe'"),
    ({"lr": None}, "lr: expected a value, got null"),
    ({"lr": [0.1, 0.2]}, "lr: expected one value, got [0.1, 0.2]"),
    ({"options": [1]}, "expected a JSON object of options"),
    ([{"lr": 0.1}], "expected a JSON object of options"),
    ({"config": "other.json"}, "config: not an option"),
]


@pytest.mark.parametrize(("data", "expected"), BAD_FILES, ids=[e for _, e in BAD_FILES])
def test_a_bad_file_is_one_line_naming_it_and_the_key(tmp_path, capsys, data, expected):
    config = write(tmp_path / "bad.json", data)
    with pytest.raises(SystemExit) as exit_info:
        build_vanilla_parser().parse_args(["--config", str(config)])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: --config {config}: {expected}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, "not found"), ('{"lr": 0.1', "not readable JSON"), ("\udcff", "not readable JSON")],
    ids=["missing", "truncated", "not text"],
)
def test_an_unreadable_file_is_one_line(tmp_path, capsys, text, expected):
    config = tmp_path / "config.json"
    if text is not None:
        config.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(SystemExit):
        build_vanilla_parser().parse_args(["--config", str(config)])
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --config {config}: {expected}")


def test_an_option_of_an_entry_the_file_does_not_select_is_one_line(tmp_path, capsys):
    """``--img_scale`` is Carvana's and SegFolder's; a FashionMNIST run takes no value of it."""
    config = write(tmp_path / "options.json", {"epochs": 2, "img_scale": 0.5})
    with pytest.raises(SystemExit) as exit_info:
        build_vanilla_parser().parse_args(["--config", str(config)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --img_scale (in --config {config}) is an option of --data_type Carvana or "
        "SegFolder; this run's --data_type is FashionMNIST (see "
        f"{build_vanilla_parser().prog} --help)"
    ]
    chosen = write(tmp_path / "carvana.json", {"data_type": "Carvana", "img_scale": 0.5})
    assert build_vanilla_parser().parse_args(["--config", str(chosen)]).img_scale == 0.5
