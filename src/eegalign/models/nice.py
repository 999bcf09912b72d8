"""NICE's EEG encoder: a temporal-spatial convolution ("TSConv") and a residual projector.

Song, Y., Liu, B., Li, X., Shi, N., Wang, Y., Gao, X. (2024). *Decoding natural images from EEG
for object recognition*. ICLR 2024 (arXiv:2308.13234). The baseline encoder of the THINGS-EEG2
zero-shot benchmark (Gifford et al. 2022), written here from the paper's description.

Shapes (B batch, C channels, T samples; F = ``n_filters``, K = ``kernel_size``, P = ``pool_size``,
S = ``pool_stride``, T' = (T - K + 1 - P) // S + 1, D = prod(out_shape))::

    x (B, C, T) -> (B, 1, C, T)
    temporal conv 1 x K, F filters           -> (B, F, C, T - K + 1)
    average pool 1 x P, stride 1 x S         -> (B, F, C, T')
    BatchNorm, ELU
    spatial conv C x 1, F filters            -> (B, F, 1, T')
    BatchNorm, ELU, Dropout
    1 x 1 conv, F filters                    -> (B, F, 1, T')
    flatten (time-major, F features per step)-> (B, T' * F)
    projector: Linear(T' * F, D) -> z;  z + Dropout(Linear(GELU(z))) -> LayerNorm(D)  -> (B, *out_shape)

The paper's settings (preset ``reference``): F = 40, K = 25, P = 51, S = 5, dropout 0.5; on
63 x 250 trials T' = 36 (1440 features), on the official 17 x 100 trials T' = 6 (240 features).
For trials shorter than K + P - 1 samples the kernel and the pool shrink to fit (K <= T,
P <= T - K + 1), so every input length gives at least one time step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from eegalign.models.base import EncoderBase


class NICE(EncoderBase):
    """NICE (Song et al. 2024): TSConv feature extractor + residual projector; (B, C, T) -> (B, *out_shape).

    Args:
        n_chans: EEG channels C.
        n_times: samples per trial T.
        out_shape: target shape, ``(1024,)`` for CLIP image embeddings.
        preset: ``reference`` (the paper) or ``small`` (tests and CPU demos).
        n_filters: filters of every convolution, F (None: from the preset).
        kernel_size: temporal convolution length K in samples (None: from the preset).
        pool_size: temporal average-pool window P in samples (None: from the preset).
        pool_stride: temporal average-pool stride S in samples (None: from the preset).
        dropout: dropout after the spatial convolution and in the projector's residual branch
            (None: from the preset).
    """

    name = "nice"
    routes = ("image",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(n_filters=40, kernel_size=25, pool_size=51, pool_stride=5, dropout=0.5),
        "small": dict(n_filters=16, kernel_size=13, pool_size=25, pool_stride=5, dropout=0.3),
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        *,
        n_filters: int | None = None,
        kernel_size: int | None = None,
        pool_size: int | None = None,
        pool_stride: int | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper={
            "n_filters": n_filters, "kernel_size": kernel_size, "pool_size": pool_size,
            "pool_stride": pool_stride, "dropout": dropout,
        })
        h = self.hyper
        f = int(h["n_filters"])
        k = min(int(h["kernel_size"]), self.n_times)
        p = min(int(h["pool_size"]), self.n_times - k + 1)
        s = int(h["pool_stride"])
        self.steps = (self.n_times - k + 1 - p) // s + 1  # T'
        self.tsconv = nn.Sequential(
            nn.Conv2d(1, f, (1, k)),  # (B, 1, C, T) -> (B, F, C, T-K+1)
            nn.AvgPool2d((1, p), (1, s)),  # -> (B, F, C, T')
            nn.BatchNorm2d(f),
            nn.ELU(),
            nn.Conv2d(f, f, (self.n_chans, 1)),  # -> (B, F, 1, T')
            nn.BatchNorm2d(f),
            nn.ELU(),
            nn.Dropout(float(h["dropout"])),
        )
        self.to_tokens = nn.Conv2d(f, f, (1, 1))  # (B, F, 1, T') -> (B, F, 1, T')
        d = self.out_features
        self.project = nn.Linear(self.steps * f, d)
        self.residual = nn.Sequential(nn.GELU(), nn.Linear(d, d), nn.Dropout(float(h["dropout"])))
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        z = self.to_tokens(self.tsconv(x.unsqueeze(1)))  # (B, C, T) -> (B, F, 1, T')
        z = z.squeeze(2).transpose(1, 2).reshape(b, -1)  # (B, T', F) -> (B, T' * F)
        z = self.project(z)  # (B, D)
        z = self.norm(z + self.residual(z))  # (B, D)
        return z.view(b, *self.out_shape)
