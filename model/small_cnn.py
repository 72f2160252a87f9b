"""A small batch-norm conv net for FashionMNIST-sized images, cheap enough to train on a CPU."""

from argparse import Namespace
from collections.abc import Sequence

from torch import Tensor, nn

from model.model_entry import register_model


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution (no bias: batch norm's shift replaces it), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Stages of ``depths[i]`` conv-BN-ReLU layers at ``widths[i]`` channels, 2x2 max pooling
    between stages, then global average pooling, dropout and a linear classifier; returns logits.

    Global average pooling makes the classifier independent of the input size, and pooling
    with ``ceil_mode`` keeps every feature map at least 1x1, so any input size works; the
    defaults are sized for 28x28 (28 -> 14 -> 7).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 64),
        depths: Sequence[int] = (1, 2, 2),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(widths) != len(depths):
            raise ValueError(f"one depth per stage: widths {widths}, depths {depths}")
        layers: list[nn.Module] = []
        channels = in_channels
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            if stage > 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            for _ in range(depth):
                layers.append(conv_bn_relu(channels, width))
                channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model("SmallCNN")
def build_small_cnn(opt: Namespace, input_shape: tuple[int, ...], num_outputs: int) -> SmallCNN:
    """SmallCNN for images of ``input_shape`` (channels first), any size."""
    return SmallCNN(input_shape[0], num_outputs)
