"""Bad input, everywhere: one ``error: ...`` line on stderr, exit status 2, nothing touched.

Each case runs a script's ``main`` in-process through ``run_main``, exactly as its
``__main__`` does, against one shared tree (``world``): an earlier vanilla run and an earlier
segmentation run (hand-written config.json and checkpoints), a checkpoint alone as trainers
write them now, bad checkpoints and configs, three small synthetic Carvana cars, earlier
predictions, an empty directory and a regular file. The whole tree must
be byte-identical afterwards: no new run directory, no log line appended, no output written.
A few cases also run as real subprocesses, to prove the exit status and stderr of the scripts.
"""

import json
import pickle
import random
import shlex
import tempfile
import warnings
from argparse import Namespace
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
import torch
from conftest import run_script

import eval_seg_on_carvana
import eval_vanilla
import trainer_seg_on_carvana
import trainer_vanilla
from bench import carvana_cache
from data import synthetic_carvana
from data.data_entry import DATASETS
from data.synthetic_carvana import write_synthetic_carvana
from model.model_entry import MODELS, build_model
from utils.cli import run_main
from utils.loop.optimizer import OPTIMIZERS
from utils.loop.scheduler import SCHEDULERS
from utils.records.checkpoint import save_checkpoint
from utils.records.config import save_config
from utils.records.rundir import make_dirs

OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
CPU = "--gpu_devices cpu --num_workers 0"
LONG = "x" * 300  # longer than a file name may be, so mkdir fails after making the parents
HIDDEN_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)

MAINS: dict[str, Callable[[list[str]], None]] = {
    "trainer_vanilla": trainer_vanilla.main,
    "trainer_seg": trainer_seg_on_carvana.main,
    "eval_vanilla": eval_vanilla.main,
    "eval_seg": eval_seg_on_carvana.main,
    "synthetic": synthetic_carvana.main,
    "bench_cache": carvana_cache.main,
}
# Flags every case of a script starts with; a case's own flags come after them and win.
BASE = {
    "trainer_vanilla": f"--output_dir {{out}} --data_dir {{w}}/empty {CPU}",
    "trainer_seg": (
        f"--output_dir {{out}} --data_dir {{w}}/carvana --cache False --base_width 4 {CPU}"
    ),
    "eval_vanilla": f"--model_path {{run}}/Vanilla_last_ckpt.pth {CPU}",
    "eval_seg": f"--model_path {{seg}}/UNet_last_ckpt.pth {CPU}",
    "synthetic": "--cars 1 --width 8 --height 8",
    "bench_cache": "--data_dir {w}/carvana --epochs 1",
}

FEW_GPUS = pytest.mark.skipif(torch.cuda.device_count() > 3, reason="this machine has a GPU 3")


def writes_into_read_only_dirs() -> bool:
    """Whether this process can create a directory inside a chmod-0o500 one (root can)."""
    with tempfile.TemporaryDirectory() as tmp:
        locked = Path(tmp) / "locked"
        locked.mkdir(mode=0o500)
        try:
            (locked / "probe").mkdir()
        except PermissionError:
            return False
        return True


READ_ONLY = pytest.mark.skipif(
    writes_into_read_only_dirs(), reason="this process writes into chmod-0o500 dirs (root)"
)


def case(script: str, args: str, *expected: str, marks: Any = ()) -> Any:
    """One row: ``script`` with ``args`` must fail with one line holding every ``expected``."""
    return pytest.param(script, args, expected, id=f"{script} {args}", marks=marks)


TRAINER_CASES = [
    # --data_dir missing, empty, a file, or without images (FashionMNIST tries the download)
    case("trainer_vanilla", "--data_dir {w}/none", "FashionMNIST not found under {w}/none/", "put"),
    case("trainer_vanilla", "--data_dir {w}/empty", "FashionMNIST not found under {w}/empty/"),
    case("trainer_vanilla", "--data_dir {file}", "FashionMNIST not found under {file}/"),
    case("trainer_seg", "--data_dir {w}/none", "--data_dir {w}/none: no train/ folder", "expected"),
    case("trainer_seg", "--data_dir {w}/empty", "--data_dir {w}/empty: no train/ folder"),
    case("trainer_seg", "--data_dir {w}/no_images", "no .jpg images in {w}/no_images/train"),
    # unknown names list the known ones
    case("trainer_vanilla", "--data_type Nope", "--data_type", "'Nope'", *DATASETS),
    case("trainer_vanilla", "--model_type Nope", "--model_type", "'Nope'", *MODELS),
    case("trainer_vanilla", "--optimizer Nope", "--optimizer", "'Nope'", *OPTIMIZERS),
    case("trainer_vanilla", "--scheduler Nope", "--scheduler", "'Nope'", *SCHEDULERS),
    case("trainer_seg", "--model_type unet", "--model_type", "'unet'", *MODELS),
    # numbers out of range, and not numbers
    case("trainer_vanilla", "--batch_size 0", "--batch_size", "expected an integer >= 1, got 0"),
    case("trainer_vanilla", "--batch_size -3", "--batch_size", "expected an integer >= 1, got -3"),
    case("trainer_vanilla", "--batch_size 2.5", "--batch_size", "'2.5'"),
    case("trainer_vanilla", "--batch_size many", "--batch_size", "'many'"),
    case("trainer_vanilla", "--lr 0", "--lr", "expected a finite number > 0, got 0"),
    case("trainer_vanilla", "--lr -0.001", "--lr", "expected a finite number > 0, got -0.001"),
    case("trainer_vanilla", "--lr nan", "--lr", "expected a finite number > 0, got nan"),
    case("trainer_vanilla", "--lr fast", "--lr", "'fast'"),
    case("trainer_vanilla", "--lr inf", "--lr", "expected a finite number > 0, got inf"),
    case(
        "trainer_vanilla",
        "--scheduler onecycle --warmup_epochs 1",
        "--scheduler onecycle",
        "--warmup_epochs",
    ),
    case("trainer_vanilla", "--epochs 0", "--epochs", "expected an integer >= 1, got 0"),
    case("trainer_vanilla", "--epochs -1", "--epochs", "expected an integer >= 1, got -1"),
    case("trainer_vanilla", "--epochs 1.5", "--epochs", "'1.5'"),
    case("trainer_vanilla", "--epochs ten", "--epochs", "'ten'"),
    case("trainer_vanilla", "--train_val_sample_rate 0", "--train_val_sample_rate", "(0, 1]"),
    case("trainer_vanilla", "--train_val_sample_rate -0.5", "--train_val_sample_rate", "(0, 1]"),
    case("trainer_vanilla", "--train_val_sample_rate 1.5", "--train_val_sample_rate", "(0, 1]"),
    case("trainer_vanilla", "--train_val_sample_rate half", "--train_val_sample_rate", "'half'"),
    case("trainer_vanilla", "--test_sample_rate 0", "--test_sample_rate", "(0, 1], got 0"),
    case("trainer_vanilla", "--test_sample_rate 1.01", "--test_sample_rate", "(0, 1], got 1.01"),
    case("trainer_vanilla", "--test_sample_rate all", "--test_sample_rate", "'all'"),
    case("trainer_vanilla", "--val_ratio 0", "--val_ratio", "expected a number in (0, 1), got 0"),
    case("trainer_vanilla", "--val_ratio 1", "--val_ratio", "expected a number in (0, 1), got 1"),
    case("trainer_vanilla", "--val_ratio 1.5", "--val_ratio", "(0, 1), got 1.5"),
    case("trainer_vanilla", "--val_ratio -0.1", "--val_ratio", "(0, 1), got -0.1"),
    case("trainer_vanilla", "--val_ratio tenth", "--val_ratio", "'tenth'"),
    # GPUs that are not there, and malformed --gpu_devices
    case("trainer_vanilla", "--gpu_devices 3", "GPU 3 does not exist", "'cpu'", marks=FEW_GPUS),
    case("trainer_vanilla", "--gpu_devices gpu0", "--gpu_devices 'gpu0': expected 'auto', 'cpu'"),
    case("trainer_vanilla", "--gpu_devices 0,,1", "--gpu_devices '0,,1': expected 'auto'"),
    case("trainer_vanilla", "--gpu_devices 1.5", "--gpu_devices '1.5': expected 'auto'"),
    case("trainer_vanilla", "--gpu_devices=", "--gpu_devices '': expected 'auto'"),
    case("trainer_vanilla", "--gpu_devices=-1", "'-1': indices must be distinct and >= 0"),
    case("trainer_vanilla", "--gpu_devices 0,0", "'0,0': indices must be distinct and >= 0"),
    # --output_dir that cannot hold a run directory (the data is fine, so it gets that far)
    case("trainer_seg", "--output_dir {file}/Results", "--output_dir {file}/Results: cannot"),
    case("trainer_seg", "--output_dir {file}", "--output_dir {file}: cannot", "writable"),
    case("trainer_seg", "--output_dir {w}/new/{long}", "File name too long", "writable"),
    case("trainer_seg", "--output_dir {w}/readonly", "Permission denied", marks=READ_ONLY),
    case(
        "trainer_vanilla",
        "--data_dir {fashion} --output_dir {file}/Results",
        "--output_dir {file}/Results: cannot create a run directory there",
        "expected a writable directory",
    ),
    # --resume with a checkpoint that is missing, truncated or not a checkpoint
    case("trainer_vanilla", "--resume {run}/gone_ckpt.pth", "{run}/gone_ckpt.pth not found"),
    case(
        "trainer_vanilla",
        "--resume {run}/Vanilla_truncated_ckpt.pth",
        "checkpoint {run}/Vanilla_truncated_ckpt.pth is truncated or not a checkpoint",
    ),
    case("trainer_vanilla", "--resume {run}/text_ckpt.pth", "truncated or not a checkpoint"),
    case("trainer_vanilla", "--resume {run}/random_ckpt.pth", "truncated or not a checkpoint"),
    case("trainer_vanilla", "--resume {run}/pickle_ckpt.pth", "truncated or not a checkpoint"),
    case("trainer_vanilla", "--resume {run}/no_model_ckpt.pth", "has no 'model' entry"),
    case(
        "trainer_vanilla",
        "--resume {run}/Vanilla_last_ckpt.pth",
        "{run}/Vanilla_last_ckpt.pth",
        "lacks optimizer",
        "expected a checkpoint written by this version of the trainer",
    ),
]

EVAL_CASES = [
    # the checkpoint: missing, truncated, not a checkpoint
    case("eval_vanilla", "--model_path {w}/gone.pth", "checkpoint {w}/gone.pth not found"),
    case(
        "eval_vanilla",
        "--model_path {run}/Vanilla_truncated_ckpt.pth",
        "checkpoint {run}/Vanilla_truncated_ckpt.pth is truncated or not a checkpoint",
    ),
    case("eval_vanilla", "--model_path {run}/text_ckpt.pth", "truncated or not a checkpoint"),
    case("eval_vanilla", "--model_path {run}/random_ckpt.pth", "truncated or not a checkpoint"),
    case(
        "eval_vanilla",
        "--model_path {run}/pickle_ckpt.pth",
        "truncated or not a checkpoint",
    ),
    case("eval_vanilla", "--model_path {run}/no_model_ckpt.pth", "no 'model' entry", "expected"),
    case("eval_seg", "--model_path {w}/gone.pth", "checkpoint {w}/gone.pth not found"),
    case("eval_seg", "--model_path {run}/random_ckpt.pth", "truncated or not a checkpoint"),
    case(
        "eval_seg",
        "--model_path {seg}/UNet_wide_ckpt.pth",
        "checkpoint {seg}/UNet_wide_ckpt.pth does not fit the UNet model: shape mismatch",
    ),
    # config.json beside the checkpoint: missing, not JSON, no "options", options lacking
    case(
        "eval_vanilla",
        "--model_path {out}/no_config/UNet_last_ckpt.pth",
        "checkpoint {out}/no_config/UNet_last_ckpt.pth holds no options",
        "config {out}/no_config/config.json not found; put the config.json of its run beside it",
    ),
    case(
        "eval_vanilla",
        "--model_path {out}/not_json/UNet_last_ckpt.pth",
        "config {out}/not_json/config.json is not readable JSON",
    ),
    case(
        "eval_vanilla",
        "--model_path {out}/no_options/UNet_last_ckpt.pth",
        "config {out}/no_options/config.json has no 'options' object",
    ),
    case("eval_vanilla", "--model_path {out}/list/UNet_last_ckpt.pth", "no 'options' object"),
    case(
        "eval_vanilla",
        "--model_path {out}/missing_option/UNet_last_ckpt.pth",
        "config {out}/missing_option/config.json has no option 'data_type'",
    ),
    case(
        "eval_vanilla",
        "--model_path {out}/unknown_name/UNet_last_ckpt.pth",
        "unknown data_type 'Nope'; known: Carvana, FashionMNIST",
    ),
    case("eval_seg", "--model_path {out}/no_config/UNet_last_ckpt.pth", "config.json not found"),
    case("eval_seg", "--model_path {out}/not_json/UNet_last_ckpt.pth", "not readable JSON"),
    # --save_path that cannot be written: refused before evaluating, nothing created
    case("eval_seg", "--save_path {file}/viz", "--save_path {file}/viz: cannot write there"),
    case("eval_seg", "--save_path {file}", "--save_path {file}: cannot write", "writable"),
    case("eval_seg", "--save_path {w}/new/{long}", "File name too long", "writable directory"),
    case("eval_seg", "--save_path {w}/readonly", "no write permission", marks=READ_ONLY),
    case("eval_seg", "--save_path {w}/readonly/viz", "Permission denied", marks=READ_ONLY),
    case(
        "eval_vanilla",
        "--data_dir {fashion} --save_path {file}/viz",
        "--save_path {file}/viz: cannot write there",
        "expected a writable directory",
    ),
    # overrides and devices
    case("eval_vanilla", "--data_dir {w}/none --save_path {w}/viz", "not found under {w}/none/"),
    case("eval_vanilla", "--gpu_devices 3", "GPU 3 does not exist", marks=FEW_GPUS),
    case("eval_vanilla", "--gpu_devices gpu0", "--gpu_devices 'gpu0': expected 'auto'"),
    case("eval_seg", "--batch_size 0", "--batch_size", "expected an integer >= 1, got 0"),
    case("eval_vanilla", "--test_sample_rate 0", "--test_sample_rate", "(0, 1], got 0"),
    case("eval_vanilla", "--amp fp8", "--amp", "invalid choice: 'fp8'"),
    case("eval_seg", "--threshold 1", "--threshold", "expected a number in (0, 1), got 1"),
    case("eval_vanilla", "--input {img} --save_path {w}/preds --top_k 0", "--top_k", "got 0"),
]

PREDICT_CASES = [
    # --input that names no image, or no --save_path for the predictions
    case("eval_vanilla", "--input {w}/none --save_path {w}/preds", "--input {w}/none: no such"),
    case(
        "eval_vanilla",
        "--input {img} {w}/empty --save_path {w}/preds",
        "--input {w}/empty: the folder holds no image file",
    ),
    case(
        "eval_seg",
        "--input {w}/carvana/train/*.png --save_path {w}/preds",
        "--input {w}/carvana/train/*.png: the pattern matches no image file",
    ),
    case("eval_seg", "--input {w}/carvana/train", "--input: pass --save_path too"),
    # predictions already there, or two inputs that would write one file
    case(
        "eval_vanilla",
        "--model_path {modern} --input {img} --save_path {w}/old_preds",
        "{w}/old_preds/predictions.csv already exists; pass --overwrite True",
    ),
    case(
        "eval_seg",
        "--input {w}/carvana/train --save_path {w}/old_preds",
        "{w}/old_preds/{id}_pred.png already exists; pass --overwrite True",
    ),
    case(
        "eval_seg",
        "--input {img} {w}/dup --save_path {w}/preds",
        "two --input images would both write {w}/preds/{id}_pred.png",
    ),
    # a checkpoint older than its description of the data, whose data is not there
    case(
        "eval_vanilla",
        "--input {img} --save_path {w}/preds",
        "checkpoint {run}/Vanilla_last_ckpt.pth does not hold the input shape and class names",
        "FashionMNIST not found under {w}/empty/",
        "Pass --data_dir",
    ),
]


TOOL_CASES = [
    # python -m data.synthetic_carvana
    case("synthetic", "{file}/cars", "{file}/cars: cannot write there", "writable directory"),
    case("synthetic", "{w}/readonly/cars", "Permission denied", marks=READ_ONLY),
    case("synthetic", "{w}/carvana", "{w}/carvana: already holds images", "new or empty"),
    case("synthetic", "{w}/new --cars 0", "--cars", "expected an integer >= 1, got 0"),
    case("synthetic", "{w}/new --width -8", "--width", "expected an integer >= 1, got -8"),
    case("synthetic", "{w}/new --height tall", "--height", "'tall'"),
    case("synthetic", "", "the following arguments are required: root"),
    # python -m bench.carvana_cache
    case("bench_cache", "--data_dir {w}/none", "--data_dir {w}/none: no train/ folder"),
    case("bench_cache", "--data_dir {w}/no_images", "no .jpg images in {w}/no_images/train"),
    case("bench_cache", "--img_scale 0", "--img_scale", "expected a number in (0, 1], got 0"),
    case("bench_cache", "--batch_size 0", "--batch_size", "expected an integer >= 1, got 0"),
    case("bench_cache", "--num_workers -1", "--num_workers", "expected an integer >= 0"),
]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a directory)."""
    return {
        str(path.relative_to(root)): None if path.is_dir() else path.read_bytes()
        for path in sorted(root.rglob("*"))
    }


def refuse(main: Callable[[list[str]], None], argv: list[str], capsys: Any) -> str:
    """Run ``main(argv)`` as a script's ``__main__`` does; return its single stderr line.

    A warning would be one more stderr line in a real run, so none may be raised.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as exit_info:
            run_main(lambda: main(argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    shown = [str(w.message) for w in caught if not issubclass(w.category, HIDDEN_WARNINGS)]
    assert not shown, shown
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def write_run(run: Path, opt: Namespace, checkpoints: dict[str, dict[str, Any]]) -> None:
    """A finished run as a trainer leaves it: config.json, train.log and checkpoints."""
    run.mkdir(parents=True)
    save_config(run / "config.json", vars(opt), {"device": "cpu", "note": "written by a test"})
    (run / "train.log").write_text("epoch 1/1  val_loss 0.5\n")
    for name, state in checkpoints.items():
        save_checkpoint(run / name, state)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The shared tree of earlier output and bad input; returns the placeholders of the cases."""
    root = tmp_path_factory.mktemp("world")
    out, file = root / "Results", root / "file.txt"
    run, seg = out / "20200101-000000", out / "20200101-000001"
    (root / "empty").mkdir()
    (root / "readonly").mkdir(mode=0o500)
    (root / "no_images" / "train").mkdir(parents=True)
    (root / "no_images" / "train_masks").mkdir()
    file.write_text("a regular file, not a directory\n")
    first = write_synthetic_carvana(root / "carvana", cars=3, size=(32, 24), seed=1)[0]
    image = root / "carvana" / "train" / f"{first}.jpg"
    (root / "dup").mkdir()
    (root / "dup" / image.name).write_bytes(image.read_bytes())
    (root / "old_preds").mkdir()
    (root / "old_preds" / "predictions.csv").write_text("file,class,probability\n")
    (root / "old_preds" / f"{first}_pred.png").write_bytes(b"an earlier mask")

    vanilla_opt = trainer_vanilla.build_vanilla_parser().parse_args(
        ["--data_dir", str(root / "empty"), "--output_dir", str(out), *CPU.split()]
    )
    vanilla = build_model(vanilla_opt, (1, 28, 28), 10).state_dict()
    write_run(run, vanilla_opt, {"Vanilla_last_ckpt.pth": {"model": vanilla, "epoch": 1}})
    # A checkpoint as the trainer writes it now, alone: its options and data inside.
    modern = out / "modern" / "Vanilla_best_ckpt.pth"
    data = {"input_shape": [1, 28, 28], "num_classes": 10, "class_names": list("0123456789")}
    (out / "modern").mkdir()
    save_checkpoint(modern, {"model": vanilla, "config": vars(vanilla_opt), "data": data})
    good = (run / "Vanilla_last_ckpt.pth").read_bytes()
    (run / "Vanilla_truncated_ckpt.pth").write_bytes(good[: len(good) // 2])
    (run / "text_ckpt.pth").write_text("not a checkpoint\n")
    (run / "random_ckpt.pth").write_bytes(random.Random(0).randbytes(4096))
    (run / "pickle_ckpt.pth").write_bytes(pickle.dumps({"epoch": 1}))
    save_checkpoint(run / "no_model_ckpt.pth", {"epoch": 1})

    seg_opt = trainer_seg_on_carvana.build_seg_parser().parse_args(
        [*shlex.split(BASE["trainer_seg"].format(out=out, w=root)), "--img_scale", "1.0"]
    )
    unet = {"model": build_model(seg_opt, (3, 24, 32), 1).state_dict(), "epoch": 1}
    wide = Namespace(**{**vars(seg_opt), "base_width": 8})
    unet_wide = {"model": build_model(wide, (3, 24, 32), 1).state_dict(), "epoch": 1}
    write_run(seg, seg_opt, {"UNet_last_ckpt.pth": unet, "UNet_wide_ckpt.pth": unet_wide})

    configs = {
        "no_config": None,
        "not_json": '{"options": {"epochs": 1',
        "no_options": json.dumps({"environment": {}}),
        "list": json.dumps([vars(vanilla_opt)]),
        "missing_option": json.dumps(
            {"options": {k: v for k, v in vars(vanilla_opt).items() if k != "data_type"}}
        ),
        "unknown_name": json.dumps({"options": {**vars(vanilla_opt), "data_type": "Nope"}}),
    }
    for name, text in configs.items():
        (out / name).mkdir()
        save_checkpoint(out / name / "UNet_last_ckpt.pth", unet)
        if text is not None:
            (out / name / "config.json").write_text(text)
    return {
        "w": root,
        "out": out,
        "run": run,
        "seg": seg,
        "file": file,
        "long": LONG,
        "modern": modern,
        "img": image,
        "id": first,
    }


@pytest.mark.parametrize(
    ("script", "args", "expected"), TRAINER_CASES + EVAL_CASES + PREDICT_CASES + TOOL_CASES
)
def test_bad_input_is_one_line_and_touches_nothing(
    script: str,
    args: str,
    expected: tuple[str, ...],
    world: dict[str, Any],
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    places = dict(world)
    if "{fashion}" in args:  # only these cases need (and skip without) the real data
        places["fashion"] = request.getfixturevalue("fashion_mnist_root")
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    argv = [token.format(**places) for token in shlex.split(f"{BASE[script]} {args}")]
    before = snapshot(world["w"])

    line = refuse(MAINS[script], argv, capsys)

    for fragment in expected:
        assert fragment.format(**places) in line
    assert snapshot(world["w"]) == before


# Real subprocesses, to prove the exit status and the whole stderr: script -> (args, expected).
REAL_RUNS = {
    "trainer_vanilla.py": (  # a UsageError through run_main
        f"--data_dir {{w}}/none --output_dir {{out}} {CPU}",
        "FashionMNIST not found under {w}/none/",
    ),
    "trainer_seg_on_carvana.py": (  # an argparse error through ArgumentParser.error
        "--model_type Nope --output_dir {out}",
        "invalid choice: 'Nope'",
    ),
    "eval_vanilla.py": (
        "--model_path {run}/Vanilla_truncated_ckpt.pth",
        "is truncated or not a checkpoint",
    ),
}


@pytest.fixture(scope="module")
def real_runs(world: dict[str, Any]) -> tuple[dict[str, CompletedProcess], bool]:
    """Run every REAL_RUNS script at once, as each spends seconds importing torch.

    Returns each script's result and whether the tree changed while they ran.
    """
    before = snapshot(world["w"])
    with ThreadPoolExecutor(len(REAL_RUNS)) as pool:
        futures = {
            script: pool.submit(run_script, script, *shlex.split(args.format(**world)), env=OFFLINE)
            for script, (args, _) in REAL_RUNS.items()
        }
    results = {script: future.result() for script, future in futures.items()}
    return results, snapshot(world["w"]) != before


@pytest.mark.parametrize("script", list(REAL_RUNS))
def test_real_scripts_exit_2_with_one_line(
    script: str,
    world: dict[str, Any],
    real_runs: tuple[dict[str, CompletedProcess], bool],
) -> None:
    results, touched = real_runs
    result = results[script]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert REAL_RUNS[script][1].format(**world) in lines[0]
    assert not touched


def test_make_dirs_removes_the_parents_it_made_when_it_fails(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="too long"):
        make_dirs(tmp_path / "a" / "b" / LONG)
    assert list(tmp_path.iterdir()) == []
    make_dirs(tmp_path / "a" / "b")
    make_dirs(tmp_path / "a" / "b")  # already there: nothing to do
    assert (tmp_path / "a" / "b").is_dir()
