"""Transformer blocks shared by the reference encoders, written as plain PyTorch.

Attention keeps the parameter names of :class:`torch.nn.MultiheadAttention` (``in_proj_weight``,
``in_proj_bias``, ``out_proj``) and the post-norm layer those of
:class:`torch.nn.TransformerEncoderLayer` (``self_attn``, ``linear1``, ``linear2``, ``norm1``,
``norm2``), so state dicts move across unchanged. Attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention`: the attention weights, which the
reference computed and threw away, are never materialised on devices with a fused kernel.

This is the definition every test checks against and what runs on GPUs. Optional CPU training
kernels with the same parameters live in :mod:`eegalign.models.cpu_kernels`.
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


class SinusoidalPositionalEncoding(nn.Module):
    """Adds a fixed sinusoidal encoding to (B, L, E) tokens (a non-persistent buffer: not in the state dict)."""

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_encoding(length, dim), persistent=False)  # (L, E)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]  # (B, L, E) + (L, E)


class SelfAttention(nn.Module):
    """Multi-head self-attention on (B, L, E): the parameters and function of ``nn.MultiheadAttention``.

    Args:
        d_model: token width E.
        n_heads: attention heads (E must be divisible by it).
        dropout: dropout on the attention probabilities, in training mode only.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model, self.n_heads, self.dropout = d_model, n_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))  # q, k, v stacked
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)  # as nn.MultiheadAttention._reset_parameters
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        b, length, e = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3E)
        q, k, v = qkv.view(b, length, 3, self.n_heads, e // self.n_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, H, L, E/H)
        p = self.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, L, E/H)
        o = o.transpose(1, 2).reshape(b, length, e)  # heads concatenated: (B, L, E)
        return self.out_proj(o)


class PostNormEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer(d_model, n_heads, d_hidden, dropout, activation="relu", batch_first=True)``.

    Same parameters (names and shapes), same function, same dropout sites (attention
    probabilities, after attention, inside and after the feed-forward):
    ``x = norm1(x + drop(attn(x)))``, ``x = norm2(x + drop(linear2(drop(relu(linear1(x))))))``.

    Args:
        d_model: token width E.
        n_heads: attention heads.
        d_hidden: width of the feed-forward hidden layer.
        dropout: dropout probability at every site.
    """

    def __init__(self, d_model: int, n_heads: int, d_hidden: int = 2048, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = SelfAttention(d_model, n_heads, dropout)
        self.linear1 = nn.Linear(d_model, d_hidden)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_hidden, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        x = self.norm1(x + self.dropout1(self.self_attn(x)))
        y = self.linear2(self.dropout(F.relu(self.linear1(x))))  # (B, L, E)
        return self.norm2(x + self.dropout2(y))


class PreNormBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))`` then ``x + mlp(LN(x))``, mlp = E -> 4E -> E with GELU.

    Args:
        d_model: token width E.
        n_heads: attention heads.
        dropout: dropout on the attention probabilities and at both sites of the MLP.
        mlp_ratio: MLP hidden width as a multiple of E.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.3, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_ratio * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
