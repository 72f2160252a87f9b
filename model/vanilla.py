"""The seed classifier: a multi-layer perceptron over flattened images."""

from torch import Tensor, nn


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
