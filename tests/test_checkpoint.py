"""Tests for utils.records.checkpoint: atomic saving, safe loading and strict weight loading."""

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from utils.errors import UsageError
from utils.records.checkpoint import (
    load_checkpoint,
    load_model_state,
    save_checkpoint,
    unwrap_model,
)


def _touch_marker(path):
    """Run at unpickling time by the malicious payload below."""
    Path(path).write_text("code ran")
    return "payload"


class _Payload:
    """An object whose unpickling calls ``_touch_marker`` (i.e. runs arbitrary code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch_marker, (self.marker,))


def _model():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def _real_checkpoint(path, size=10_000):
    """A realistic checkpoint: weights that are not tiny, plus plain containers."""
    save_checkpoint(path, {"model": {"w": torch.randn(size)}, "epoch": 3, "history": [1.0, 2.0]})


def test_round_trip_of_tensors_and_plain_containers(tmp_path):
    model = _model()
    state = {
        "model": model.state_dict(),
        "epoch": 7,
        "best": 0.25,
        "history": [{"loss": 1.5}, {"loss": 1.25}],
        "name": "run",
        "pair": (1, 2),
        "flag": None,
    }
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert set(loaded) == set(state)
    for key, tensor in state["model"].items():
        assert torch.equal(loaded["model"][key], tensor)
    for key in ("epoch", "best", "history", "name", "pair", "flag"):
        assert loaded[key] == state[key]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]


def test_loads_onto_requested_map_location(tmp_path):
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}})
    loaded = load_checkpoint(path, map_location="meta")
    assert loaded["model"]["w"].device.type == "meta"


def test_code_running_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "extra": _Payload(marker)}, path)
    with pytest.raises(UsageError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # The payload is real: an unsafe load of the same file does run it.
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


def test_plain_pickle_with_payload_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=2))
    with pytest.raises(UsageError):
        load_checkpoint(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the payload is real
    assert marker.exists()


@pytest.mark.parametrize("size", [10, 10_000], ids=["tiny", "realistic"])
def test_truncated_checkpoint_is_usage_error(tmp_path, size):
    path = tmp_path / "ckpt.pth"
    _real_checkpoint(path, size)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [b"hello world\nthis is a text file\n", b"abc def", b'{"model": 1}\n', b""],
    ids=["hello", "words", "json", "empty"],
)
def test_text_file_is_usage_error(tmp_path, content):
    path = tmp_path / "notes.pth"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=r"notes\.pth"):
        load_checkpoint(path)


def test_missing_file_is_usage_error(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth")


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("state", [{"epoch": 1}, [1, 2]], ids=["no-model-key", "not-a-dict"])
def test_checkpoint_without_model_entry_is_usage_error(tmp_path, state):
    path = tmp_path / "ckpt.pth"
    torch.save(state, path)
    with pytest.raises(UsageError, match="'model'"):
        load_checkpoint(path)


def test_load_model_state_loads_matching_weights():
    source, target = _model(), _model()
    with torch.no_grad():
        source[1].running_mean.add_(1.5)
    load_model_state(target, source.state_dict(), "ckpt.pth")
    for key, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], tensor)


def _one_line_error(model, state):
    with pytest.raises(UsageError) as info:
        load_model_state(model, state, "best.pth")
    message = str(info.value)
    assert "\n" not in message
    assert "best.pth" in message
    return message


def test_missing_key_is_named():
    state = _model().state_dict()
    del state["2.bias"]
    message = _one_line_error(_model(), state)
    assert "missing keys 2.bias" in message


def test_unexpected_key_is_named():
    state = _model().state_dict()
    state["head.weight"] = torch.zeros(1)
    message = _one_line_error(_model(), state)
    assert "unexpected keys head.weight" in message


def test_shape_mismatch_is_named_with_both_shapes():
    state = _model().state_dict()
    state["0.weight"] = torch.zeros(5, 4)
    message = _one_line_error(_model(), state)
    assert "0.weight (5, 4) vs (3, 4)" in message


def test_failed_load_leaves_model_untouched():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = _model().state_dict()
    del state["0.bias"]
    with pytest.raises(UsageError):
        load_model_state(model, state, "x")
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[key])


def test_many_missing_keys_are_abbreviated():
    model = _model()
    keys = sorted(model.state_dict())
    message = _one_line_error(model, {})
    assert f"missing keys {', '.join(keys[:3])} (+{len(keys) - 3} more)" in message


def test_three_missing_keys_are_all_named():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 1, bias=False))
    message = _one_line_error(model, {})
    assert message.endswith("missing keys 0.bias, 0.weight, 1.weight")


def test_unwrap_plain_model_is_identity():
    model = _model()
    assert unwrap_model(model) is model


def test_unwrap_and_load_through_data_parallel():
    inner = _model()
    # Holds on any machine: without a GPU DataParallel just holds the module; with exactly one
    # visible it moves the module there, so the loaded weights are compared on the CPU.
    wrapped = nn.DataParallel(inner)
    assert unwrap_model(wrapped) is inner
    source = _model()
    load_model_state(wrapped, source.state_dict(), "ckpt.pth")
    for key, tensor in source.state_dict().items():
        assert torch.equal(inner.state_dict()[key].cpu(), tensor)
