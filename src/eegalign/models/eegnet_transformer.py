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
- the 77 heads are stored stacked in groups of 10 tokens (``head_w1.g`` (10, 512, 512), ``head_b1.g``,
  ``head_w2.g`` (10, 768, 512), ``head_b2.g`` for g = 0..7, the last group holding 7; head i's weights
  are slice i - 10 g of group g, in ``nn.Linear``'s (out, in) layout) and run as batched matmuls
  (two per group) instead of a Python loop of 77 pairs of Linears. Groups rather than one stack
  keep each tensor under 16 MiB, which spares the optimiser and gradient buffers a page fault
  per 4 KiB on every CPU step.
- the front end up to the first ELU (temporal conv -> BN -> depthwise spatial conv -> BN) is
  linear, so ``fast_frontend=True`` mixes the electrodes first ((B, C, T) -> (B, 144, T)) and runs
  the 31-tap temporal filter (scaled by the folded BatchNorm) on 144 channels instead of
  48 x 128. The first BatchNorm's batch statistics over the never-built (B, 48, C, T) tensor are
  computed exactly from the input's lagged sums (mean) and 31 x 31 lagged Gram matrix
  (variance), and its running statistics are updated as ``nn.BatchNorm2d`` does; gradients flow
  through them as through BatchNorm. ``fast_frontend=False`` runs the literal layers.
- the positional-encoding length is computed from the shapes (27), not 55; the heads use the
  configured ``out_shape`` (tokens, dim) instead of a hard-coded 77 x 768.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from eegalign.errors import ConfigError
from eegalign.models.base import EncoderBase
from eegalign.models.layers import Dropout, PostNormEncoderLayer, SinusoidalPositionalEncoding

_HEAD_GROUP_ELEMENTS = 2**22  # largest head-weight tensor (16 MiB of float32)


def _lagged_moments(xp: torch.Tensor, k: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of windows and of window outer products of a zero-padded signal, over all rows.

    xp: (R, L) rows of a padded signal; windows are ``xp[r, t:t+k]`` for t < n_out.
    Returns m (k,) with ``m[j] = sum_{r,t} xp[r, t+j]`` and G (k, k) with
    ``G[i, j] = sum_{r,t} xp[r, t+i] * xp[r, t+j]`` (float64): the first two moments of a k-tap
    convolution's output, without building it. Only the band |u - v| < k of the (L, L) Gram
    matrix of the columns is needed: it is computed block-wise with one batched matmul
    (~4k/L of the full Gram's cost), then the lagged products are summed over the n_out windows.
    """
    r, length = xp.shape
    nb = -(-length // k)  # blocks of k columns
    xq = F.pad(xp, (0, nb * k + k - length))  # (R, nb*k + k), zeros past the end
    left = xq[:, : nb * k].reshape(r, nb, k).permute(1, 2, 0)  # (nb, k, R): columns u of block i
    right = xq.unfold(1, 2 * k, k)[:, :nb].permute(1, 0, 2)  # (nb, R, 2k): columns u .. u + 2k of block i
    band = torch.bmm(left, right)  # (nb, k, 2k): band[i, a, c] = sum_r xq[r, ik+a] * xq[r, ik+c]
    lag = band.as_strided((nb, k, k), (2 * k * k, 2 * k + 1, 1)).reshape(nb * k, k)  # lag[u, d] = A[u, u+d]
    cs = F.pad(torch.cumsum(lag.double(), 0), (0, 0, 1, 0))  # (nb*k + 1, k)
    j = torch.arange(k, device=xp.device)
    s = cs[j + n_out] - cs[j]  # (k, k): s[j, d] = sum_t A[j+t, j+t+d]
    lo = torch.minimum(j[:, None], j[None, :])
    g = s[lo, (j[:, None] - j[None, :]).abs()]  # G[i, l] = s[min(i, l), |i - l|]
    col = F.pad(torch.cumsum(xp.sum(0).double(), 0), (1, 0))  # (L + 1,)
    m = col[j + n_out] - col[j]  # sum_t col[t + j]
    return m, g


class _FusedTemporalSpatial(nn.Module):
    """Conv2d(1, F1, (1, k)) -> BatchNorm2d(F1) -> Conv2d(F1, F1*D, (C, 1), groups=F1), computed cheaply.

    Holds the three literal layers (``conv_t``, ``bn1``, ``conv_s``) and, with ``fast=True``,
    evaluates the same function in the order spatial -> temporal (see the module docstring).
    """

    def __init__(self, n_chans: int, f1: int, depth: int, k: int, fast: bool) -> None:
        super().__init__()
        self.conv_t = nn.Conv2d(1, f1, (1, k), padding=(0, k // 2), bias=False)
        self.bn1 = nn.BatchNorm2d(f1)
        self.conv_s = nn.Conv2d(f1, f1 * depth, (n_chans, 1), groups=f1, bias=False)
        self.k, self.pad, self.depth, self.fast = k, k // 2, depth, fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, F1*D, 1, T')
        if not self.fast:
            return self.conv_s(self.bn1(self.conv_t(x.unsqueeze(1))))
        bn, k, p = self.bn1, self.k, self.pad
        b, c, t = x.shape
        w_t = self.conv_t.weight.view(-1, k)  # (F1, k)
        w_s = self.conv_s.weight.view(-1, c)  # (F1*D, C)
        n_out = t + 2 * p - k + 1
        if bn.training or bn.running_mean is None:
            xp = F.pad(x, (p, p)).reshape(b * c, -1)  # (B*C, T+2p)
            m, g = _lagged_moments(xp, k, n_out)
            n = b * c * n_out
            w64 = w_t.double()
            mean = w64 @ m / n  # (F1,)
            var = ((w64 @ g) * w64).sum(1) / n - mean * mean  # (F1,) biased, as BatchNorm normalises
            if bn.training and bn.track_running_stats:
                with torch.no_grad():
                    bn.num_batches_tracked.add_(1)
                    mom = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
                    bn.running_mean.mul_(1 - mom).add_(mom * mean.float())
                    bn.running_var.mul_(1 - mom).add_(mom * var.float() * n / max(n - 1, 1))
            mean, var = mean.float(), var.float()
        else:
            mean, var = bn.running_mean, bn.running_var
        scale = torch.rsqrt(var + bn.eps)
        if bn.affine:
            scale = bn.weight * scale
            shift = bn.bias - scale * mean
        else:
            shift = -scale * mean  # (F1,)
        z = torch.matmul(w_s, x)  # (F1*D, C) @ (B, C, T) -> (B, F1*D, T): electrodes mixed first
        kernel = (scale.unsqueeze(1) * w_t).repeat_interleave(self.depth, 0)  # (F1*D, k)
        bias = shift.repeat_interleave(self.depth) * w_s.sum(1)  # (F1*D,)
        y = F.conv1d(z, kernel.unsqueeze(1), bias, padding=p, groups=z.shape[1])  # (B, F1*D, T')
        return y.unsqueeze(2)  # (B, F1*D, 1, T')


class EEGNetTransformer(EncoderBase):
    """EEGNet (Lawhern et al. 2018) + transformer + per-token heads: (B, n_chans, n_times) -> (B, *out_shape)."""

    name = "eegnet_transformer"
    routes = ("text",)
    default_out_shape = (77, 768)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(
            F1=48, D=3, F2=96, kern_length=31, pool1=2, pool2=4, sep_kernel=16, sep_stride=2,
            transformer_dim=512, n_heads=8, n_layers=4, dim_feedforward=2048, head_hidden=512,
            dropout=0.3, fast_frontend=True,
        ),
        "small": dict(
            F1=8, D=2, F2=16, kern_length=15, pool1=2, pool2=4, sep_kernel=8, sep_stride=2,
            transformer_dim=64, n_heads=4, n_layers=1, dim_feedforward=128, head_hidden=64,
            dropout=0.3, fast_frontend=True,
        ),
    }

    def __init__(
        self, n_chans: int = 128, n_times: int = 440, out_shape=(77, 768), preset: str | None = None, **hyper: Any
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, **hyper)
        h = self.hyper
        f1, f2, fd, e = h["F1"], h["F2"], h["F1"] * h["D"], h["transformer_dim"]
        t1 = (self.n_times + 2 * (h["kern_length"] // 2) - h["kern_length"] + 1) // h["pool1"]
        t2 = (t1 + 2 * (h["sep_kernel"] // 2) - h["sep_kernel"]) // h["sep_stride"] + 1
        self.n_tokens = t2 // h["pool2"]
        if self.n_tokens < 1:
            raise ConfigError(f"eegnet_transformer: {self.n_times} samples give no tokens after pooling")
        self.front = _FusedTemporalSpatial(self.n_chans, f1, h["D"], h["kern_length"], h["fast_frontend"])
        self.bn2 = nn.BatchNorm2d(fd)
        self.pool1 = nn.AvgPool2d((1, h["pool1"]))
        self.drop1 = Dropout(h["dropout"])
        self.sep_dw = nn.Conv2d(
            fd, fd, (1, h["sep_kernel"]), padding=(0, h["sep_kernel"] // 2), stride=(1, h["sep_stride"]), groups=fd, bias=False
        )
        self.sep_pw = nn.Conv2d(fd, f2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(f2)
        self.pool2 = nn.AvgPool2d((1, h["pool2"]))
        self.drop2 = Dropout(h["dropout"])
        self.proj = nn.Linear(f2, e)
        self.pos = SinusoidalPositionalEncoding(self.n_tokens, e)
        self.encoder = nn.Sequential(
            *[PostNormEncoderLayer(e, h["n_heads"], h["dim_feedforward"], h["dropout"]) for _ in range(h["n_layers"])]
        )
        tokens, dim = (1, *self.out_shape) if len(self.out_shape) == 1 else self.out_shape
        self.out_tokens, hid = tokens, h["head_hidden"]
        # the heads' weights, stacked by groups of tokens: head i of group g is slice i - start(g), in
        # nn.Linear's (out, in) layout. Groups keep each tensor under 16 MiB, so the per-step gradient
        # and optimiser temporaries stay below glibc's 32 MiB mmap ceiling and are reused rather than
        # page-faulted in afresh on every step (AdamW + gradients: 175 -> 51 ms for the 50 M values).
        per = max(1, _HEAD_GROUP_ELEMENTS // max(hid * e, dim * hid))  # tokens per group
        sizes = [min(per, tokens - i) for i in range(0, tokens, per)]
        self.head_w1 = nn.ParameterList(nn.Parameter(torch.empty(n, hid, e)) for n in sizes)
        self.head_b1 = nn.ParameterList(nn.Parameter(torch.zeros(n, hid)) for n in sizes)
        self.head_w2 = nn.ParameterList(nn.Parameter(torch.empty(n, dim, hid)) for n in sizes)
        self.head_b2 = nn.ParameterList(nn.Parameter(torch.zeros(n, dim)) for n in sizes)
        self.head_drop = Dropout(h["dropout"])
        self._init_weights()

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
        for w in (*self.head_w1, *self.head_w2):  # Xavier-uniform of each (out, in) slice
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
        # one matmul per token, batched per group, with the batch as the last axis: W (n, out, in) @
        # x (n, in, B), so the weight gradients come out in the weights' own layout (no copy per step)
        x = x.permute(2, 1, 0)  # (77, E, B)
        hidden = torch.cat(
            [torch.baddbmm(b1.unsqueeze(2), w1, xg) for w1, b1, xg in zip(self.head_w1, self.head_b1, x.split(self._group_sizes()))]
        )  # (77, hid, B)
        hidden = self.head_drop(F.gelu(hidden))
        y = torch.cat(
            [torch.baddbmm(b2.unsqueeze(2), w2, hg) for w2, b2, hg in zip(self.head_w2, self.head_b2, hidden.split(self._group_sizes()))]
        )  # (77, dim, B)
        return y.permute(2, 0, 1).reshape(b, *self.out_shape)  # (B, 77, dim)

    def _group_sizes(self) -> list[int]:
        return [w.shape[0] for w in self.head_w1]
