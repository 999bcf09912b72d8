"""EEGformer: convolutional tokenizer + regional / synchronous / temporal transformers.

Paper: Z. Wan, M. Li, S. Liu, J. Huang, H. Tan, W. Duan, "EEGformer: A transformer-based brain
activity classification method using EEG signal", Frontiers in Neuroscience 17:1148855, 2023.
Here with a regression head to a CLIP embedding, as in the reference system.

Shapes (reference preset, x: (B, S=128 electrodes, T=440 samples)):

- tokenizer, per electrode: depthwise Conv1d k=31 -> ReLU -> (B,128,410); depthwise Conv1d k=31
  -> ReLU -> (B,128,380); grouped Conv1d 128 -> 128*20, k=31 -> ReLU -> (B,2560,350)
  -> (B, S=128, C=20, D=350)
- regional: x @ W_r (D x D) + E_r (S, C, D) -> (B*S, C, D) -> pre-norm blocks (attention over C)
- synchronous: (B, C, S, D) @ W_s (D x D) + E_s (C, S, D) -> (B*C, S, D) -> blocks (over S)
- temporal: (B, C*S=2560, M=hidden_dim=35, 10).mean(-1) -> (B, M=35, L=2560) @ W_t (L x L) + E_t (M, L)
  -> blocks with E=L=2560 (over M)
- weighted pooling over the L positions: score = Linear(M,8) -> Tanh -> Linear(8,1),
  softmax over L, weighted sum -> (B, M=35)
- head: Linear(M, M*37) -> GELU -> Dropout 0.1 -> Linear(., prod(out_shape)) -> LayerNorm(out_shape[-1])
  -> (B, *out_shape)

Reference preset: 91,771,961 parameters on 128 x 440 (85.3 M in the temporal module).

Where this differs from the reference on purpose:
- the reference reshapes the temporal module's (filters x electrodes) features back in the wrong
  order before pooling; we keep one consistent order (filter-major, ``c * S + s``). The weighted
  pooling is permutation-invariant over positions, so the function is the same.
- sizes (D, L) are computed from ``n_chans``/``n_times``; the time axis after the tokenizer is
  cropped to a multiple of ``hidden_dim`` = M (no-op for 440 samples: 350 = 35 x 10).
  ``downsample`` > 1 (small preset only) averages the input over that many samples first.
- attention runs through ``scaled_dot_product_attention`` (no attention weights materialised;
  when training on the CPU, attention with dropout and the MLPs run as the cache-blocked kernels
  of :mod:`eegalign.models.layers`, the same function and dropout distribution);
  the learned mixing matrices are initialised Xavier-uniform and the additive embeddings with
  N(0, 0.02) (the reference's initialisation of these is not documented).
- a text ``out_shape`` (tokens, dim) widens the last Linear to tokens*dim and normalises per token.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from eegalign.errors import ConfigError
from eegalign.models.base import EncoderBase
from eegalign.models.layers import Dropout, PreNormBlock, matmul_rows


class _MixedTokens(nn.Module):
    """Learned linear map on the feature axis plus a learned additive embedding, then transformer blocks."""

    def __init__(self, tokens_shape: tuple[int, int], dim: int, heads: int, blocks: int, dropout: float) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.empty(dim, dim))
        self.embedding = nn.Parameter(torch.empty(*tokens_shape, dim))
        nn.init.xavier_uniform_(self.mix)
        nn.init.normal_(self.embedding, std=0.02)
        self.blocks = nn.Sequential(*[PreNormBlock(dim, heads, dropout) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, G, N, D) -> (B, G, N, D)
        b, g, n, d = x.shape
        # (B*G*N, D) contiguous (a copy only for a transposed input) @ (D, D) + the (G*N, D) embedding of each row
        x = matmul_rows(x.reshape(b * g * n, d), self.mix, self.embedding.view(g * n, d)).view(b * g, n, d)
        return self.blocks(x).view(b, g, n, d)  # attention over the N axis


class EEGFormer(EncoderBase):
    """EEGformer (Wan et al. 2023) regressing a CLIP embedding: (B, n_chans, n_times) -> (B, *out_shape)."""

    name = "eegformer"
    routes = ("image",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(
            hidden_dim=35, depth_filters=20, kernel_size=31, num_heads=2, num_blocks=1, downsample=1,
            dropout=0.3, head_dropout=0.1, head_mult=37, temporal_heads=2,
        ),
        # ~200x fewer FLOPs: input averaged over 4 samples, 2 filters, 7-tap kernels, 8 segments.
        "small": dict(
            hidden_dim=8, depth_filters=2, kernel_size=7, num_heads=2, num_blocks=1, downsample=4,
            dropout=0.1, head_dropout=0.1, head_mult=8, temporal_heads=2,
        ),
    }

    def __init__(self, n_chans: int = 128, n_times: int = 440, out_shape=(1024,), preset: str | None = None, **hyper: Any):
        super().__init__(n_chans, n_times, out_shape, preset, **hyper)
        h = self.hyper
        s, k, c, m = self.n_chans, h["kernel_size"], h["depth_filters"], h["hidden_dim"]
        d = self.n_times // h["downsample"] - 3 * (k - 1)  # time samples after three valid convolutions
        if d < m:
            raise ConfigError(
                f"eegformer: {self.n_times} samples are too few for kernel_size {k} and hidden_dim {m} segments"
            )
        seg = d // m  # samples per temporal segment (10 for 440 samples)
        self.n_filters, self.n_segments, self.seq_len = c, m, m * seg
        if self.seq_len % h["num_heads"]:
            raise ConfigError(f"eegformer: attention width {self.seq_len} is not divisible by num_heads {h['num_heads']}")
        length = c * s
        self.conv1 = nn.Conv1d(s, s, k, groups=s)
        self.conv2 = nn.Conv1d(s, s, k, groups=s)
        self.conv3 = nn.Conv1d(s, s * c, k, groups=s)
        self.regional = _MixedTokens((s, c), self.seq_len, h["num_heads"], h["num_blocks"], h["dropout"])
        self.synchronous = _MixedTokens((c, s), self.seq_len, h["num_heads"], h["num_blocks"], h["dropout"])
        self.temporal = _MixedTokens((1, m), length, h["temporal_heads"], h["num_blocks"], h["dropout"])
        self.pool_score = nn.Sequential(nn.Linear(m, 8), nn.Tanh(), nn.Linear(8, 1))
        hidden = m * h["head_mult"]
        self.head = nn.Sequential(
            nn.Linear(m, hidden), nn.GELU(), Dropout(h["head_dropout"]), nn.Linear(hidden, self.out_features)
        )
        self.norm = nn.LayerNorm(self.out_shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, c, d, m = x.shape[0], self.n_chans, self.n_filters, self.seq_len, self.n_segments
        if self.hyper["downsample"] > 1:  # (B, S, T) -> (B, S, T // downsample); not in the reference
            x = F.avg_pool1d(x, self.hyper["downsample"])
        x = F.relu(self.conv1(x))  # (B, S, T) -> (B, S, T-k+1)
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))  # (B, S*C, T''), channel = s*C + c
        if x.shape[-1] != d:  # crop to M segments (a no-op slice would still cost a zero-filled gradient)
            x = x[..., :d]  # (B, S*C, D)
        x = self.regional(x.view(b, s, c, d))  # (B, S, C, D), attention over filters
        x = self.synchronous(x.transpose(1, 2))  # (B, C, S, D), attention over electrodes
        x = x.reshape(b, c * s, m, d // m).mean(-1)  # (B, L=C*S, M)
        x = self.temporal(x.transpose(1, 2).unsqueeze(1)).squeeze(1)  # (B, 1, M, L) -> (B, M, L)
        x = x.transpose(1, 2)  # (B, L, M): M segment features of each position
        w = torch.softmax(self.pool_score(x), dim=1)  # (B, L, 1)
        x = (w * x).sum(1)  # (B, M)
        x = self.head(x).view(b, *self.out_shape)
        return self.norm(x)
