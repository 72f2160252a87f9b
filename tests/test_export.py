"""``--export``: the model as a torch.export program that a fresh Python, importing nothing of
this project, runs on uint8 images and gets what the evaluator computes."""

import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO
from PIL import Image

import eval_seg_on_carvana
import eval_vanilla
import trainer_seg_on_carvana
import trainer_vanilla
from data import carvana, fashion_mnist, seg_folder
from data.data_entry import input_loader
from data.image_files import is_image_file
from eval_seg_on_carvana import SegEvaluator, build_seg_eval_parser
from eval_vanilla import VanillaEvaluator, build_vanilla_eval_parser
from utils.cli import run_main
from utils.errors import UsageError

QUICK = ["--epochs", "1", "--gpu_devices", "cpu", "--num_workers", "0", "--amp", "off"]
SEG = ["--base_width", "4", "--depth", "2", "--batch_size", "2"]
CLASSIFY = (trainer_vanilla.main, VanillaEvaluator, build_vanilla_eval_parser, eval_vanilla.main)
SEGMENT = (
    trainer_seg_on_carvana.main,
    SegEvaluator,
    build_seg_eval_parser,
    eval_seg_on_carvana.main,
)
# name: (the example that writes the data, the task's scripts, the trainer's extra options)
CASES = {
    "Vanilla": (fashion_mnist, CLASSIFY, ["--model_type", "Vanilla"]),
    "SmallCNN": (fashion_mnist, CLASSIFY, ["--model_type", "SmallCNN"]),
    "UNet binary": (carvana, SEGMENT, SEG),
    "UNet 3 classes": (seg_folder, SEGMENT, [*SEG, "--data_type", "SegFolder"]),
}
# Run with ``python -I`` (no project on the path) from an empty folder.
FRESH = """
import sys, torch
program = torch.export.load(sys.argv[1]).module()
images = torch.load(sys.argv[2])
assert not any(name.split(".")[0] in ("data", "model", "utils") for name in sys.modules)
torch.save([program(images[:1]), program(images)], sys.argv[3])
"""


def images_of(files: list[Path]) -> torch.Tensor:
    """The files decoded as they are: uint8 ``(N, C, H, W)``."""
    arrays = [np.array(Image.open(path)) for path in files]
    return torch.stack(
        [torch.from_numpy(a.reshape(*a.shape[:2], -1)).permute(2, 0, 1) for a in arrays]
    )


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory) -> tuple[str, Path, Path, list[Path]]:
    """``(case, checkpoint, program, image files)`` of a run trained on its example data, at
    the images' own size (``--img_scale 1``): the evaluator and the program resize nothing."""
    dataset, (train, _, _, export), extra = CASES[request.param]
    root = tmp_path_factory.mktemp("export")
    given = dataset.write_example(root / "data")
    given |= {"img_scale": 1} if "img_scale" in given else {}
    train(
        [
            *QUICK,
            *extra,
            *(f"--{k}={v}" for k, v in given.items()),
            "--output_dir",
            str(root / "runs"),
        ]
    )
    (checkpoint,) = (root / "runs").glob("*/*_best_ckpt.pth")
    program = root / "model.pt2"
    export(["--model_path", str(checkpoint), "--gpu_devices", "cpu", "--export", str(program)])
    images = [p for p in (root / "data").rglob("*") if is_image_file(p) and "cache" not in p.parts]
    return request.param, checkpoint, program, sorted(p for p in images if "mask" not in p.name)[:3]


def test_the_program_gives_the_evaluators_outputs_in_a_fresh_python(exported, tmp_path):
    case, checkpoint, program, files = exported
    _, (_, evaluator_class, parser, _), _ = CASES[case]
    evaluator = evaluator_class(
        parser().parse_args(["--model_path", str(checkpoint), "--gpu_devices", "cpu"])
    )
    load = input_loader(evaluator.cfg, evaluator.data_info)
    with torch.inference_mode():
        logits = evaluator.forward(torch.stack([load(path) for path in files]))
    images = images_of(files)
    torch.save(images, tmp_path / "images.pt")
    (tmp_path / "fresh.py").write_text(FRESH)
    command = [sys.executable, "-I", "fresh.py", str(program), "images.pt", "out.pt"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    one, every = torch.load(tmp_path / "out.pt")
    full_size = (
        F.interpolate(logits, size=images.shape[-2:], mode="bilinear") if logits.ndim == 4 else None
    )
    if case in ("Vanilla", "SmallCNN"):
        expected = logits.softmax(dim=1)
        torch.testing.assert_close(every, expected, rtol=0, atol=1e-5)
        assert torch.equal(every.argmax(dim=1), expected.argmax(dim=1))
    elif case == "UNet binary":
        expected = torch.sigmoid(full_size)
        torch.testing.assert_close(every, expected, rtol=0, atol=1e-5)
        assert torch.equal(every > 0.5, expected > 0.5)
    else:
        assert every.dtype == torch.int64 and torch.equal(every, full_size.argmax(dim=1))
    torch.testing.assert_close(one, every[:1], rtol=0, atol=1e-6)


def test_the_file_says_what_it_takes_and_returns(exported):
    case, checkpoint, program, _ = exported
    extra = {"task.json": ""}
    torch.export.load(program, extra_files=extra)
    task = json.loads(extra["task.json"])
    assert task["run"] == checkpoint.parent.name and task["checkpoint"] == checkpoint.name
    assert task["channels"] == (1 if case in ("Vanilla", "SmallCNN") else 3)
    assert len(task["class_names"]) == {"Vanilla": 10, "SmallCNN": 10, "UNet binary": 1}.get(
        case, 3
    )


def readme_script() -> str:
    """The python block of the README that starts with ``# predict.py``."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    (block,) = [b for b in blocks if b.startswith("# predict.py")]
    return block


def test_the_readmes_script_agrees_with_the_evaluators_predictions(exported, tmp_path):
    """Plain PyTorch, no project on the path: the classes and probabilities of
    predictions.csv, or the very masks the evaluator writes."""
    case, checkpoint, program, files = exported
    _, (_, _, _, evaluate), _ = CASES[case]
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in files:
        shutil.copy(path, photos / path.name)
    (tmp_path / "predict.py").write_text(readme_script())
    command = [
        sys.executable,
        "-I",
        "predict.py",
        str(program),
        *sorted(map(str, photos.iterdir())),
    ]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = tmp_path / "preds"
    evaluate(
        [
            "--model_path",
            str(checkpoint),
            "--gpu_devices",
            "cpu",
            "--input",
            str(photos),
            "--save_path",
            str(saved),
        ]
    )
    if case in ("Vanilla", "SmallCNN"):
        (table,) = saved.glob("*predictions.csv")
        rows = {Path(row["file"]).name: row for row in csv.DictReader(table.open())}
        printed = [line.split() for line in done.stdout.splitlines()]
        assert len(printed) == len(files) == len(rows)
        for path, name, probability in printed:
            row = rows[Path(path).name]
            assert (
                name == row["class"] and abs(float(probability) - float(row["probability"])) <= 2e-6
            )
    else:
        for path in files:
            ours = np.array(Image.open(photos / f"{path.name}.mask.png"))
            theirs = np.array(Image.open(saved / f"{path.stem}_pred.png"))
            assert ours.shape == theirs.shape and (ours == theirs).all()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.onnx", "ONNX needs onnx and onnxscript; install them with pip install onnx "),
        ("model.zip", "expected a .pt2 (torch.export) or .onnx file"),
        ("model.pt2", "already exists; pass --overwrite True to replace it"),
    ],
)
def test_an_export_that_cannot_be_made_is_one_line_and_writes_nothing(
    exported, tmp_path, monkeypatch, capsys, name, expected
):
    case, checkpoint, _, _ = exported
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda module, *a: None if module.startswith("onnx") else real_find_spec(module, *a),
    )
    path = tmp_path / name
    if name.endswith(".pt2"):
        path.write_bytes(b"an earlier export")
    argv = ["--model_path", str(checkpoint), "--gpu_devices", "cpu", "--export", str(path)]
    _, (_, _, _, export), _ = CASES[case]
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: export(argv))
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: --export {path}: {expected}")
    assert [p.name for p in tmp_path.iterdir()] == ([name] if name.endswith(".pt2") else [])
    assert not name.endswith(".pt2") or path.read_bytes() == b"an earlier export"


def test_onnx_gives_what_the_pt2_program_gives(exported, tmp_path):
    """``--export model.onnx``, run by onnx's own reference evaluator at the images' size and
    at another (the resize is in the graph)."""
    reference = pytest.importorskip("onnx.reference", reason="pip install onnx onnxscript")
    case, checkpoint, program, files = exported
    _, (_, _, _, export), _ = CASES[case]
    path = tmp_path / "model.onnx"
    try:
        export(["--model_path", str(checkpoint), "--gpu_devices", "cpu", "--export", str(path)])
    except UsageError as err:  # the oldest torch admitted: its exporter lacks some ops
        assert "ONNX exporter of torch" in str(err) and not path.exists()
        pytest.skip(str(err))
    evaluator = reference.ReferenceEvaluator(str(path))
    images = images_of(files)
    larger = F.interpolate(images.float(), scale_factor=1.5).round().to(torch.uint8)
    for batch in (images, larger[:1]):
        (got,) = evaluator.run(None, {"images": batch.numpy()})
        expected = torch.export.load(program).module()(batch)
        if expected.is_floating_point():
            torch.testing.assert_close(torch.from_numpy(got), expected, rtol=0, atol=1e-5)
        else:
            assert torch.equal(torch.from_numpy(got), expected)
