"""Straightforward ("naive") implementations of the three reference networks, for benchmarking.

Written the way the reference system writes them: ``nn.MultiheadAttention`` called with its
default ``need_weights=True``, ``nn.TransformerEncoder``, the literal convolution order, and a
Python loop over the 77 per-token heads. They exist to (1) measure eegalign's implementations
against them in the same run and (2) check that eegalign's versions compute the same function:
:func:`naive_from` builds the naive twin of an eegalign encoder and copies its weights across.

Not part of the package: nothing here is imported by eegalign.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from eegalign.models import EEGFormer, EEGNetTransformer, NervFormer
from eegalign.models.layers import sinusoidal_encoding


class _NaivePreNormBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        a, _ = self.attn(h, h, h)  # need_weights=True (default): weights computed and dropped
        x = x + a
        return x + self.mlp(self.norm2(x))


class _NaiveMixed(nn.Module):
    def __init__(self, tokens_shape, dim, heads, blocks, dropout) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.zeros(dim, dim))
        self.embedding = nn.Parameter(torch.zeros(*tokens_shape, dim))
        self.blocks = nn.Sequential(*[_NaivePreNormBlock(dim, heads, dropout) for _ in range(blocks)])


class NaiveEEGFormer(nn.Module):
    def __init__(self, ref: EEGFormer) -> None:
        super().__init__()
        h, s, c = ref.hyper, ref.n_chans, ref.n_filters
        k, d, m = h["kernel_size"], ref.seq_len, ref.n_segments
        self.s, self.c, self.d, self.m, self.out_shape = s, c, d, m, ref.out_shape
        self.downsample = h["downsample"]
        self.conv1 = nn.Conv1d(s, s, k, groups=s)
        self.conv2 = nn.Conv1d(s, s, k, groups=s)
        self.conv3 = nn.Conv1d(s, s * c, k, groups=s)
        self.regional = _NaiveMixed((s, c), d, h["num_heads"], h["num_blocks"], h["dropout"])
        self.synchronous = _NaiveMixed((c, s), d, h["num_heads"], h["num_blocks"], h["dropout"])
        self.temporal = _NaiveMixed((1, m), c * s, h["temporal_heads"], h["num_blocks"], h["dropout"])
        self.pool_score = nn.Sequential(nn.Linear(m, 8), nn.Tanh(), nn.Linear(8, 1))
        hidden = m * h["head_mult"]
        self.head = nn.Sequential(
            nn.Linear(m, hidden), nn.GELU(), nn.Dropout(h["head_dropout"]), nn.Linear(hidden, math.prod(ref.out_shape))
        )
        self.norm = nn.LayerNorm(ref.out_shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, c, d, m = x.shape[0], self.s, self.c, self.d, self.m
        if self.downsample > 1:
            x = F.avg_pool1d(x, self.downsample)
        x = F.relu(self.conv3(F.relu(self.conv2(F.relu(self.conv1(x))))))[..., :d]
        x = x.reshape(b, s, c, d)
        # regional: attention over filters
        x = torch.einsum("bscd,de->bsce", x, self.regional.mix) + self.regional.embedding
        x = self.regional.blocks(x.reshape(b * s, c, d)).reshape(b, s, c, d)
        # synchronous: attention over electrodes
        x = x.permute(0, 2, 1, 3).contiguous()  # (B, C, S, D)
        x = torch.einsum("bcsd,de->bcse", x, self.synchronous.mix) + self.synchronous.embedding
        x = self.synchronous.blocks(x.reshape(b * c, s, d)).reshape(b, c, s, d)
        # temporal: attention over segments
        x = x.reshape(b, c * s, m, d // m).mean(-1).permute(0, 2, 1).contiguous()  # (B, M, L)
        x = x @ self.temporal.mix + self.temporal.embedding[0]
        x = self.temporal.blocks(x)  # (B, M, L)
        x = x.permute(0, 2, 1)  # (B, L, M)
        w = torch.softmax(self.pool_score(x), dim=1)
        x = torch.sum(w * x, dim=1)
        return self.norm(self.head(x).reshape(b, *self.out_shape))


class _NaiveBranch(nn.Module):
    def __init__(self, order, n_chans, f, k, pool, stride, drop, heads) -> None:
        super().__init__()
        self.order, self.pool, self.stride = order, pool, stride
        if order == "ts":
            self.conv_a = nn.Module()
            self.conv_a.conv = nn.Conv2d(1, f, (1, k))
            self.conv_b = nn.Conv2d(f, f, (n_chans, 1))
        else:
            self.conv_a = nn.Conv2d(1, f, (n_chans, 1))
            self.conv_b = nn.Module()
            self.conv_b.conv = nn.Conv2d(f, f, (1, k))
        self.bn_a, self.bn_b = nn.BatchNorm2d(f), nn.BatchNorm2d(f)
        self.avg = nn.AvgPool2d((1, pool), (1, stride))
        self.drop = nn.Dropout(drop)
        self.attn = nn.MultiheadAttention(f, heads, batch_first=True)
        self.norm = nn.LayerNorm(f)

    def forward(self, x):
        if self.order == "ts":
            x = F.elu(self.bn_a(self.avg(self.conv_a.conv(x))))
            x = self.drop(F.elu(self.bn_b(self.conv_b(x))))
        else:
            x = F.elu(self.bn_a(self.conv_a(x)))
            x = self.drop(F.elu(self.bn_b(self.avg(self.conv_b.conv(x)))))
        x = x.squeeze(2).permute(0, 2, 1)  # (B, N, F)
        a, _ = self.attn(x, x, x)
        return self.norm(x + a)


class NaiveNervFormer(nn.Module):
    def __init__(self, ref: NervFormer) -> None:
        super().__init__()
        h, c, t, f = ref.hyper, ref.n_chans, ref.n_times, ref.hyper["filters"]
        self.out_shape = ref.out_shape
        self.embed = nn.Linear(c, h["d_model"])
        self.register_buffer("pe", sinusoidal_encoding(t, h["d_model"]), persistent=False)
        layer = lambda: nn.TransformerEncoderLayer(  # noqa: E731
            h["d_model"], h["nhead"], h["dim_feedforward"], h["dropout"], batch_first=True
        )
        if h["unused_template_layer"]:
            self.encoder_layer = layer()
        self.encoder = nn.Sequential(*[layer() for _ in range(h["num_layers"])])
        self.unembed = nn.Linear(h["d_model"], c)
        self.time_mix = nn.Linear(t, t)
        self.inorm = nn.InstanceNorm2d(1)
        args = (c, f, h["kernel"], h["pool"], h["pool_stride"], h["conv_dropout"], h["branch_heads"])
        self.branch_ts = _NaiveBranch("ts", *args)
        self.branch_st = _NaiveBranch("st", *args)
        self.cross_attn = nn.MultiheadAttention(f, h["cross_heads"], dropout=h["cross_dropout"], batch_first=True)
        self.cross_norm = nn.LayerNorm(f)
        self.mlp = nn.Sequential(
            nn.Linear(2 * ref.n_tokens * f, h["hidden"]), nn.ReLU(), nn.Dropout(h["proj_dropout"]),
            nn.Linear(h["hidden"], h["feat_dim"]),
        )
        tokens, dim = (1, *ref.out_shape) if len(ref.out_shape) == 1 else ref.out_shape
        self.proj_in = nn.Linear(h["feat_dim"], tokens * dim)
        self.proj_res = nn.Sequential(nn.GELU(), nn.Linear(dim, dim), nn.Dropout(h["proj_dropout"]))
        self.proj_norm = nn.LayerNorm(dim)

    def forward(self, x):
        b = x.shape[0]
        z = self.embed(x.permute(0, 2, 1)) + self.pe[: x.shape[2]]
        z = self.unembed(self.encoder(z)).permute(0, 2, 1)
        x = self.inorm(self.time_mix(z).unsqueeze(1))
        tok = torch.cat([self.branch_ts(x), self.branch_st(x)], dim=1)
        a, _ = self.cross_attn(tok, tok, tok)
        tok = self.cross_norm(tok + a)
        y = self.proj_in(self.mlp(tok.reshape(b, -1))).reshape(b, -1, self.out_shape[-1])
        y = self.proj_norm(y + self.proj_res(y))
        return y.reshape(b, *self.out_shape)


class NaiveEEGNetTransformer(nn.Module):
    def __init__(self, ref: EEGNetTransformer) -> None:
        super().__init__()
        h = ref.hyper
        f1, fd, f2, e, k = h["F1"], h["F1"] * h["D"], h["F2"], h["transformer_dim"], h["kern_length"]
        self.out_shape, self.out_tokens = ref.out_shape, ref.out_tokens
        self.front = nn.Module()
        self.front.conv_t = nn.Conv2d(1, f1, (1, k), padding=(0, k // 2), bias=False)
        self.front.bn1 = nn.BatchNorm2d(f1)
        self.front.conv_s = nn.Conv2d(f1, fd, (ref.n_chans, 1), groups=f1, bias=False)
        self.bn2 = nn.BatchNorm2d(fd)
        self.pool1 = nn.AvgPool2d((1, h["pool1"]))
        self.drop1 = nn.Dropout(h["dropout"])
        self.sep_dw = nn.Conv2d(
            fd, fd, (1, h["sep_kernel"]), padding=(0, h["sep_kernel"] // 2), stride=(1, h["sep_stride"]), groups=fd, bias=False
        )
        self.sep_pw = nn.Conv2d(fd, f2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(f2)
        self.pool2 = nn.AvgPool2d((1, h["pool2"]))
        self.drop2 = nn.Dropout(h["dropout"])
        self.proj = nn.Linear(f2, e)
        self.register_buffer("pe", sinusoidal_encoding(ref.n_tokens, e), persistent=False)
        layer = nn.TransformerEncoderLayer(e, h["n_heads"], h["dim_feedforward"], h["dropout"], batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, h["n_layers"], enable_nested_tensor=False)
        dim = ref.out_shape[-1]
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(e, h["head_hidden"]), nn.GELU(), nn.Dropout(h["dropout"]), nn.Linear(h["head_hidden"], dim))
            for _ in range(ref.out_tokens)
        )

    def forward(self, x):
        b = x.shape[0]
        x = self.front.conv_s(self.front.bn1(self.front.conv_t(x.unsqueeze(1))))
        x = self.drop1(self.pool1(F.elu(self.bn2(x))))
        x = self.drop2(self.pool2(F.elu(self.bn3(self.sep_pw(self.sep_dw(x))))))
        x = self.proj(x.squeeze(2).permute(0, 2, 1)) + self.pe
        x = self.encoder(x)
        x = F.interpolate(x.permute(0, 2, 1), size=self.out_tokens, mode="linear", align_corners=False).permute(0, 2, 1)
        out = [head(x[:, i, :]) for i, head in enumerate(self.heads)]  # 77 small matmul pairs
        return torch.stack(out, dim=1).reshape(b, *self.out_shape)


def convert_state(ours: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and unstack) an eegalign encoder's state dict (or any name -> tensor dict) for its naive twin."""
    sd = dict(state)
    if isinstance(ours, EEGNetTransformer):
        for j, (w, b) in ((0, ("head_w1", "head_b1")), (3, ("head_w2", "head_b2"))):
            groups = sorted((k for k in sd if k.startswith(w + ".")), key=lambda k: int(k.rsplit(".", 1)[1]))
            if groups:  # stacked by groups of tokens -> one Linear per token
                weights = torch.cat([sd.pop(k) for k in groups])
                biases = torch.cat([sd.pop(k.replace(w, b, 1)) for k in groups])
                for i in range(ours.out_tokens):
                    sd[f"heads.{i}.{j}.weight"], sd[f"heads.{i}.{j}.bias"] = weights[i], biases[i]
        sd = {(f"encoder.layers.{k[len('encoder.'):]}" if k.startswith("encoder.") else k): v for k, v in sd.items()}
    return sd


def naive_from(ours: nn.Module) -> nn.Module:
    """The naive twin of an eegalign reference-family encoder, holding the same weights."""
    cls = {EEGFormer: NaiveEEGFormer, NervFormer: NaiveNervFormer, EEGNetTransformer: NaiveEEGNetTransformer}[type(ours)]
    naive = cls(ours)
    naive.load_state_dict(convert_state(ours, ours.state_dict()), strict=True)
    return naive.train(ours.training)
