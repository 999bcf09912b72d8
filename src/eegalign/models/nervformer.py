"""NervFormer v2: temporal transformer + two convolutional branches + cross-attention.

Paper: C.-S. Chen, C.-S. Wei, "NECOMIMI: Neural-Cognitive Multimodal EEG-informed Image
Generation with Diffusion Models", arXiv:2410.00712, 2024 (the NervFormer encoder), as adapted
by the reference system to regress a 1024-d CLIP image embedding.

Shapes (reference preset, x: (B, C=128, T=440)):

1. temporal encoder: (B, T, C) -> Linear(C, 256) -> + sinusoidal PE -> post-norm
   TransformerEncoderLayer(256, 8 heads, ff 2048, dropout 0.1, ReLU) -> Linear(256, C) -> (B, C, T)
2. Linear(T, T) on the time axis -> (B, 1, C, T) -> InstanceNorm2d(1) (no affine)
3. branch "ts": Conv2d(1, 40, (1, 25)) -> AvgPool((1, 51), (1, 5)) -> BN -> ELU -> Conv2d(40, 40, (C, 1))
   -> BN -> ELU -> Dropout 0.5 -> (B, 40, 1, 74)
   branch "st": Conv2d(1, 40, (C, 1)) -> BN -> ELU -> Conv2d(40, 40, (1, 25)) -> AvgPool((1, 51), (1, 5))
   -> BN -> ELU -> Dropout 0.5 -> (B, 40, 1, 74)
4. each branch: 74 tokens of 40 -> x + MHA(x) (5 heads) -> LayerNorm
5. concat -> (B, 148, 40) -> x + MHA(x) (8 heads, attention dropout 0.75) -> LayerNorm -> (B, 5920)
6. Linear(5920, 2048) -> ReLU -> Dropout 0.5 -> Linear(2048, 1440)
7. projector: Linear(1440, D) -> y + Dropout(Linear(GELU(y))) -> LayerNorm(D) -> (B, *out_shape)

Reference preset: 20,765,424 parameters on 128 x 440.

Where this differs from the reference on purpose (same function throughout):
- Conv(1 x 25) followed by AvgPool(1 x 51, stride 5) is computed as the 51-wide moving average
  first and then the convolution with stride 5 (both are linear and commute), which needs
  ~5.6x fewer multiply-adds and never builds the (B, 40, C, 416) tensor. ``fast_conv=False``
  runs the literal order.
- attention through ``scaled_dot_product_attention`` (training on the CPU: attention with dropout
  and the encoder's feed-forward through the cache-blocked kernels of :mod:`eegalign.models.layers`,
  same function and dropout distribution); the PE length comes from ``n_times``; the
  (C x 1) spatial convolutions run as one matmul each.
- the reference registers its ``TransformerEncoderLayer`` template as a module *and* hands it to
  ``nn.TransformerEncoder`` (which deep-copies it), so one unused layer (1,315,072 parameters,
  no compute, never any gradient) is part of its parameter count and state dict. The reference
  preset keeps that unused copy (``unused_template_layer=True``) so counts and checkpoints line
  up; the other presets drop it.
- a text ``out_shape`` (tokens, dim) maps to tokens*dim in the projector's first Linear and
  applies the residual MLP and LayerNorm per token.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from eegalign.errors import ConfigError
from eegalign.models.base import EncoderBase
from eegalign.models.layers import Dropout, PostNormEncoderLayer, SelfAttention, SinusoidalPositionalEncoding


class _ConvPool(nn.Module):
    """Conv2d with a (1, k) kernel followed by AvgPool2d((1, pool), (1, stride)), same parameters as the Conv2d.

    ``fast``: moving-average the input first (stride 1) and convolve with the pooling stride: the
    same linear map, with ``pool``-times fewer convolution outputs.
    """

    def __init__(self, cin: int, cout: int, k: int, pool: int, stride: int, fast: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, (1, k))
        self.pool, self.stride, self.fast = pool, stride, fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, T) -> (B, Cout, H, (T-k-pool+1)//stride+1)
        if not self.fast:
            return F.avg_pool2d(self.conv(x), (1, self.pool), (1, self.stride))
        x = F.avg_pool2d(x, (1, self.pool), (1, 1))  # (B, Cin, H, T-pool+1)
        return F.conv2d(x, self.conv.weight, self.conv.bias, stride=(1, self.stride))


class _SpatialConv(nn.Conv2d):
    """Conv2d(cin, cout, (C, 1)) over all electrodes, computed as one matmul (same parameters and function)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, C, T) -> (B, Cout, 1, T)
        b, cin, c, t = x.shape
        y = torch.matmul(self.weight.view(self.out_channels, cin * c), x.reshape(b, cin * c, t))  # (B, Cout, T)
        return (y + self.bias.unsqueeze(1)).unsqueeze(2)


class _Branch(nn.Module):
    """One convolutional branch -> (B, F, 1, N) tokens, then self-attention + residual + LayerNorm."""

    def __init__(self, order: str, n_chans: int, f: int, k: int, pool: int, stride: int, drop: float, heads: int, fast: bool):
        super().__init__()
        self.order = order
        if order == "ts":  # temporal conv (+pool) then spatial conv
            self.conv_a, self.conv_b = _ConvPool(1, f, k, pool, stride, fast), _SpatialConv(f, f, (n_chans, 1))
        else:  # spatial conv then temporal conv (+pool)
            self.conv_a, self.conv_b = _SpatialConv(1, f, (n_chans, 1)), _ConvPool(f, f, k, pool, stride, fast)
        self.bn_a, self.bn_b = nn.BatchNorm2d(f), nn.BatchNorm2d(f)
        self.drop = Dropout(drop)
        self.attn = SelfAttention(f, heads)
        self.norm = nn.LayerNorm(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, C, T) -> (B, N, F)
        x = F.elu(self.bn_a(self.conv_a(x)))
        x = self.drop(F.elu(self.bn_b(self.conv_b(x))))  # (B, F, 1, N)
        x = x.flatten(2).transpose(1, 2)  # (B, F, 1, N) -> (B, N, F)
        return self.norm(x + self.attn(x))


class NervFormer(EncoderBase):
    """NervFormer v2 (NECOMIMI, arXiv 2410.00712): (B, n_chans, n_times) -> (B, *out_shape)."""

    name = "nervformer"
    routes = ("image",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(
            d_model=256, nhead=8, num_layers=1, dim_feedforward=2048, dropout=0.1, filters=40, kernel=25,
            pool=51, pool_stride=5, branch_heads=5, cross_heads=8, cross_dropout=0.75, conv_dropout=0.5,
            hidden=2048, feat_dim=1440, proj_dropout=0.5, fast_conv=True, unused_template_layer=True,
        ),
        "small": dict(
            d_model=32, nhead=2, num_layers=1, dim_feedforward=64, dropout=0.0, filters=16, kernel=13,
            pool=31, pool_stride=8, branch_heads=4, cross_heads=4, cross_dropout=0.5, conv_dropout=0.5,
            hidden=128, feat_dim=128, proj_dropout=0.5, fast_conv=True, unused_template_layer=False,
        ),
    }

    def __init__(self, n_chans: int = 128, n_times: int = 440, out_shape=(1024,), preset: str | None = None, **hyper: Any):
        super().__init__(n_chans, n_times, out_shape, preset, **hyper)
        h = self.hyper
        c, t, f = self.n_chans, self.n_times, h["filters"]
        n_tok = (t - h["kernel"] + 1 - h["pool"]) // h["pool_stride"] + 1
        if n_tok < 1:
            raise ConfigError(f"nervformer: {t} samples are too few for kernel {h['kernel']} and pool {h['pool']}")
        self.n_tokens = n_tok
        self.embed = nn.Linear(c, h["d_model"])
        self.pos = SinusoidalPositionalEncoding(t, h["d_model"])
        if h["unused_template_layer"]:
            self.encoder_layer = PostNormEncoderLayer(h["d_model"], h["nhead"], h["dim_feedforward"], h["dropout"])
            self.encoder_layer.requires_grad_(False)  # never used: see the module docstring
        self.encoder = nn.Sequential(
            *[PostNormEncoderLayer(h["d_model"], h["nhead"], h["dim_feedforward"], h["dropout"]) for _ in range(h["num_layers"])]
        )
        self.unembed = nn.Linear(h["d_model"], c)
        self.time_mix = nn.Linear(t, t)
        self.inorm = nn.InstanceNorm2d(1)
        args = (c, f, h["kernel"], h["pool"], h["pool_stride"], h["conv_dropout"], h["branch_heads"], h["fast_conv"])
        self.branch_ts = _Branch("ts", *args)
        self.branch_st = _Branch("st", *args)
        self.cross_attn = SelfAttention(f, h["cross_heads"], h["cross_dropout"])
        self.cross_norm = nn.LayerNorm(f)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_tok * f, h["hidden"]), nn.ReLU(), Dropout(h["proj_dropout"]), nn.Linear(h["hidden"], h["feat_dim"])
        )
        tokens, dim = (1, *self.out_shape) if len(self.out_shape) == 1 else self.out_shape
        self.proj_in = nn.Linear(h["feat_dim"], tokens * dim)
        self.proj_res = nn.Sequential(nn.GELU(), nn.Linear(dim, dim), Dropout(h["proj_dropout"]))
        self.proj_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        z = self.pos(self.embed(x.transpose(1, 2)))  # (B, C, T) -> (B, T, d_model)
        z = self.unembed(self.encoder(z))  # (B, T, C)
        x = self.time_mix(z.transpose(1, 2))  # (B, C, T), Linear over time
        x = self.inorm(x.unsqueeze(1))  # (B, 1, C, T)
        tok = torch.cat([self.branch_ts(x), self.branch_st(x)], dim=1)  # (B, 2N, F)
        tok = self.cross_norm(tok + self.cross_attn(tok))
        y = self.proj_in(self.mlp(tok.flatten(1)))  # (B, 2N*F) -> (B, tokens*dim)
        y = y.view(b, -1, self.out_shape[-1])  # (B, tokens, dim)
        y = self.proj_norm(y + self.proj_res(y))
        return y.view(b, *self.out_shape)
