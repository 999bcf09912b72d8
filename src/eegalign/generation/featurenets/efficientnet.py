"""EfficientNet-B1 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling", arXiv:1905.11946).

torchvision's implementation (MBConv blocks with squeeze-excitation, SiLU, BatchNorm eps 1e-5),
same parameter names, so ``efficientnet_b1-c27df63c.pth`` (torchvision's default B1 weights,
used by MindEye) or ``efficientnet_b1_rwightman-533bc792.pth`` load strictly. The metric uses
the 1280-d global average pool (torchvision's ``avgpool`` node).

Stage layout (expand ratio, kernel, first stride) is B0's table; channel widths and the number of
blocks per stage are parameters, read from the weights by :meth:`EfficientNetB1.from_state_dict`
(B1: widths 32 | 16 24 40 80 112 192 320 | 1280, blocks 2 3 3 4 4 5 2).
Shapes: x (B, 3, H, W) -> (B, last) pooled features.
"""

from __future__ import annotations

import torch
from torch import nn

#: (expand ratio, kernel, stride of the first block) of the seven stages (EfficientNet Table 1).
STAGE_TABLE = ((1, 3, 1), (6, 3, 2), (6, 5, 2), (6, 3, 2), (6, 5, 1), (6, 5, 2), (6, 3, 1))
B1_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
B1_BLOCKS = (2, 3, 3, 4, 4, 5, 2)


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv (no bias, 'same' padding) -> BatchNorm -> SiLU (optional)."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel gating: global pool -> 1x1 conv (fc1) -> SiLU -> 1x1 conv (fc2) -> sigmoid -> scale."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(s))))


class MBConv(nn.Module):
    """Inverted residual: [expand 1x1] -> depthwise kxk -> SE -> project 1x1 (+ identity when shapes allow)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [conv_bn(cin, hidden, 1)] if hidden != cin else []
        layers += [
            conv_bn(hidden, hidden, kernel, stride, groups=hidden),
            SqueezeExcitation(hidden, max(1, cin // 4)),
            conv_bn(hidden, cout, 1, act=False),
        ]
        self.block = nn.Sequential(*layers)
        self.use_res = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.use_res else y  # stochastic depth is the identity at eval


class EfficientNetB1(nn.Module):
    """EfficientNet (B0 stage table) returning its pooled features.

    Args:
        stem: channels of the first convolution (32).
        channels: output channels of the seven stages (B1: 16 24 40 80 112 192 320).
        blocks: MBConv blocks per stage (B1: 2 3 3 4 4 5 2).
        last: channels of the final 1x1 convolution (1280).
        num_classes: classifier outputs (1000), kept so the published file loads strictly.
    """

    def __init__(self, stem: int = 32, channels: tuple[int, ...] = B1_CHANNELS, blocks: tuple[int, ...] = B1_BLOCKS,
                 last: int = 1280, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, stem, 3, 2)]
        cin = stem
        for (expand, kernel, stride), cout, n in zip(STAGE_TABLE, channels, blocks):
            stage = [MBConv(cin if j == 0 else cout, cout, expand, kernel, stride if j == 0 else 1) for j in range(n)]
            layers.append(nn.Sequential(*stage))
            cin = cout
        layers.append(conv_bn(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        self.num_features = last

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "EfficientNetB1":
        """The network whose widths and per-stage block counts match ``sd`` (torchvision names)."""
        channels, blocks = [], []
        for stage in range(1, 8):
            n = len({k.split(".")[2] for k in sd if k.startswith(f"features.{stage}.")})
            blocks.append(n)
            proj = max(k for k in sd if k.startswith(f"features.{stage}.0.block.") and k.endswith(".0.weight"))
            channels.append(int(sd[proj].shape[0]))  # the last conv of a block is the projection
        return cls(
            stem=int(sd["features.0.0.weight"].shape[0]), channels=tuple(channels), blocks=tuple(blocks),
            last=int(sd["features.8.0.weight"].shape[0]), num_classes=int(sd["classifier.1.weight"].shape[0]),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) ImageNet-normalised -> (B, last) global-average-pooled features."""
        return self.features(x).mean(dim=(2, 3))
