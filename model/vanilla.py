"""The seed classifier: a multi-layer perceptron over flattened images."""

import math
from argparse import Namespace

from torch import Tensor, nn

from model.model_entry import register_model


class Vanilla(nn.Module):
    """MLP ``in_features-512-512-num_classes`` with ReLU and dropout, returning logits."""

    def __init__(
        self, in_features: int = 784, num_classes: int = 10, hidden: int = 512, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@register_model("Vanilla")
def build_vanilla(opt: Namespace, input_shape: tuple[int, ...], num_outputs: int) -> Vanilla:
    """The MLP over a flattened sample of ``input_shape``."""
    return Vanilla(math.prod(input_shape), num_outputs)
