"""ResNet-50 (He et al. 2016, arXiv:1512.03385) with the SwAV self-supervised weights
(Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster
Assignments", arXiv:2006.09882).

torchvision's ResNet-50 (v1.5: stride on the 3x3 convolution), same parameter names. The SwAV
release (``swav_800ep_pretrain.pth.tar``, what ``torch.hub.load('facebookresearch/swav:main',
'resnet50')`` downloads) holds ``module.``-prefixed backbone weights plus a projection head and
prototypes, and no ``fc``: :func:`swav_state_dict` keeps the backbone. The metric uses the
2048-d global average pool (torchvision's ``avgpool`` node).

Shapes: x (B, 3, H, W) -> (B, 32 * width) pooled features (width 64: 2048).
"""

from __future__ import annotations

import torch
from torch import nn

RESNET50_BLOCKS = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 (x4 channels), identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet50(nn.Module):
    """ResNet-50 returning its pooled features.

    Args:
        width: channels of the stem (64); stage i has ``width * 2**i`` bottleneck planes.
        blocks: bottlenecks per stage (3, 4, 6, 3).
        num_classes: classifier outputs (1000); the SwAV file has no ``fc`` (it stays random, unused).
    """

    def __init__(self, width: int = 64, blocks: tuple[int, ...] = RESNET50_BLOCKS, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        cin = width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            layer = [Bottleneck(cin if j == 0 else planes * 4, planes, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            cin = planes * 4
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "ResNet50":
        """The network whose stem width and block counts match ``sd`` (torchvision names)."""
        blocks = tuple(len({k.split(".")[1] for k in sd if k.startswith(f"layer{i}.")}) for i in range(1, 5))
        num_classes = int(sd["fc.weight"].shape[0]) if "fc.weight" in sd else 1000
        return cls(width=int(sd["conv1.weight"].shape[0]), blocks=blocks, num_classes=num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) ImageNet-normalised -> (B, num_features) global-average-pooled features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


def swav_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone of a SwAV checkpoint: ``module.`` stripped, projection head and prototypes dropped."""
    out = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    return {k: v for k, v in out.items() if not k.startswith(("projection_head.", "prototypes."))}
