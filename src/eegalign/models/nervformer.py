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
- attention through ``scaled_dot_product_attention``; the PE length comes from ``n_times``.
  The 51-wide moving average runs before the 25-tap convolution (they commute: same function,
  5.6x fewer multiply-adds). :func:`eegalign.models.use_cpu_kernels` swaps in CPU training
  kernels with the same state dict.
- the reference registers its ``TransformerEncoderLayer`` template as a module *and* hands it to
  ``nn.TransformerEncoder`` (which deep-copies it), so one unused layer (1,315,072 parameters,
  no compute, never any gradient) is part of its parameter count and state dict. The reference
  preset keeps that unused copy (``unused_template_layer=True``) so counts and checkpoints line
  up; the other presets drop it.
- a text ``out_shape`` (tokens, dim) maps to tokens*dim in the projector's first Linear and
  applies the residual MLP and LayerNorm per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from eegalign.errors import ConfigError
from eegalign.models.base import EncoderBase
from eegalign.models.layers import PostNormEncoderLayer, SelfAttention, SinusoidalPositionalEncoding


class ConvPool(nn.Module):
    """Conv2d with a (1, K) kernel, then AvgPool2d((1, pool_size), (1, pool_stride)).

    (B, Cin, H, T) -> (B, Cout, H, (T - K + 1 - pool_size) // pool_stride + 1). Both maps are linear
    along time and commute, so this averages first (stride 1) and convolves with the pool's stride:
    the same function with ``pool_stride`` times fewer convolution outputs (5.6x fewer multiply-adds
    for the reference, no (B, 40, 128, 416) tensor; tests/test_seed.py checks it against the
    literal order).
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, pool_size: int, pool_stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, (1, kernel_size))
        self.pool_size, self.pool_stride = pool_size, pool_stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, (1, self.pool_size), (1, 1))  # moving average: (B, Cin, H, T - pool_size + 1)
        return F.conv2d(x, self.conv.weight, self.conv.bias, stride=(1, self.pool_stride))


class Branch(nn.Module):
    """One convolutional branch -> (B, N, F) tokens, then self-attention + residual + LayerNorm.

    ``order="ts"``: temporal conv + pool, then spatial conv over all electrodes;
    ``order="st"``: spatial conv, then temporal conv + pool. Each conv is followed by BatchNorm + ELU.
    """

    def __init__(
        self, order: str, n_chans: int, n_filters: int, kernel_size: int, pool_size: int, pool_stride: int,
        dropout: float, n_heads: int,
    ) -> None:
        super().__init__()
        f = n_filters
        if order == "ts":
            self.conv_a = ConvPool(1, f, kernel_size, pool_size, pool_stride)  # (B, 1, C, T) -> (B, F, C, N)
            self.conv_b = nn.Conv2d(f, f, (n_chans, 1))  # -> (B, F, 1, N)
        else:
            self.conv_a = nn.Conv2d(1, f, (n_chans, 1))  # (B, 1, C, T) -> (B, F, 1, T)
            self.conv_b = ConvPool(f, f, kernel_size, pool_size, pool_stride)  # -> (B, F, 1, N)
        self.bn_a, self.bn_b = nn.BatchNorm2d(f), nn.BatchNorm2d(f)
        self.drop = nn.Dropout(dropout)
        self.attn = SelfAttention(f, n_heads)
        self.norm = nn.LayerNorm(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, C, T) -> (B, N, F)
        x = F.elu(self.bn_a(self.conv_a(x)))
        x = self.drop(F.elu(self.bn_b(self.conv_b(x))))  # (B, F, 1, N)
        x = x.flatten(2).transpose(1, 2)  # (B, F, 1, N) -> (B, N, F)
        return self.norm(x + self.attn(x))


class NervFormer(EncoderBase):
    """NervFormer v2 (NECOMIMI, arXiv 2410.00712): (B, n_chans, n_times) -> (B, *out_shape).

    Every hyperparameter defaults to None = "the preset's value" (``reference``: the seed's network).

    Args:
        n_chans: EEG channels C.
        n_times: samples per trial T.
        out_shape: target shape, ``(1024,)`` for CLIP image embeddings.
        preset: ``reference`` (the seed's configuration) or ``small`` (tests and CPU demos).
        d_model: token width of the temporal transformer (reference 256).
        n_heads: attention heads of the temporal transformer (reference 8).
        n_layers: layers of the temporal transformer (reference 1).
        d_hidden: feed-forward width of the temporal transformer (reference 2048).
        dropout: dropout of the temporal transformer (reference 0.1).
        n_filters: filters of every branch convolution, F (reference 40).
        kernel_size: temporal convolution length in samples (reference 25).
        pool_size: temporal average-pool window in samples (reference 51).
        pool_stride: temporal average-pool stride in samples (reference 5).
        n_branch_heads: attention heads within each branch (reference 5).
        n_cross_heads: attention heads over both branches' tokens (reference 8).
        cross_dropout: attention dropout over both branches' tokens (reference 0.75).
        conv_dropout: dropout at the end of each branch (reference 0.5).
        d_mlp: hidden width of the MLP after flattening the tokens (reference 2048).
        d_features: output width of that MLP, the projector's input (reference 1440).
        proj_dropout: dropout in the MLP and the projector's residual branch (reference 0.5).
        unused_template_layer: keep the reference's unused, frozen copy of the encoder layer, so
            parameter counts and state dicts match the seed (reference True).
    """

    name = "nervformer"
    routes = ("image",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(
            d_model=256, n_heads=8, n_layers=1, d_hidden=2048, dropout=0.1, n_filters=40, kernel_size=25,
            pool_size=51, pool_stride=5, n_branch_heads=5, n_cross_heads=8, cross_dropout=0.75, conv_dropout=0.5,
            d_mlp=2048, d_features=1440, proj_dropout=0.5, unused_template_layer=True,
        ),
        "small": dict(
            d_model=32, n_heads=2, n_layers=1, d_hidden=64, dropout=0.0, n_filters=16, kernel_size=13,
            pool_size=31, pool_stride=8, n_branch_heads=4, n_cross_heads=4, cross_dropout=0.5, conv_dropout=0.5,
            d_mlp=128, d_features=128, proj_dropout=0.5, unused_template_layer=False,
        ),
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        *,
        d_model: int | None = None,
        n_heads: int | None = None,
        n_layers: int | None = None,
        d_hidden: int | None = None,
        dropout: float | None = None,
        n_filters: int | None = None,
        kernel_size: int | None = None,
        pool_size: int | None = None,
        pool_stride: int | None = None,
        n_branch_heads: int | None = None,
        n_cross_heads: int | None = None,
        cross_dropout: float | None = None,
        conv_dropout: float | None = None,
        d_mlp: int | None = None,
        d_features: int | None = None,
        proj_dropout: float | None = None,
        unused_template_layer: bool | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper=dict(
            d_model=d_model, n_heads=n_heads, n_layers=n_layers, d_hidden=d_hidden, dropout=dropout,
            n_filters=n_filters, kernel_size=kernel_size, pool_size=pool_size, pool_stride=pool_stride,
            n_branch_heads=n_branch_heads, n_cross_heads=n_cross_heads, cross_dropout=cross_dropout,
            conv_dropout=conv_dropout, d_mlp=d_mlp, d_features=d_features, proj_dropout=proj_dropout,
            unused_template_layer=unused_template_layer,
        ))
        self._build(self.hyper)

    def _build(self, h: dict[str, Any]) -> None:
        c, t, f = self.n_chans, self.n_times, h["n_filters"]
        n_tok = (t - h["kernel_size"] + 1 - h["pool_size"]) // h["pool_stride"] + 1
        if n_tok < 1:
            raise ConfigError(
                f"nervformer: {t} samples are too few for kernel_size {h['kernel_size']} and pool_size {h['pool_size']}"
            )
        self.n_tokens = n_tok
        self.embed = nn.Linear(c, h["d_model"])
        self.pos = SinusoidalPositionalEncoding(t, h["d_model"])
        layer_args = (h["d_model"], h["n_heads"], h["d_hidden"], h["dropout"])
        if h["unused_template_layer"]:
            self.encoder_layer = PostNormEncoderLayer(*layer_args)
            self.encoder_layer.requires_grad_(False)  # never used: see the module docstring
        self.encoder = nn.Sequential(*[PostNormEncoderLayer(*layer_args) for _ in range(h["n_layers"])])
        self.unembed = nn.Linear(h["d_model"], c)
        self.time_mix = nn.Linear(t, t)
        self.inorm = nn.InstanceNorm2d(1)
        args = (c, f, h["kernel_size"], h["pool_size"], h["pool_stride"], h["conv_dropout"], h["n_branch_heads"])
        self.branch_ts = Branch("ts", *args)
        self.branch_st = Branch("st", *args)
        self.cross_attn = SelfAttention(f, h["n_cross_heads"], h["cross_dropout"])
        self.cross_norm = nn.LayerNorm(f)
        self.mlp = nn.Sequential(
            nn.Linear(2 * n_tok * f, h["d_mlp"]), nn.ReLU(), nn.Dropout(h["proj_dropout"]), nn.Linear(h["d_mlp"], h["d_features"])
        )
        tokens, dim = (1, *self.out_shape) if len(self.out_shape) == 1 else self.out_shape
        self.proj_in = nn.Linear(h["d_features"], tokens * dim)
        self.proj_res = nn.Sequential(nn.GELU(), nn.Linear(dim, dim), nn.Dropout(h["proj_dropout"]))
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
