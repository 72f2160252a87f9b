"""Tests for utils.amp: the autocast context each --amp mode gives."""

import pytest
import torch

from utils.amp import AMP_MODES, autocast
from utils.errors import UsageError

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
