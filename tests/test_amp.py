"""Tests for utils.loop.amp: the autocast context each --amp mode gives, and what auto picks."""

import argparse
import logging
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import utils.loop.amp as amp_module
from utils.errors import UsageError
from utils.loop.amp import (
    AMP_MODES,
    CPU_BF16_ENV,
    auto_or_bool,
    autocast,
    candidates,
    cpu_has_native_bf16,
    log_precision,
    pick_precision,
    resolve_amp,
    resolve_channels_last,
    time_candidates,
    time_steps,
)
from utils.loop.distributed import DistInfo

CPU = torch.device("cpu")


@pytest.mark.parametrize(("mode", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_low_precision_modes_run_matmuls_in_their_dtype(mode, dtype):
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast(CPU, mode):
        product = a @ b
    assert product.dtype == dtype
    assert torch.allclose(product.float(), a @ b, atol=0.1)
    assert (a @ b).dtype == torch.float32  # only inside the context


def test_off_leaves_float32_alone():
    with autocast(CPU, "off"):
        assert (torch.randn(4, 8) @ torch.randn(8, 3)).dtype == torch.float32


def test_an_unknown_mode_lists_the_known_ones():
    with pytest.raises(UsageError, match="--amp 'fp8'") as err:
        autocast(CPU, "fp8")
    assert all(mode in str(err.value) for mode in AMP_MODES)


def cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("needs Linux's /proc/cpuinfo")
    flags = [line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")]
    return set(flags[0].split(":", 1)[1].split()) if flags else set()


def test_native_bf16_is_what_the_cpu_reports(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    assert cpu_has_native_bf16() == bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


@pytest.mark.parametrize(
    ("capabilities", "expected"),
    [
        ({"avx512_bf16": True, "amx_bf16": False}, "bf16"),
        ({"avx512_bf16": False, "amx_bf16": True}, "bf16"),
        ({"avx512_bf16": False, "amx_bf16": False}, "off"),
    ],
    ids=["avx512-bf16", "amx", "neither"],
)
def test_auto_picks_bf16_only_on_a_cpu_that_has_it(monkeypatch, capabilities, expected):
    """The choice for each kind of CPU, whichever this machine is: its capabilities probe is
    swapped for one of that kind."""
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    mode, why = resolve_amp("auto", CPU)
    assert mode == expected and not why.startswith("slow") and "$" not in why
    assert resolve_amp("bf16", CPU)[1].startswith("slow") == (expected == "off")


@pytest.mark.parametrize(("avx512_bf16", "amx"), [(True, False), (False, True), (False, False)])
def test_a_torch_without_get_capabilities_is_probed_another_way(monkeypatch, avx512_bf16, amx):
    """torch 2.6, the oldest that requirements.txt admits, has only private probes."""
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert cpu_has_native_bf16() == (avx512_bf16 or amx)


@pytest.mark.parametrize(("value", "expected"), [("1", "bf16"), ("0", "off")])
def test_the_environment_stands_in_for_the_cpu(monkeypatch, value, expected):
    """$TEMPLATE_CPU_BF16 overrides the probe both ways, and the reason logged says so."""
    other = {"avx512_bf16": expected == "off", "amx_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: other, raising=False)
    monkeypatch.setenv(CPU_BF16_ENV, value)
    assert cpu_has_native_bf16() == (expected == "bf16")
    mode, why = resolve_amp("auto", CPU)
    assert mode == expected and why.endswith(f"(as ${CPU_BF16_ENV} says)") == (value == "1")
    assert f"${CPU_BF16_ENV}" in why


def test_a_wrong_value_in_the_environment_is_one_line(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "yes please")
    with pytest.raises(UsageError, match=rf"\${CPU_BF16_ENV}='yes please': expected 1 .* or 0"):
        cpu_has_native_bf16()


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_each_kind_of_gpu(monkeypatch, bf16, expected):
    """bf16 on a GPU that has it (Ampere and later), fp16 with a scaler on older ones; the
    GPU's answer is stood in for, so this holds with or without a GPU."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    mode, why = resolve_amp("auto", torch.device("cuda"))
    assert mode == expected and not why.startswith("slow")


def test_explicit_modes_stand_and_fp16_on_a_cpu_is_called_slow():
    assert resolve_amp("off", CPU) == ("off", "as asked")
    mode, why = resolve_amp("fp16", CPU)
    assert mode == "fp16" and why.startswith("slow: a CPU has no fast fp16 kernels")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_a_gpu_is_bf16_where_it_has_it_else_fp16():
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert resolve_amp("auto", torch.device("cuda"))[0] == expected


def test_channels_last_auto_is_on_for_models_with_convolutions():
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert resolve_channels_last("auto", conv) and not resolve_channels_last("auto", mlp)
    assert resolve_channels_last(True, mlp) and not resolve_channels_last(False, conv)


@pytest.mark.parametrize(
    ("text", "value"), [("auto", "auto"), ("AUTO", "auto"), ("True", True), ("false", False)]
)
def test_auto_or_bool_parses(text, value):
    assert auto_or_bool(text) == value


def test_auto_or_bool_refuses_other_text():
    with pytest.raises(argparse.ArgumentTypeError, match="expected True or False"):
        auto_or_bool("sometimes")


def test_the_log_says_what_was_chosen_and_warns_when_it_is_slow(caplog):
    with caplog.at_level(logging.INFO, logger="utils.loop.amp"):
        log_precision(("off", "no native bf16 on this cpu"), True, "auto")
        log_precision(("fp16", "slow: a CPU has no fast fp16 kernels"), False, False)
    first, second = caplog.records
    assert first.levelno == logging.INFO
    assert first.getMessage() == (
        "amp off (no native bf16 on this cpu); channels_last on (auto: the model has convolutions)"
    )
    assert second.levelno == logging.WARNING and second.getMessage().startswith("amp fp16 (slow")


CONV = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
MLP = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


@pytest.mark.parametrize(
    ("amp", "asked_amp", "asked_layout", "model", "expected"),
    [
        (
            ("bf16", ""),
            "auto",
            "auto",
            CONV,
            [("bf16", True), ("bf16", False), ("off", True), ("off", False)],
        ),
        (("fp16", ""), "auto", "auto", MLP, [("fp16", False), ("off", False)]),
        (("off", ""), "auto", True, CONV, [("off", True)]),
        (("bf16", ""), "bf16", "auto", CONV, [("bf16", True), ("bf16", False)]),
        (("bf16", ""), "bf16", False, CONV, [("bf16", False)]),
    ],
    ids=["both-auto", "mlp", "rule-says-off", "amp-given", "nothing-auto"],
)
def test_auto_chooses_among_the_rule_and_full_precision_and_both_layouts(
    amp, asked_amp, asked_layout, model, expected
):
    assert candidates(amp, asked_amp, asked_layout, model) == expected


def test_each_candidate_is_timed_after_a_warm_up():
    calls = {"a": 0, "b": 0}

    def step(choice):
        def run():
            calls[choice] += 1
            time.sleep(0.002 if choice == "a" else 0.0)

        return run

    seconds = time_candidates(step, ["a", "b"], CPU, steps=3, rounds=2)
    assert calls == {"a": 2 + 3 * 2, "b": 2 + 3 * 2}
    assert seconds["a"] >= 0.002 > seconds["b"]


def test_a_timed_pick_is_the_fastest_and_a_resume_keeps_what_was_picked(monkeypatch):
    monkeypatch.setattr(amp_module, "timed_here", lambda device: True)
    timings = {("bf16", True): 3.0, ("bf16", False): 2.0, ("off", True): 1.0, ("off", False): 4.0}
    timed = []

    def timer(choices):
        timed.append(choices)
        return {c: timings[c] for c in choices}

    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    amp, layout, why = pick_precision("auto", "auto", cuda, CONV, None, timer, DistInfo())
    assert (amp[0], layout) == ("off", True) and why == amp[
        1
    ] == "auto: the fastest of the steps timed"
    assert timed == [list(timings)]
    picked = {"amp": "bf16", "channels_last": False}
    amp, layout, why = pick_precision("auto", "auto", cuda, CONV, picked, timer, DistInfo())
    assert (amp[0], layout) == ("bf16", False) and len(timed) == 1  # kept, not timed again
    amp, layout, why = pick_precision("off", "auto", cuda, CONV, None, timer, DistInfo())
    assert amp == ("off", "as asked") and layout and why.startswith("auto")  # the layout alone


def test_time_steps_times_copies_and_leaves_the_random_streams_alone():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(3))
    model(torch.randn(1, 1, 5, 5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = (torch.randn(4, 1, 5, 5), torch.randint(0, 3, (4,)))
    rng = torch.get_rng_state()
    seconds = time_steps(
        model, lambda: batch, nn.functional.cross_entropy, [("off", False), ("off", True)]
    )
    assert set(seconds) == {("off", False), ("off", True)} and all(s > 0 for s in seconds.values())
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
