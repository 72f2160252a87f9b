"""U-Net and UNet++: any-size outputs, the deep supervision contract, gradients, learning."""

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from model.blocks import DoubleConv, EpochBatchNorm2d, match_size
from model.unet import UNet
from model.unetpp import UNetPP
from utils.errors import UsageError

ModelFactory = Callable[..., nn.Module]

VARIANTS: dict[str, ModelFactory] = {
    "unet_bilinear": lambda **kw: UNet(bilinear=True, **kw),
    "unet_transposed": lambda **kw: UNet(bilinear=False, **kw),
    "unetpp": lambda **kw: UNetPP(deep_supervision=False, **kw),
    "unetpp_deep": lambda **kw: UNetPP(deep_supervision=True, **kw),
}


def outputs(result: Tensor | list[Tensor]) -> list[Tensor]:
    """The logits tensors of a forward pass, whether it returned one or a list."""
    return result if isinstance(result, list) else [result]


def test_match_size_pads_and_crops_around_the_center():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    ref = torch.zeros(1, 1, 5, 2)
    out = match_size(x, ref)
    assert out.shape == (1, 1, 5, 2)
    assert torch.equal(out[..., 1:4, :], x[..., 1:3])
    assert torch.equal(out[..., [0, 4], :], torch.zeros(1, 1, 2, 2))
    assert match_size(x, x) is x


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize(
    ("depth", "size"), [(4, (37, 53)), (4, (64, 64)), (4, (17, 33)), (2, (5, 7))]
)
def test_output_matches_input_size(name: str, depth: int, size: tuple[int, int]):
    model = VARIANTS[name](in_channels=3, out_channels=2, base_width=4, depth=depth)
    x = torch.randn(2, 3, *size)
    for training in (True, False):
        model.train(training)
        with torch.no_grad():
            result = model(x)
        for logits in outputs(result):
            assert logits.shape == (2, 2, *size)


def test_deep_supervision_lists_heads_in_training_and_averages_them_in_eval():
    depth = 3
    model = UNetPP(in_channels=1, out_channels=2, base_width=4, depth=depth, deep_supervision=True)
    x = torch.randn(2, 1, 24, 20)
    with torch.no_grad():
        heads = model.train()(x)
        assert isinstance(heads, list)
        assert len(heads) == depth
        assert all(h.shape == (2, 2, 24, 20) for h in heads)
        assert not torch.allclose(heads[0], heads[-1])

        averaged = model.eval()(x)
        assert isinstance(averaged, Tensor)
        # Only the top module's flag selects the list; the BatchNorms stay in eval mode.
        model.training = True
        assert not any(m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d))
        eval_heads = model(x)
        model.training = False
    assert len(eval_heads) == depth
    assert torch.allclose(averaged, torch.stack(eval_heads).mean(dim=0), atol=1e-6)


def test_without_deep_supervision_training_returns_one_tensor():
    model = UNetPP(in_channels=1, base_width=4, depth=2).train()
    assert isinstance(model(torch.randn(2, 1, 8, 8)), Tensor)


@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_reach_every_parameter(name: str):
    torch.manual_seed(0)
    model = VARIANTS[name](in_channels=2, out_channels=1, base_width=4, depth=3).train()
    loss = sum(logits.sum() for logits in outputs(model(torch.randn(2, 2, 19, 23))))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", VARIANTS)
def test_parameter_count_grows_with_base_width(name: str):
    counts = [
        sum(p.numel() for p in VARIANTS[name](base_width=w, depth=3).parameters())
        for w in (4, 8, 16)
    ]
    assert counts[0] < counts[1] < counts[2]


def test_first_double_conv_has_the_hand_computed_parameter_count():
    in_ch, width = 3, 8
    block = UNet(in_channels=in_ch, base_width=width).encoder[0]
    assert isinstance(block, DoubleConv)
    conv1 = in_ch * width * 3 * 3  # no bias: BatchNorm supplies it
    conv2 = width * width * 3 * 3
    batchnorms = 2 * (2 * width)  # weight and bias of each
    assert sum(p.numel() for p in block.parameters()) == conv1 + conv2 + batchnorms


@pytest.mark.parametrize("bilinear", [True, False])
def test_upsampled_map_is_as_wide_as_the_skip_it_joins(bilinear: bool):
    depth, width = 4, 8
    model = UNet(base_width=width, depth=depth, bilinear=bilinear)
    transposed = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(transposed) == (0 if bilinear else depth)
    for level, up in zip(reversed(range(depth)), model.decoder, strict=True):
        skip_width = width * 2**level
        assert up.conv[0].in_channels == 2 * skip_width


def test_depth_below_one_is_rejected():
    for model_cls in (UNet, UNetPP):
        with pytest.raises(ValueError, match="depth"):
            model_cls(depth=0)


def test_tiny_unet_overfits_one_batch():
    torch.manual_seed(0)
    masks = torch.zeros(2, 1, 32, 32)
    masks[0, :, 4:16, 6:20] = 1
    masks[1, :, 14:30, 10:26] = 1
    images = masks + 0.1 * torch.randn_like(masks)
    model = UNet(in_channels=1, out_channels=1, base_width=8).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = criterion(model(images), masks)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("name", VARIANTS)
def test_eval_output_is_deterministic(name: str):
    model = VARIANTS[name](in_channels=1, base_width=4, depth=2).eval()
    x = torch.randn(1, 1, 13, 11)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("name", ["unet_bilinear", "unet_transposed", "unetpp"])
def test_group_norm_behaves_the_same_in_training_and_evaluation(name):
    """No running statistics to settle: what validation sees after a few steps is what
    training saw (BatchNorm's eval output differs, and after few steps badly)."""
    torch.manual_seed(0)
    model = VARIANTS[name](in_channels=1, base_width=8, depth=2, norm="group")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(m.num_groups == 8 for m in model.modules() if isinstance(m, nn.GroupNorm))
    x = torch.randn(2, 1, 16, 12)
    with torch.no_grad():
        assert torch.allclose(model.train()(x), model.eval()(x), atol=1e-6)
        batch_norm = VARIANTS[name](in_channels=1, base_width=8, depth=2)
        assert not torch.allclose(batch_norm.train()(x), batch_norm.eval()(x), atol=1e-3)


def test_an_unknown_norm_lists_the_known_ones():
    with pytest.raises(UsageError, match="unknown norm 'layer'; known: batch, group"):
        DoubleConv(1, 4, norm="layer")


def test_epoch_batch_norm_keeps_the_mean_of_the_epochs_batches_as_pytorch_does():
    """The running statistics are the plain mean of the batches since the last reset, as
    PyTorch's ``momentum=None`` gives (which reads the count on the host), the outputs are
    the same, and the checkpoint keys are BatchNorm2d's."""
    generator = torch.Generator().manual_seed(0)
    ours, pytorchs = EpochBatchNorm2d(3), nn.BatchNorm2d(3, momentum=None)
    for _epoch in range(2):
        ours.reset_running_stats()
        pytorchs.reset_running_stats()
        for scale in (1.0, 4.0, 0.5, 2.0):
            x = scale * torch.randn(4, 3, 5, 6, generator=generator) + scale
            assert torch.equal(ours(x), pytorchs(x))
        torch.testing.assert_close(ours.running_mean, pytorchs.running_mean)
        torch.testing.assert_close(ours.running_var, pytorchs.running_var)
        assert ours.num_batches_tracked.item() == 4
    assert not torch.allclose(ours.running_var, torch.ones(3))  # the batches moved it
    x = torch.randn(2, 3, 4, 4, generator=generator)
    torch.testing.assert_close(ours.eval()(x), pytorchs.eval()(x))
    assert ours.state_dict().keys() == pytorchs.state_dict().keys()


def test_a_compiled_unet_training_forward_is_one_graph():
    """No host read in the default UNet's BatchNorm: dynamo captures the whole training
    forward in one graph, with no break."""
    model = UNet(in_channels=3, out_channels=1, base_width=4, depth=2).train()
    explained = torch._dynamo.explain(model)(torch.randn(2, 3, 16, 16))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
