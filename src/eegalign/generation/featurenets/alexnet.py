"""AlexNet, torchvision's variant ("One weird trick", Krizhevsky 2014, arXiv:1404.5997).

The reconstruction metrics use its 2nd and 5th convolutional layers (after their ReLU): the
nodes ``features.4`` and ``features.11`` of ``torchvision.models.alexnet``, as in MindEye
(Scotti et al. 2023) and the papers that copy its table. Parameter names equal torchvision's, so
``alexnet-owt-7be5be79.pth`` loads strictly.

Shapes (full size, 256x256 input): x (B, 3, 256, 256) -> features.4 (B, 192, 31, 31),
features.11 (B, 256, 15, 15).
"""

from __future__ import annotations

import torch
from torch import nn

FULL_WIDTHS = (64, 192, 384, 256, 256)


class AlexNet(nn.Module):
    """AlexNet whose forward returns the two feature maps the metrics use.

    Args:
        widths: output channels of the five convolutions (torchvision: 64, 192, 384, 256, 256).
        hidden: width of the two hidden classifier layers (4096); kept so the weights load strictly.
        num_classes: classifier outputs (1000).
    """

    def __init__(self, widths: tuple[int, ...] = FULL_WIDTHS, hidden: int = 4096, num_classes: int = 1000) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.features = nn.Sequential(
            nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),  # 0, 1
            nn.MaxPool2d(kernel_size=3, stride=2),  # 2
            nn.Conv2d(c1, c2, kernel_size=5, padding=2), nn.ReLU(inplace=True),  # 3, 4 <- layer 2
            nn.MaxPool2d(kernel_size=3, stride=2),  # 5
            nn.Conv2d(c2, c3, kernel_size=3, padding=1), nn.ReLU(inplace=True),  # 6, 7
            nn.Conv2d(c3, c4, kernel_size=3, padding=1), nn.ReLU(inplace=True),  # 8, 9
            nn.Conv2d(c4, c5, kernel_size=3, padding=1), nn.ReLU(inplace=True),  # 10, 11 <- layer 5
            nn.MaxPool2d(kernel_size=3, stride=2),  # 12
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(c5 * 36, hidden), nn.ReLU(inplace=True),
            nn.Dropout(), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "AlexNet":
        """The AlexNet whose widths match the tensors of ``sd`` (torchvision names)."""
        widths = tuple(int(sd[f"features.{i}.weight"].shape[0]) for i in (0, 3, 6, 8, 10))
        return cls(widths, hidden=int(sd["classifier.1.weight"].shape[0]), num_classes=int(sd["classifier.6.weight"].shape[0]))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (B, 3, H, W) ImageNet-normalised -> {"features.4": (B, c2, h2, w2), "features.11": (B, c5, h5, w5)}."""
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features[:12]):
            x = layer(x)
            if i in (4, 11):
                out[f"features.{i}"] = x  # later layers never write into it (the next op is a pool)
        return out
