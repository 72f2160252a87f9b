"""Every command the README and docs/ show parses with its own script's parser, run as the
script itself but stopped right after parsing: a flag renamed or removed fails here.

Commands are the ``python``, ``torchrun`` and ``make train`` lines of ``bash`` blocks (with
their ``\\`` continuations) and inline code that starts with ``python``. Scripts that are not
the project's (``trainer_regression.py`` of docs/extending.md's example, which
tests/test_grow_a_task.py runs, ``../shared/tools/...``, pytest) are left alone, and so is the
value of ``--config``, a file the reader writes first.
"""

import argparse
import re
import runpy
import shlex
import sys

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PACKAGES = {"bench", "data", "model", "loss", "utils", "tests"}
SHELL = {">", ">>", "<", "|", "||", "&&", ";", "&", "2>&1"}  # the command ends there
MAKE_TRAIN = ["trainer_vanilla.py", "--model_type", "Vanilla", "--data_type", "FashionMNIST"]


def command_lines(text: str) -> list[str]:
    """The shell lines of ``bash`` blocks (continuations joined) and inline ``python`` code."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        lines += block.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`(python [^`]+)`", text)
    return lines


def invocation(tokens: list[str]) -> list[str] | None:
    """``[script or -m module, args...]`` of a project script, or None for anything else."""
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):  # OMP_NUM_THREADS=1 python ...
        tokens = tokens[1:]
    if tokens[:2] == ["make", "train"]:
        extra = [t.removeprefix("ARGS=") for t in tokens[2:] if t.startswith("ARGS=")]
        return MAKE_TRAIN + [a for t in extra for a in shlex.split(t)]
    if not tokens or not (tokens[0] == "torchrun" or tokens[0].endswith("python")):
        return None
    rest = tokens[1:]
    if rest[:2] == ["-m", "torch.distributed.run"]:
        tokens, rest = ["torchrun"], rest[2:]
    if tokens[0] == "torchrun":  # its own options first; the script is the first .py or -m
        start = next(i for i, t in enumerate(rest) if t.endswith(".py") or t == "-m")
        rest = rest[start:]
        at = 2 if rest[0] == "-m" else 1
        if rest[at : at + 1] == ["--"]:  # torchrun's way of passing the script every flag
            rest = rest[:at] + rest[at + 1 :]
    if rest[0] == "-m":
        return rest[1:] if rest[1].split(".")[0] in PACKAGES else None
    return rest if (REPO / rest[0]).is_file() else None


def documented() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in command_lines(page.read_text()):
            tokens = shlex.split(line, comments=True)
            tokens = tokens[: next((i for i, t in enumerate(tokens) if t in SHELL), None)]
            tokens = [re.sub(r"^\$\{?\w+\}?$", "0", t) for t in tokens]  # a loop's $i
            if tokens and (target := invocation(tokens)):
                found.append((f"{page.name}: {shlex.join(target)}"[:120], target))
    return found


COMMANDS = documented()


class Parsed(BaseException):
    """Raised once a script's arguments parsed, so that nothing runs."""


def without_config_files(args: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--config":
            skip = True
        else:
            kept.append(arg)
    return kept


def parse_as_the_script(target: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``target`` as ``python`` would, stopped at its first ``parse_args``."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        try:
            original(self, args, namespace)  # a bad flag: SystemExit(2) with its one line
        except SystemExit as done:
            if done.code:
                raise
        raise Parsed  # parsed, or --help / --print_config printed what was asked

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    script, args = target[0], without_config_files(target[1:])
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(Parsed):
        if script.endswith(".py"):
            runpy.run_path(str(REPO / script), run_name="__main__")
        else:
            runpy.run_module(script, run_name="__main__", alter_sys=True)


# runpy warns that the module it runs as __main__ was imported already (by its package).
@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import of package")
@pytest.mark.parametrize("target", [t for _, t in COMMANDS], ids=[name for name, _ in COMMANDS])
def test_a_documented_command_parses(target, monkeypatch):
    parse_as_the_script(target, monkeypatch)
    # the task's own flags, after "--"
    if target[0] == "utils.experiments.sweep" and "--" in target:
        script = target[1]
        grid = target[target.index("--grid") + 1 : target.index("--")] if "--grid" in target else []
        settings = [
            f"--{k}={v.split(',')[0]}" for k, v in (g.split("=", 1) for g in grid if "=" in g)
        ]
        after = target[target.index("--") + 1 :]
        parse_as_the_script([script, *settings, *after], monkeypatch)


def test_the_pages_show_the_main_commands():
    """The check reads what it should: the README's and the pages' commands are found."""
    scripts = {target[0] for _, target in COMMANDS}
    assert {"trainer_vanilla.py", "eval_vanilla.py", "trainer_seg_on_carvana.py"} <= scripts
    assert {
        "eval_seg_on_carvana.py",
        "utils.experiments.sweep",
        "utils.experiments.runs",
        "utils.experiments.configcmp",
    } <= scripts
    assert len(COMMANDS) > 40


def test_a_wrong_flag_fails_the_check(monkeypatch):
    with pytest.raises(SystemExit):
        parse_as_the_script(["trainer_vanilla.py", "--epoch", "3x"], monkeypatch)


@pytest.mark.parametrize("script", ["trainer_vanilla.py", "trainer_seg_on_carvana.py"])
def test_the_flags_page_lists_each_scripts_changes_to_the_base_defaults(script):
    """docs/flags.md names what each example task sets with ``set_defaults``, no more and no
    less; ``--help`` shows the script's own values."""
    import trainer_seg_on_carvana
    import trainer_vanilla
    from trainer import build_parser

    parser = {
        "trainer_vanilla.py": trainer_vanilla.build_vanilla_parser,
        "trainer_seg_on_carvana.py": trainer_seg_on_carvana.build_seg_parser,
    }[script]()
    base = {action.dest: action.default for action in build_parser()._actions}
    changed = {a.dest: a.default for a in parser._actions if base.get(a.dest) != a.default}
    page = (REPO / "docs" / "flags.md").read_text()
    (item,) = re.findall(rf"^- `{re.escape(script)}`: (.*?)\.$", page, re.MULTILINE | re.DOTALL)
    listed = dict(re.findall(r"`--(\w+) ([^`]+)`", item))
    assert listed == {dest: str(value) for dest, value in changed.items()}
    usage = " ".join(parser.format_help().split())  # unwrapped
    for dest, value in changed.items():
        shown = rf"--{dest}\b(?:(?! --).)*?\(default: {re.escape(str(value))}\)"
        assert re.search(shown, usage.split("options:", 1)[1]), dest
