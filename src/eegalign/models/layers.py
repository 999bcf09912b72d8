"""Blocks shared by several encoders.

The attention layers here keep the parameter names of :class:`torch.nn.MultiheadAttention`
(``in_proj_weight``, ``in_proj_bias``, ``out_proj``) and :class:`torch.nn.TransformerEncoderLayer`
(``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``), so state dicts move across
unchanged, but they call :func:`torch.nn.functional.scaled_dot_product_attention` and never
compute or average the attention weights that the reference threw away.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine positional encoding of "Attention is all you need": (length, dim)."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (ceil(dim/2),)
    pe = torch.zeros(length, dim)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return pe


class _DropoutFn(torch.autograd.Function):
    """Inverted dropout with a boolean keep mask drawn from ``uniform_`` (cheaper than ``bernoulli_`` on CPU)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        keep = torch.empty_like(x).uniform_().ge_(p)  # P(keep) = 1 - p
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return torch.mul(x, keep).mul_(ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same distribution: each element kept with probability 1 - p and scaled by 1 / (1 - p)).

    The keep mask comes from a uniform draw compared with ``p`` and is stored as bool: forward +
    backward cost about half of ``F.dropout``'s on CPU. Identity in eval mode or with p = 0.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p >= 1.0:
            return x * 0.0
        return _DropoutFn.apply(x, self.p)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds a fixed sinusoidal encoding to (B, L, E) tokens; ``length`` comes from the input shapes."""

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_encoding(length, dim), persistent=False)  # (L, E)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]  # (B, L, E) + (L, E)


class SelfAttention(nn.Module):
    """Multi-head self-attention on (B, L, E), same parameters and function as ``nn.MultiheadAttention``.

    ``dropout`` is applied to the attention probabilities (as in ``nn.MultiheadAttention``) and only
    in training mode.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        nn.init.xavier_uniform_(self.in_proj_weight)  # as nn.MultiheadAttention._reset_parameters
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, length, e = x.shape
        h = self.num_heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3E)
        q, k, v = qkv.view(b, length, 3, h, e // h).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, L, E/H)
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        o = o.transpose(1, 2).reshape(b, length, e)  # (B, H, L, E/H) -> (B, L, E)
        return self.out_proj(o)


class PostNormEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer(d_model, nhead, dim_ff, dropout, activation="relu", batch_first=True)``.

    Same parameters (names and shapes), same function, same dropout sites (attention
    probabilities, after attention, inside and after the feed-forward); attention via SDPA; the other dropouts use the cheaper :class:`Dropout`.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = SelfAttention(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        x = self.norm1(x + self.dropout1(self.self_attn(x)))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class PreNormBlock(nn.Module):
    """Pre-norm transformer block: ``x + MHA(LN(x))`` then ``x + MLP(LN(x))``, MLP = E -> 4E -> E with GELU."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.3, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim),
            nn.GELU(),
            Dropout(dropout),
            nn.Linear(mlp_ratio * dim, dim),
            Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
