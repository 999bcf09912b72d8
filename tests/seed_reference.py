"""Test-side versions of the seed's three networks, written from shared/spec/architectures.md with the
seed's module names (so their ``state_dict()`` has the keys of shared/spec/seed-state-dicts.md).

Written the straightforward way the seed writes them (``nn.MultiheadAttention`` with its default
``need_weights=True``, ``nn.TransformerEncoder``, a Python loop over the per-token heads). Used
by tests/test_seed.py (conversion) and benchmarks/models.py (the "straightforward implementation"
of the speed-up table). Not part of the package.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoid(length: int, dim: int) -> torch.Tensor:
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


# ------------------------------------------------------------------------------------------ NervFormerV2


class _PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoid(max_len, d_model))  # (5000, d_model), persistent as in the seed

    def forward(self, x):  # (B, T, E)
        return x + self.pe[: x.shape[1]]


class _AttentionModel(nn.Module):
    def __init__(self, c: int, d_model: int, nhead: int, num_layers: int, dim_ff: int) -> None:
        super().__init__()
        self.input_projection = nn.Linear(c, d_model)
        self.pos_encoder = _PositionalEncoding(d_model)
        self.encoder_layer = nn.TransformerEncoderLayer(d_model, nhead, dim_ff, 0.1, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(self.encoder_layer, num_layers, enable_nested_tensor=False)
        self.output_projection = nn.Linear(d_model, c)

    def forward(self, x):  # (B, C, T) -> (B, C, T)
        z = self.pos_encoder(self.input_projection(x.permute(0, 2, 1)))
        return self.output_projection(self.transformer_encoder(z)).permute(0, 2, 1)


class _ResidualAdd(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


class _EncEEG(nn.Module):
    def __init__(self, c: int, t: int, f: int = 40, k: int = 25, hidden: int = 2048, feat: int = 1440) -> None:
        super().__init__()
        self.tsconv = nn.Sequential(
            nn.Conv2d(1, f, (1, k)), nn.AvgPool2d((1, 51), (1, 5)), nn.BatchNorm2d(f), nn.ELU(),
            nn.Conv2d(f, f, (c, 1)), nn.BatchNorm2d(f), nn.ELU(), nn.Dropout(0.5),
        )
        self.stconv = nn.Sequential(
            nn.Conv2d(1, f, (c, 1)), nn.BatchNorm2d(f), nn.ELU(), nn.Conv2d(f, f, (1, k)),
            nn.AvgPool2d((1, 51), (1, 5)), nn.BatchNorm2d(f), nn.ELU(), nn.Dropout(0.5),
        )
        n = (t - k + 1 - 51) // 5 + 1
        self.self_attn_ts = nn.MultiheadAttention(f, 5, batch_first=True)
        self.self_attn_st = nn.MultiheadAttention(f, 5, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(f, 8, dropout=0.75, batch_first=True)
        self.feed_forward = nn.Sequential(nn.Flatten(), nn.Linear(2 * n * f, hidden), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden, feat))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(f), nn.LayerNorm(f), nn.LayerNorm(f)

    def forward(self, x):  # (B, 1, C, T) -> (B, feat)
        ts = self.tsconv(x).squeeze(2).permute(0, 2, 1)  # (B, N, F)
        st = self.stconv(x).squeeze(2).permute(0, 2, 1)
        ts = self.norm1(ts + self.self_attn_ts(ts, ts, ts)[0])
        st = self.norm2(st + self.self_attn_st(st, st, st)[0])
        tok = torch.cat([ts, st], dim=1)
        tok = self.norm3(tok + self.cross_attn(tok, tok, tok)[0])
        return self.feed_forward(tok)


class NervFormerV2(nn.Module):
    def __init__(self, num_channels=128, sequence_length=440, nhead=8, d_model=256, num_layers=1, dim_ff=2048,
                 filters=40, hidden=2048, feat=1440, out_dim=1024) -> None:
        super().__init__()
        self.attention_model = _AttentionModel(num_channels, d_model, nhead, num_layers, dim_ff)
        self.linear = nn.Linear(sequence_length, sequence_length)
        self.inorm = nn.InstanceNorm2d(1)
        self.enc_eeg = _EncEEG(num_channels, sequence_length, filters, 25, hidden, feat)
        self.proj_eeg = nn.Sequential(
            nn.Linear(feat, out_dim),
            _ResidualAdd(nn.Sequential(nn.GELU(), nn.Linear(out_dim, out_dim), nn.Dropout(0.5))),
            nn.LayerNorm(out_dim),
        )

    def forward(self, x):  # (B, C, T) -> (B, out_dim)
        x = self.linear(self.attention_model(x))
        x = self.inorm(x.unsqueeze(1))
        return self.proj_eeg(self.enc_eeg(x))


# ------------------------------------------------------------------------------------------ EEGNetTransformerToText


class _PE(nn.Module):
    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoid(max_len, d_model).unsqueeze(1))  # (L, 1, E)

    def forward(self, x):  # (B, N, E)
        return x + self.pe[: x.shape[1]].transpose(0, 1)


class EEGNetTransformerToText(nn.Module):
    def __init__(self, chans=128, samples=440, transformer_dim=512, F1=48, D=3, F2=96, pool_fact_1=2, pool_fact_2=4,
                 kern_length=31, n_heads=8, n_layers=4, tokens=77, token_dim=768, head_hidden=512) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, F1, (1, kern_length), padding=(0, kern_length // 2), bias=False)
        self.bn1 = nn.BatchNorm2d(F1)
        self.depthwise_conv = nn.Conv2d(F1, F1 * D, (chans, 1), groups=F1, bias=False)
        self.bn2 = nn.BatchNorm2d(F1 * D)
        self.pool1 = nn.AvgPool2d((1, pool_fact_1))
        self.drop = nn.Dropout(0.3)
        self.separable_conv1 = nn.Conv2d(F1 * D, F1 * D, (1, 16), padding=(0, 8), stride=(1, 2), groups=F1 * D, bias=False)
        self.separable_conv2 = nn.Conv2d(F1 * D, F2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(F2)
        self.pool2 = nn.AvgPool2d((1, pool_fact_2))
        self.feature_projection = nn.Linear(F2, transformer_dim)
        self.pos_encoding = _PE(transformer_dim, samples // (pool_fact_1 * pool_fact_2))  # 55: the seed's length
        layer = nn.TransformerEncoderLayer(transformer_dim, n_heads, 2048, 0.3, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.tokens = tokens
        self.token_projection = nn.ModuleList(
            nn.Sequential(nn.Linear(transformer_dim, head_hidden), nn.GELU(), nn.Dropout(0.3), nn.Linear(head_hidden, token_dim))
            for _ in range(tokens)
        )

    def forward(self, x):  # (B, C, T) -> (B, 77, 768)
        x = self.depthwise_conv(self.bn1(self.conv1(x.unsqueeze(1))))
        x = self.drop(self.pool1(F.elu(self.bn2(x))))
        x = self.drop(self.pool2(F.elu(self.bn3(self.separable_conv2(self.separable_conv1(x))))))
        x = self.pos_encoding(self.feature_projection(x.squeeze(2).permute(0, 2, 1)))
        x = self.transformer(x)
        x = F.interpolate(x.permute(0, 2, 1), size=self.tokens, mode="linear", align_corners=False).permute(0, 2, 1)
        return torch.stack([head(x[:, i]) for i, head in enumerate(self.token_projection)], dim=1)


# ------------------------------------------------------------------------------------------ EEGEncoder (EEGformer)


class _MLP(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.FC_1, self.FC_2, self.drop = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim), nn.Dropout(0.3)

    def forward(self, x):
        return self.drop(self.FC_2(self.drop(F.gelu(self.FC_1(x)))))


class _TFB(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.LN_D, self.LN_z = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.MLP = _MLP(dim)
        self.MHA = nn.MultiheadAttention(dim, heads, dropout=0.3, batch_first=True)

    def forward(self, x):
        h = self.LN_D(x)
        x = x + self.MHA(h, h, h)[0]
        return x + self.MLP(self.LN_z(x))


class _Module(nn.Module):
    def __init__(self, e_shape, dim, heads, blocks) -> None:
        super().__init__()
        self.M = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))
        self.e = nn.Parameter(torch.randn(*e_shape, dim) * 0.02)
        self.TFB = nn.ModuleList(_TFB(dim, heads) for _ in range(blocks))

    def forward(self, x):  # (B, *e_shape[:-0], D) -> tokens over the second-to-last axis
        lead = x.shape[:-2]
        x = (x @ self.M + self.e).reshape(-1, *x.shape[-2:])
        for block in self.TFB:
            x = block(x)
        return x.reshape(*lead, *x.shape[-2:])


class _CNN(nn.Module):
    def __init__(self, s, c, k) -> None:
        super().__init__()
        self.CV_1 = nn.Conv1d(s, s, k, groups=s)
        self.CV_2 = nn.Conv1d(s, s, k, groups=s)
        self.CV_3 = nn.Conv1d(s, s * c, k, groups=s)

    def forward(self, x):
        return F.relu(self.CV_3(F.relu(self.CV_2(F.relu(self.CV_1(x))))))


class _Pooling(nn.Module):
    def __init__(self, m) -> None:
        super().__init__()
        self.pooling = nn.Sequential(nn.Linear(m, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x):  # (B, L, M) -> (B, M)
        return (torch.softmax(self.pooling(x), dim=1) * x).sum(1)


class EEGEncoder(nn.Module):
    def __init__(self, input_shape=(4, 128, 440), hidden_dim=35, depth_dim=20, kernel_size=31, num_heads=2,
                 num_blocks=1, out_dim=1024, head_mult=37) -> None:
        super().__init__()
        s, t = input_shape[1], input_shape[2]
        c, k, m = depth_dim, kernel_size, hidden_dim
        self.s, self.c, self.m, self.d = s, c, m, t - 3 * (k - 1)
        self.CNN = _CNN(s, c, k)
        self.RTM = _Module((s, c), self.d, num_heads, num_blocks)
        self.STM = _Module((c, s), self.d, num_heads, num_blocks)
        self.TTM = _Module((m,), s * c, num_heads, num_blocks)
        self.pooling = _Pooling(m)
        self.final = nn.Sequential(nn.Linear(m, m * head_mult), nn.GELU(), nn.Dropout(0.1), nn.Linear(m * head_mult, out_dim),
                                   nn.LayerNorm(out_dim))

    def forward(self, x):  # (B, S, T) -> (B, out_dim)
        b, s, c, d, m = x.shape[0], self.s, self.c, self.d, self.m
        x = self.CNN(x).reshape(b, s, c, d)
        x = self.RTM(x)  # attention over filters
        x = self.STM(x.permute(0, 2, 1, 3))  # (B, C, S, D), attention over electrodes
        x = x.reshape(b, c * s, m, d // m).mean(-1).permute(0, 2, 1)  # (B, M, L)
        x = self.TTM(x)  # (B, M, L), attention over segments
        return self.final(self.pooling(x.permute(0, 2, 1)))
