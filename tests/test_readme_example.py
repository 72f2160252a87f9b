"""The README's "Grow your own task" example, run as a user would after copying it: its
own file beside the project, nothing else changed."""

import csv
import re

from conftest import REPO, run_script


def readme_task() -> str:
    """The python block of the README that starts with ``# my_rings.py``."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    (block,) = [b for b in blocks if b.startswith("# my_rings.py\n")]
    return block


def test_the_readme_task_trains_resumes_and_learns(tmp_path):
    script = tmp_path / "my_rings.py"
    script.write_text(readme_task())
    args = ("--output_dir", tmp_path / "runs", "--gpu_devices", "cpu", "--num_workers", "0")
    env = {"PYTHONPATH": str(REPO)}
    first = run_script(script, *args, "--epochs", "2", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    more = run_script(
        script, *args, "--epochs", "3", "--resume", "auto", "--allow_config_change", env=env
    )
    assert more.returncode == 0, more.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert float(rows[-1]["val_acc"]) > 0.9
