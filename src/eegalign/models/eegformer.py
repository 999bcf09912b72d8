"""EEGformer: convolutional tokenizer + regional / synchronous / temporal transformers.

Paper: Z. Wan, M. Li, S. Liu, J. Huang, H. Tan, W. Duan, "EEGformer: A transformer-based brain
activity classification method using EEG signal", Frontiers in Neuroscience 17:1148855, 2023.
Here with a regression head to a CLIP embedding, as in the reference system.

Shapes (reference preset, x: (B, S=128 electrodes, T=440 samples); C = ``n_filters``,
M = ``n_segments``, K = ``kernel_size``):

- tokenizer, per electrode: depthwise Conv1d k=K -> ReLU -> (B,128,410); depthwise Conv1d k=K
  -> ReLU -> (B,128,380); grouped Conv1d 128 -> 128*C, k=K -> ReLU -> (B,2560,350)
  -> (B, S=128, C=20, D=350)
- regional: x @ W_r (D x D) + E_r (S, C, D) -> (B*S, C, D) -> pre-norm blocks (attention over C)
- synchronous: (B, C, S, D) @ W_s (D x D) + E_s (C, S, D) -> (B*C, S, D) -> blocks (over S)
- temporal: (B, C*S=2560, M=35, 10).mean(-1) -> (B, M=35, L=2560) @ W_t (L x L) + E_t (M, L)
  -> blocks with E=L=2560 (over M)
- weighted pooling over the L positions: score = Linear(M,8) -> Tanh -> Linear(8,1),
  softmax over L, weighted sum -> (B, M=35)
- head: Linear(M, M*head_mult) -> GELU -> Dropout -> Linear(., prod(out_shape)) -> LayerNorm(out_shape[-1])
  -> (B, *out_shape)

Reference preset: 91,771,961 parameters on 128 x 440 (85.3 M in the temporal module).

Where this differs from the reference on purpose:
- the reference reshapes the temporal module's (filters x electrodes) features back in the wrong
  order before pooling; we keep one consistent order (filter-major, ``c * S + s``). The weighted
  pooling is permutation-invariant over positions, so the function is the same.
- sizes (D, L) are computed from ``n_chans``/``n_times``; the time axis after the tokenizer is
  cropped to a multiple of ``n_segments`` = M (no-op for 440 samples: 350 = 35 x 10).
  ``downsample`` > 1 (small preset only) averages the input over that many samples first.
- attention runs through ``scaled_dot_product_attention`` (no attention weights materialised);
  :func:`eegalign.models.use_cpu_kernels` swaps in CPU training kernels with the same state dict;
  the learned mixing matrices are initialised Xavier-uniform and the additive embeddings with
  N(0, 0.02) (the reference's initialisation of these is not documented).
- a text ``out_shape`` (tokens, dim) widens the last Linear to tokens*dim and normalises per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from eegalign.errors import ConfigError
from eegalign.models.base import EncoderBase
from eegalign.models.layers import PreNormBlock


class MixedTokens(nn.Module):
    """Learned linear map on the feature axis plus a learned additive embedding, then transformer blocks.

    (B, G, N, D) -> (B, G, N, D): ``x @ mix + embedding``, then ``n_layers`` pre-norm blocks with
    attention over the N axis (G groups of N tokens of width D).
    """

    def __init__(self, tokens_shape: tuple[int, int], d_model: int, n_heads: int, n_layers: int, dropout: float) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.empty(d_model, d_model))  # (D, D)
        self.embedding = nn.Parameter(torch.empty(*tokens_shape, d_model))  # (G, N, D)
        nn.init.xavier_uniform_(self.mix)
        nn.init.normal_(self.embedding, std=0.02)
        self.blocks = nn.Sequential(*[PreNormBlock(d_model, n_heads, dropout) for _ in range(n_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, G, N, D) -> (B, G, N, D)
        b, g, n, d = x.shape
        x = x @ self.mix + self.embedding  # (B, G, N, D)
        return self.blocks(x.reshape(b * g, n, d)).view(b, g, n, d)  # attention over the N axis


class EEGFormer(EncoderBase):
    """EEGformer (Wan et al. 2023) regressing a CLIP embedding: (B, n_chans, n_times) -> (B, *out_shape).

    Every hyperparameter defaults to None = "the preset's value" (``reference``: the seed's network).

    Args:
        n_chans: EEG channels S.
        n_times: samples per trial T.
        out_shape: target shape, ``(1024,)`` for CLIP image embeddings.
        preset: ``reference`` (the seed's configuration) or ``small`` (tests and CPU demos).
        n_segments: temporal segments M the tokenizer output is averaged into (reference 35).
        n_filters: convolution filters per electrode C (reference 20).
        kernel_size: length of the three tokenizer convolutions (reference 31).
        n_heads: attention heads of the regional and synchronous modules (reference 2).
        n_layers: transformer blocks in each of the three modules (reference 1).
        n_temporal_heads: attention heads of the temporal module (reference 2).
        dropout: dropout of attention and MLPs in the transformer blocks (reference 0.3).
        head_dropout: dropout in the output head (reference 0.1).
        head_mult: the head's hidden width is ``n_segments * head_mult`` (reference 37).
        downsample: average the input over this many samples first (reference 1 = off).
    """

    name = "eegformer"
    routes = ("image",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(
            n_segments=35, n_filters=20, kernel_size=31, n_heads=2, n_layers=1, n_temporal_heads=2,
            dropout=0.3, head_dropout=0.1, head_mult=37, downsample=1,
        ),
        # ~200x fewer FLOPs: input averaged over 4 samples, 2 filters, 5-tap kernels, 8 segments
        # (5 taps so that THINGS-EEG's 17 x 100 trials still give 8 segments: 100 / 4 - 3 * 4 = 13).
        "small": dict(
            n_segments=8, n_filters=2, kernel_size=5, n_heads=2, n_layers=1, n_temporal_heads=2,
            dropout=0.1, head_dropout=0.1, head_mult=8, downsample=4,
        ),
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        *,
        n_segments: int | None = None,
        n_filters: int | None = None,
        kernel_size: int | None = None,
        n_heads: int | None = None,
        n_layers: int | None = None,
        n_temporal_heads: int | None = None,
        dropout: float | None = None,
        head_dropout: float | None = None,
        head_mult: int | None = None,
        downsample: int | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper=dict(
            n_segments=n_segments, n_filters=n_filters, kernel_size=kernel_size, n_heads=n_heads, n_layers=n_layers,
            n_temporal_heads=n_temporal_heads, dropout=dropout, head_dropout=head_dropout, head_mult=head_mult,
            downsample=downsample,
        ))
        h = self.hyper
        s, k, c, m = self.n_chans, h["kernel_size"], h["n_filters"], h["n_segments"]
        d = self.n_times // h["downsample"] - 3 * (k - 1)  # time samples after three valid convolutions
        if d < m:
            raise ConfigError(
                f"eegformer: {self.n_times} samples are too few for kernel_size {k} and n_segments {m}"
            )
        self.n_filters, self.n_segments, self.seq_len = c, m, m * (d // m)  # D: cropped to M segments
        if self.seq_len % h["n_heads"]:
            raise ConfigError(f"eegformer: attention width {self.seq_len} is not divisible by n_heads {h['n_heads']}")
        self.conv1 = nn.Conv1d(s, s, k, groups=s)
        self.conv2 = nn.Conv1d(s, s, k, groups=s)
        self.conv3 = nn.Conv1d(s, s * c, k, groups=s)
        self.regional = MixedTokens((s, c), self.seq_len, h["n_heads"], h["n_layers"], h["dropout"])
        self.synchronous = MixedTokens((c, s), self.seq_len, h["n_heads"], h["n_layers"], h["dropout"])
        self.temporal = MixedTokens((1, m), c * s, h["n_temporal_heads"], h["n_layers"], h["dropout"])
        self.pool_score = nn.Sequential(nn.Linear(m, 8), nn.Tanh(), nn.Linear(8, 1))
        hidden = m * h["head_mult"]
        self.head = nn.Sequential(
            nn.Linear(m, hidden), nn.GELU(), nn.Dropout(h["head_dropout"]), nn.Linear(hidden, self.out_features)
        )
        self.norm = nn.LayerNorm(self.out_shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, c, d, m = x.shape[0], self.n_chans, self.n_filters, self.seq_len, self.n_segments
        if self.hyper["downsample"] > 1:  # (B, S, T) -> (B, S, T // downsample); not in the reference
            x = F.avg_pool1d(x, self.hyper["downsample"])
        x = F.relu(self.conv1(x))  # (B, S, T) -> (B, S, T-K+1)
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))  # (B, S*C, T''), channel = s*C + c
        x = x[..., :d]  # crop to M whole segments: (B, S*C, D)
        x = self.regional(x.reshape(b, s, c, d))  # (B, S, C, D), attention over filters
        x = self.synchronous(x.transpose(1, 2))  # (B, C, S, D), attention over electrodes
        x = x.reshape(b, c * s, m, d // m).mean(-1)  # (B, L=C*S, M): segment means
        x = self.temporal(x.transpose(1, 2).unsqueeze(1)).squeeze(1)  # (B, 1, M, L) -> (B, M, L)
        x = x.transpose(1, 2)  # (B, L, M): M segment features of each position
        w = torch.softmax(self.pool_score(x), dim=1)  # (B, L, 1)
        x = (w * x).sum(1)  # (B, M)
        x = self.head(x).view(b, *self.out_shape)
        return self.norm(x)
