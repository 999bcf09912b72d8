"""Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture", arXiv:1512.00567).

torchvision's implementation with the Google weights (``inception_v3_google-0cc3c7bd.pth``):
same parameter names (including the auxiliary classifier, present in the file though unused), and
``transform_input=True`` as torchvision sets it for these weights (the input is ImageNet-normalised
and re-mapped to the [-1, 1] scaling the Google weights were trained with). The metrics use the
2048-d global average pool (torchvision's ``avgpool`` node): the "Inception" 2-way
identification of MindEye's table and the feature of FID.

``width`` scales every channel count (1.0 = the published network; tests use tiny widths).
Shapes: x (B, 3, H, W), H, W >= 75 -> (B, round(2048 * width)) pooled features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool, padding counted (torchvision)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


def avg_pool_valid(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool over real pixels only (the TF graph behind FID)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def max_pool(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 max pool (the last block of the TF graph behind FID)."""
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class InceptionA(nn.Module):
    """35x35 block: 1x1 | 5x5 | double 3x3 | pool-proj branches."""

    def __init__(self, cin: int, pool: int, s, pool_op=avg_pool) -> None:
        super().__init__()
        self.pool_op = pool_op
        self.branch1x1 = BasicConv2d(cin, s(64), kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, s(48), kernel_size=1)
        self.branch5x5_2 = BasicConv2d(s(48), s(64), kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, s(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(s(64), s(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(s(96), s(96), kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, s(pool), kernel_size=1)
        self.out_channels = s(64) + s(64) + s(96) + s(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(self.pool_op(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35 -> 17 grid reduction."""

    def __init__(self, cin: int, s) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, s(384), kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, s(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(s(64), s(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(s(96), s(96), kernel_size=3, stride=2)
        self.out_channels = s(384) + s(96) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (``c7`` inner channels)."""

    def __init__(self, cin: int, c7: int, s, pool_op=avg_pool) -> None:
        super().__init__()
        self.pool_op = pool_op
        c7 = s(c7)
        self.branch1x1 = BasicConv2d(cin, s(192), kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, s(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, s(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, s(192), kernel_size=1)
        self.out_channels = 4 * s(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for name in ("branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"):
            bd = getattr(self, name)(bd)
        bp = self.branch_pool(self.pool_op(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """17 -> 8 grid reduction."""

    def __init__(self, cin: int, s) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, s(192), kernel_size=1)
        self.branch3x3_2 = BasicConv2d(s(192), s(320), kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, s(192), kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(s(192), s(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(s(192), s(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(s(192), s(192), kernel_size=3, stride=2)
        self.out_channels = s(320) + s(192) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 block with expanded filter banks."""

    def __init__(self, cin: int, s, pool_op=avg_pool) -> None:
        super().__init__()
        self.pool_op = pool_op
        self.branch1x1 = BasicConv2d(cin, s(320), kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, s(384), kernel_size=1)
        self.branch3x3_2a = BasicConv2d(s(384), s(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(s(384), s(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, s(448), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(s(448), s(384), kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(s(384), s(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(s(384), s(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, s(192), kernel_size=1)
        self.out_channels = s(320) + 4 * s(384) + s(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        bp = self.branch_pool(self.pool_op(x))
        return torch.cat([b1, b3, bd, bp], 1)


class InceptionAux(nn.Module):
    """The auxiliary classifier: in the published file, never run here."""

    def __init__(self, cin: int, num_classes: int, s) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(cin, s(128), kernel_size=1)
        self.conv1 = BasicConv2d(s(128), s(768), kernel_size=5)
        self.fc = nn.Linear(s(768), num_classes)


class InceptionV3(nn.Module):
    """Inception-v3 returning its 2048-d pooled features.

    Args:
        width: channel multiplier (1.0: torchvision's network).
        num_classes: classifier outputs (1000; 1008 in the FID weights), kept so files load strictly.
        aux_logits: build the auxiliary classifier (torchvision's file has it, the FID file not).
        transform_input: re-map ImageNet-normalised input to the Google weights' [-1, 1] scaling.
        fid_variant: the pooling of the TF graph behind FID (pytorch-fid's ``FIDInception*`` blocks:
            average pools over real pixels only, a max pool in the last block); its input is
            ``2 * x - 1`` of [0, 1] pixels at 299 px.
    """

    def __init__(self, width: float = 1.0, num_classes: int = 1000, aux_logits: bool = True,
                 transform_input: bool = True, fid_variant: bool = False) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.fid_variant = fid_variant
        s = lambda c: max(1, int(round(c * width)))  # noqa: E731 - the channel scaling rule
        pool, last_pool = (avg_pool_valid, max_pool) if fid_variant else (avg_pool, avg_pool)
        self.Conv2d_1a_3x3 = BasicConv2d(3, s(32), kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(s(32), s(32), kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(s(32), s(64), kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(s(64), s(80), kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(s(80), s(192), kernel_size=3)
        self.Mixed_5b = InceptionA(s(192), 32, s, pool)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, 64, s, pool)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, 64, s, pool)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, s)
        self.Mixed_6b = InceptionC(self.Mixed_6a.out_channels, 128, s, pool)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_channels, 160, s, pool)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_channels, 160, s, pool)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_channels, 192, s, pool)
        self.AuxLogits = InceptionAux(self.Mixed_6e.out_channels, num_classes, s) if aux_logits else None
        self.Mixed_7a = InceptionD(self.Mixed_6e.out_channels, s)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, s, pool)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, s, last_pool)
        self.num_features = self.Mixed_7c.out_channels
        self.fc = nn.Linear(self.num_features, num_classes)

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "InceptionV3":
        """The Inception-v3 whose width matches ``sd`` (torchvision names); a 1008-class file without
        auxiliary classifier is pytorch-fid's ``pt_inception-2015-12-05`` (the FID variant)."""
        width = int(sd["Conv2d_1a_3x3.conv.weight"].shape[0]) / 32.0
        aux = any(k.startswith("AuxLogits.") for k in sd)
        n_classes = int(sd["fc.weight"].shape[0])
        fid = n_classes == 1008 and not aux
        return cls(width=width, num_classes=n_classes, aux_logits=aux, transform_input=not fid, fid_variant=fid)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised -> (pixel - 0.5) / 0.5, channel by channel (torchvision's transform_input)."""
        chans = [x[:, i : i + 1] * (IMAGENET_STD[i] / 0.5) + (IMAGENET_MEAN[i] - 0.5) / 0.5 for i in range(3)]
        return torch.cat(chans, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) ImageNet-normalised -> (B, num_features) global-average-pooled features."""
        if self.transform_input:
            x = self._transform(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)  # (B, num_features)
