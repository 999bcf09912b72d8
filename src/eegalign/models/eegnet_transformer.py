"""EEGNetTransformer: an EEGNet front end, a transformer encoder, and per-token heads to CLIP text states.

EEGNet paper: V. J. Lawhern, A. J. Solon, N. R. Waytowich, S. M. Gordon, C. P. Hung, B. J. Lance,
"EEGNet: a compact convolutional neural network for EEG-based brain-computer interfaces",
Journal of Neural Engineering 15(5):056013, 2018. The transformer and the per-token heads to
the 77 x 768 hidden states of Stable Diffusion 1.5's CLIP text encoder are the reference
system's.

Shapes (reference preset, x: (B, C=128, T=440)):

1. EEGNet: Conv2d(1, 48, (1, 31), pad (0, 15), no bias) -> BN -> depthwise Conv2d(48, 144, (C, 1),
   groups 48, no bias) -> BN -> ELU -> AvgPool(1, 2) -> Dropout 0.3 -> (B, 144, 1, 220)
   -> depthwise Conv2d(144, 144, (1, 16), pad (0, 8), stride (1, 2), groups 144, no bias) -> pointwise
   Conv2d(144, 96, 1, no bias) -> BN -> ELU -> AvgPool(1, 4) -> Dropout 0.3 -> (B, 96, 1, 27)
2. (B, 27, 96) -> Linear(96, 512) -> + sinusoidal PE -> 4 x post-norm TransformerEncoderLayer(512, 8 heads,
   ff 2048, dropout 0.3, ReLU) -> (B, 27, 512)
3. linear interpolation along tokens 27 -> 77 (``align_corners=False``) -> (B, 77, 512)
4. per-token heads: token i uses its own Linear(512, 512) -> GELU -> Dropout 0.3 -> Linear(512, 768)
   -> (B, 77, 768)
5. init: Kaiming-normal convolutions, Xavier-uniform linears with zero bias, BatchNorm 1 / 0.

Reference preset: 63,257,104 parameters on 128 x 440.

Where this differs from the reference on purpose (the function is the same):
- the 77 heads are stored stacked, one parameter each: ``head_w1`` (77, 512, 512), ``head_b1``
  (77, 512), ``head_w2`` (77, 768, 512), ``head_b2`` (77, 768); head i's weights are slice i, in
  ``nn.Linear``'s (out, in) layout. They run as two batched products over the tokens,
  ``W[t] @ x_t + b[t]`` with the batch as columns (``torch.baddbmm``), instead of a Python loop of
  77 pairs of Linears. In that form the weight gradients come out in the stored (out, in) layout
  (no transposing copy of the 77 x 768 x 512 gradient); on CPU it is faster than the loop idle and
  does not collapse when another process competes for the cores, where the loop's 300 small ops
  do (docs/performance.md). ``einsum`` computes the same but ~2.5x slower here.
- the positional-encoding length is computed from the shapes (27), not 55; the heads use the
  configured ``out_shape`` (tokens, dim) instead of a hard-coded 77 x 768.
- :func:`eegalign.models.use_cpu_kernels` swaps in CPU training kernels with the same state dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from eegalign.errors import ConfigError
from eegalign.models.base import EncoderBase
from eegalign.models.layers import PostNormEncoderLayer, SinusoidalPositionalEncoding


class TemporalSpatial(nn.Module):
    """EEGNet's first two convolutions: temporal Conv2d(1, F1, (1, K)) -> BatchNorm2d(F1) -> depthwise
    spatial Conv2d(F1, F1*D, (C, 1), groups=F1). (B, C, T) -> (B, F1*D, 1, T)."""

    def __init__(self, n_chans: int, n_filters: int, depth_multiplier: int, kernel_size: int) -> None:
        super().__init__()
        self.conv_t = nn.Conv2d(1, n_filters, (1, kernel_size), padding=(0, kernel_size // 2), bias=False)
        self.bn1 = nn.BatchNorm2d(n_filters)
        self.conv_s = nn.Conv2d(n_filters, n_filters * depth_multiplier, (n_chans, 1), groups=n_filters, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv_t(x.unsqueeze(1)))  # (B, 1, C, T) -> (B, F1, C, T)
        return self.conv_s(x)  # (B, F1*D, 1, T)


def _stack_grouped_heads(state_dict, prefix, *_args) -> None:
    """Checkpoints written before the heads were one tensor each stored them in groups of tokens
    (``head_w1.0`` .. ``head_w1.7``): concatenated here, in token order, so they still load."""
    for name in ("head_w1", "head_b1", "head_w2", "head_b2"):
        groups = sorted((k for k in state_dict if k.startswith(f"{prefix}{name}.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        if groups and f"{prefix}{name}" not in state_dict:
            state_dict[f"{prefix}{name}"] = torch.cat([state_dict.pop(k) for k in groups])


class EEGNetTransformer(EncoderBase):
    """EEGNet (Lawhern et al. 2018) + transformer + per-token heads: (B, n_chans, n_times) -> (B, *out_shape).

    Every hyperparameter defaults to None = "the preset's value" (``reference``: the seed's network).

    Args:
        n_chans: EEG channels C.
        n_times: samples per trial T.
        out_shape: target shape ``(tokens, dim)``, ``(77, 768)`` for CLIP text hidden states.
        preset: ``reference`` (the seed's configuration) or ``small`` (tests and CPU demos).
        n_filters: temporal filters F1 (reference 48).
        depth_multiplier: spatial filters per temporal filter D (reference 3).
        n_filters_sep: filters of the separable convolution F2 (reference 96).
        kernel_size: temporal convolution length in samples (reference 31).
        pool_size_1: average-pool width after the spatial convolution (reference 2).
        pool_size_2: average-pool width after the separable convolution (reference 4).
        sep_kernel_size: depthwise kernel length of the separable convolution (reference 16).
        sep_stride: stride of the separable convolution (reference 2).
        d_model: token width of the transformer (reference 512).
        n_heads: attention heads (reference 8).
        n_layers: transformer layers (reference 4).
        d_hidden: feed-forward width of the transformer (reference 2048).
        d_head_hidden: hidden width of each per-token head (reference 512).
        dropout: dropout everywhere (front end, transformer, heads) (reference 0.3).
    """

    name = "eegnet_transformer"
    routes = ("text",)
    default_out_shape = (77, 768)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(
            n_filters=48, depth_multiplier=3, n_filters_sep=96, kernel_size=31, pool_size_1=2, pool_size_2=4,
            sep_kernel_size=16, sep_stride=2, d_model=512, n_heads=8, n_layers=4, d_hidden=2048, d_head_hidden=512,
            dropout=0.3,
        ),
        "small": dict(
            n_filters=8, depth_multiplier=2, n_filters_sep=16, kernel_size=15, pool_size_1=2, pool_size_2=4,
            sep_kernel_size=8, sep_stride=2, d_model=64, n_heads=4, n_layers=1, d_hidden=128, d_head_hidden=64,
            dropout=0.3,
        ),
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (77, 768),
        preset: str | None = None,
        *,
        n_filters: int | None = None,
        depth_multiplier: int | None = None,
        n_filters_sep: int | None = None,
        kernel_size: int | None = None,
        pool_size_1: int | None = None,
        pool_size_2: int | None = None,
        sep_kernel_size: int | None = None,
        sep_stride: int | None = None,
        d_model: int | None = None,
        n_heads: int | None = None,
        n_layers: int | None = None,
        d_hidden: int | None = None,
        d_head_hidden: int | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper=dict(
            n_filters=n_filters, depth_multiplier=depth_multiplier, n_filters_sep=n_filters_sep,
            kernel_size=kernel_size, pool_size_1=pool_size_1, pool_size_2=pool_size_2,
            sep_kernel_size=sep_kernel_size, sep_stride=sep_stride, d_model=d_model, n_heads=n_heads,
            n_layers=n_layers, d_hidden=d_hidden, d_head_hidden=d_head_hidden, dropout=dropout,
        ))
        self._build(self.hyper)
        self._init_weights()
        self._register_load_state_dict_pre_hook(_stack_grouped_heads)

    def _build(self, h: dict[str, Any]) -> None:
        f2, fd, e, k, ks = h["n_filters_sep"], h["n_filters"] * h["depth_multiplier"], h["d_model"], h["kernel_size"], h["sep_kernel_size"]
        t1 = (self.n_times + 2 * (k // 2) - k + 1) // h["pool_size_1"]
        t2 = (t1 + 2 * (ks // 2) - ks) // h["sep_stride"] + 1
        self.n_tokens = t2 // h["pool_size_2"]
        if self.n_tokens < 1:
            raise ConfigError(f"eegnet_transformer: {self.n_times} samples give no tokens after pooling")
        self.front = TemporalSpatial(self.n_chans, h["n_filters"], h["depth_multiplier"], k)
        self.bn2 = nn.BatchNorm2d(fd)
        self.pool1 = nn.AvgPool2d((1, h["pool_size_1"]))
        self.drop1 = nn.Dropout(h["dropout"])
        self.sep_dw = nn.Conv2d(fd, fd, (1, ks), padding=(0, ks // 2), stride=(1, h["sep_stride"]), groups=fd, bias=False)
        self.sep_pw = nn.Conv2d(fd, f2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(f2)
        self.pool2 = nn.AvgPool2d((1, h["pool_size_2"]))
        self.drop2 = nn.Dropout(h["dropout"])
        self.proj = nn.Linear(f2, e)
        self.pos = SinusoidalPositionalEncoding(self.n_tokens, e)
        self.encoder = nn.Sequential(
            *[PostNormEncoderLayer(e, h["n_heads"], h["d_hidden"], h["dropout"]) for _ in range(h["n_layers"])]
        )
        tokens, dim = (1, *self.out_shape) if len(self.out_shape) == 1 else self.out_shape
        self.out_tokens, hid = tokens, h["d_head_hidden"]
        # the per-token heads, stacked: head i is slice i, in nn.Linear's (out, in) layout
        self.head_w1 = nn.Parameter(torch.empty(tokens, hid, e))  # (77, hid, E)
        self.head_b1 = nn.Parameter(torch.zeros(tokens, hid))  # (77, hid)
        self.head_w2 = nn.Parameter(torch.empty(tokens, dim, hid))  # (77, dim, hid)
        self.head_b2 = nn.Parameter(torch.zeros(tokens, dim))  # (77, dim)
        self.head_drop = nn.Dropout(h["dropout"])

    def _init_weights(self) -> None:
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight)
            elif isinstance(mod, nn.Linear):
                nn.init.xavier_uniform_(mod.weight)
                nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)
        for w in (self.head_w1, self.head_w2):  # Xavier-uniform of each (out, in) slice
            bound = math.sqrt(6.0 / (w.shape[1] + w.shape[2]))
            nn.init.uniform_(w, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = F.elu(self.bn2(self.front(x)))  # (B, F1*D, 1, T)
        x = self.drop1(self.pool1(x))  # (B, F1*D, 1, T/2)
        x = F.elu(self.bn3(self.sep_pw(self.sep_dw(x))))  # (B, F2, 1, T2)
        x = self.drop2(self.pool2(x))  # (B, F2, 1, N)
        x = self.pos(self.proj(x.flatten(2).transpose(1, 2)))  # (B, N, F2) -> (B, N, E)
        x = self.encoder(x)
        x = F.interpolate(x.transpose(1, 2), size=self.out_tokens, mode="linear", align_corners=False)  # (B, E, 77)
        # per-token heads: token t's Linear on the batch as columns, W1[t] @ x_t + b1[t] (weights as stored)
        x = x.permute(2, 1, 0)  # (77, E, B)
        h = torch.baddbmm(self.head_b1.unsqueeze(2), self.head_w1, x)  # (77, hid, E) @ (77, E, B) -> (77, hid, B)
        h = self.head_drop(F.gelu(h))
        y = torch.baddbmm(self.head_b2.unsqueeze(2), self.head_w2, h)  # (77, dim, hid) @ (77, hid, B) -> (77, dim, B)
        return y.permute(2, 0, 1).reshape(b, *self.out_shape)  # (B, 77, dim)
