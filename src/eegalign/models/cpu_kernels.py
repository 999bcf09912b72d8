"""Optional CPU training kernels: :func:`use_cpu_kernels` swaps them into a model, same ``state_dict``.

The networks in :mod:`eegalign.models` are plain PyTorch, and that is what runs by default and
on GPUs. ``use_cpu_kernels(model)`` changes the class of each block it has a fast version of to
that version (a subclass with the same parameters and buffers, so the state dict, checkpoints and
optimiser state are untouched and move freely between the two). The fast versions fall back to
the plain ``forward`` whenever they do not apply (not on the CPU, not float32, autocast on, no
gradients or no dropout). ``eegalign fit --model.cpu_kernels true`` turns them on; they are off
by default because they are not robust when other processes compete for the cores (measured in
``benchmarks/models.py``, table in docs/performance.md).

What they do (each the same function and the same dropout distribution as the plain block;
``tests/test_cpu_kernels.py`` replays the dropout masks and compares forward and gradients):

- attention with dropout (:class:`_DropoutAttentionCPU`): with dropout, SDPA on the CPU falls back
  to its unfused kernel, which materialises the (B, H, L, L) scores several times. Here whole
  samples go through in cache-sized chunks, each head's q, k, v read in place from the packed
  projection; only the probabilities and a boolean keep mask are stored for backward.
- transformer feed-forward blocks with dropout (:class:`_FeedForwardCPU`): Linear -> act ->
  Dropout -> Linear -> Dropout in row chunks; a dropped hidden unit is marked by its
  pre-activation (-30, where GELU/ReLU and their derivatives are exactly 0), so backward needs
  no hidden mask.
- dropout with a boolean mask from ``uniform_`` (:class:`Dropout`), cheaper than ``bernoulli_``.
- tall-skinny products in row blocks that fit in L2 (:func:`matmul_rows`; EEGformer's mixing).
- EEGNet's temporal conv -> BatchNorm -> spatial conv (linear up to the ELU): electrodes mixed
  first, the first BatchNorm's batch statistics computed exactly from the input's lagged moments
  (running statistics updated as ``nn.BatchNorm2d`` does), the (B, 48, 128, 440) tensor never built.

Why chunks: the module-by-module versions write several full-size temporaries per layer, each
freshly allocated (on glibc, large blocks come from ``mmap`` and are page-faulted in on every
step); here each chunk's temporaries stay in cache. The cost: many small parallel regions, each
of which waits for every thread, so a core taken by another process stalls them all.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eegalign.models.eegformer import MixedTokens
from eegalign.models.eegnet_transformer import TemporalSpatial
from eegalign.models.layers import PostNormEncoderLayer, PreNormBlock, SelfAttention


def _cpu_fp32(x: torch.Tensor) -> bool:
    """The kernels apply: a float32 CPU tensor, autocast off."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


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


# Score elements per chunk of the CPU attention below (2**20 floats = 4 MiB): a chunk's
# (heads, L, S) score blocks stay in cache through softmax, dropout and the second matmul.
_ATTN_CHUNK = 2**20


class _DropoutAttentionCPU(torch.autograd.Function):
    """Multi-head ``softmax(q k^T / sqrt(d))`` with inverted dropout on the probabilities, times ``v``, on CPU.

    Input: the packed in-projection ``qkv`` (B, L, 3E) (q, k, v one after the other, heads
    inside each); output (B, L, E) with the heads concatenated, i.e. what
    ``nn.MultiheadAttention`` feeds its ``out_proj``. The same function and dropout distribution
    as ``scaled_dot_product_attention(q, k, v, dropout_p=p)`` (each probability kept with
    probability 1 - p and scaled by 1 / (1 - p)).

    Why: with dropout, SDPA on CPU falls back to its unfused kernel, which materialises the full
    (B, H, L, S) scores several times and draws the mask with ``bernoulli_``, and the q/k/v
    split costs a copy forward and a concatenation backward. Here whole samples go through in
    chunks of about ``_ATTN_CHUNK`` scores, so each chunk's scores stay in cache from the first
    matmul through softmax, mask and the second matmul; each head's q, k, v are read in place
    from the packed projection (strided batched matmuls, no split copies); only the
    probabilities (float) and the kept positions (bool) are stored for backward, whose
    gradient is written straight into the packed (B, L, 3E) layout. The backward uses
    ``rowsum(dP * P) = rowsum(dO * O)`` (as FlashAttention does) and recomputes the dropped,
    scaled probabilities per chunk.
    """

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, heads: int, p: float) -> torch.Tensor:  # type: ignore[override]
        b, length, e3 = qkv.shape
        e = e3 // 3
        d = e // heads
        probs = qkv.new_empty(b, heads, length, length)  # (B, H, L, L) softmax, saved
        keep = torch.empty(b, heads, length, length, dtype=torch.bool)  # (B, H, L, L) kept positions
        out = qkv.new_empty(b, length, e)  # (B, L, E)
        step = max(1, _ATTN_CHUNK // (heads * length * length))  # samples per chunk
        buf = qkv.new_empty(min(step, b), heads, length, length)
        scale, keep_scale = d**-0.5, 1.0 / (1.0 - p)
        for i in range(0, b, step):
            j = min(i + step, b)
            pc, kc, u = probs[i:j], keep[i:j], buf[: j - i]  # (n, H, L, L)
            for h in range(heads):  # scores, from the packed q and k in place
                q, k = _head(qkv, i, j, 0, h, heads), _head(qkv, i, j, 1, h, heads)  # (n, L, d) views
                pc[:, h].baddbmm_(q, k.transpose(1, 2), beta=0.0, alpha=scale)
            pc.sub_(pc.amax(-1, keepdim=True)).exp_()
            pc.div_(pc.sum(-1, keepdim=True))  # softmax over keys
            u.uniform_()  # one draw per probability, in (sample, head, query, key) order
            torch.ge(u, p, out=kc)  # kept: P = 1 - p
            u.ge_(p).mul_(keep_scale).mul_(pc)  # dropped, scaled probabilities
            for h in range(heads):
                o = torch.bmm(u[:, h], _head(qkv, i, j, 2, h, heads))  # (n, L, d)
                out[i:j, :, h * d : (h + 1) * d].copy_(o)
        ctx.save_for_backward(qkv, probs, keep, out)
        ctx.heads, ctx.scale, ctx.keep_scale, ctx.step = heads, scale, keep_scale, step
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        qkv, probs, keep, out = ctx.saved_tensors
        heads, step, scale = ctx.heads, ctx.step, ctx.scale
        b, length, e3 = qkv.shape
        d = e3 // 3 // heads
        # rowsum(dP * P) per (sample, query, head) = <dO, O> over that head's d features
        rowdot = (grad * out).view(b, length, heads, d).sum(-1)  # (B, L, H)
        dqkv = torch.empty_like(qkv)  # (B, L, 3E)
        n_max = min(step, b)
        m_buf, pd_buf = qkv.new_empty(2, n_max, heads, length, length)
        g_buf = qkv.new_empty(n_max, length, length)
        for i in range(0, b, step):
            j = min(i + step, b)
            n = j - i
            pc, m, pd = probs[i:j], m_buf[:n], pd_buf[:n]  # (n, H, L, L)
            m.copy_(keep[i:j]).mul_(ctx.keep_scale)  # 1/(1-p) where kept, else 0 (float: used twice)
            torch.mul(m, pc, out=pd)  # dropped, scaled probabilities
            for h in range(heads):
                q, k, v = (_head(qkv, i, j, part, h, heads) for part in range(3))  # (n, L, d) views
                go = grad[i:j, :, h * d : (h + 1) * d]  # (n, L, d) view
                _head(dqkv, i, j, 2, h, heads).copy_(torch.bmm(pd[:, h].transpose(1, 2), go))  # dv
                g = torch.bmm(go, v.transpose(1, 2), out=g_buf[:n])  # (n, L, L) dL/d(dropped probabilities)
                g.mul_(m[:, h]).sub_(rowdot[i:j, :, h].unsqueeze(-1)).mul_(pc[:, h])  # dL/d(scores)
                torch.mul(torch.bmm(g, k), scale, out=_head(dqkv, i, j, 0, h, heads))  # dq
                torch.mul(torch.bmm(g.transpose(1, 2), q), scale, out=_head(dqkv, i, j, 1, h, heads))  # dk
        return dqkv, None, None


def _head(packed: torch.Tensor, i: int, j: int, part: int, h: int, heads: int) -> torch.Tensor:
    """Samples i:j of head ``h`` of q (part 0), k (1) or v (2) in a packed (B, L, 3E) projection: an (n, L, E/H) view."""
    d = packed.shape[-1] // 3 // heads
    start = (part * heads + h) * d
    return packed[i:j, :, start : start + d]


# Rows x hidden units per chunk of the CPU feed-forward below (2**20 floats = 4 MiB), and at
# least this many rows per chunk, so wide layers (EEGFormer's temporal MLP: 2560 -> 10240) still
# run their matmuls on enough rows to be compute-bound rather than re-streaming the weights.
_FF_CHUNK = 2**20
_FF_MIN_ROWS = 256
# Above this many first-layer weights (16 MiB) the weights, not the activations, are what leaves
# the cache: all rows go in one chunk.
_FF_MAX_WEIGHT = 2**22


# Dropped hidden units get this pre-activation: GELU and ReLU are exactly 0 there and so are their
# derivatives (float32: erf(-30 / sqrt 2) = -1 and exp(-450) = 0), so the saved pre-activation
# carries the hidden dropout mask and backward needs no mask (tests/test_cpu_kernels.py checks both).
_DROPPED_PRE_ACTIVATION = -30.0


def _drop_(x: torch.Tensor, keep: torch.Tensor, u: torch.Tensor, p: float) -> torch.Tensor:
    """In place: draw which elements of ``x`` are kept (into ``keep``, bool), zero the others, scale by 1/(1-p).

    ``u`` is a float scratch buffer of ``x``'s shape: the mask is applied as a float multiply
    (a float-by-bool multiply converts the bool tensor through a temporary first).
    """
    torch.ge(u.uniform_(), p, out=keep)  # P(kept) = 1 - p, as nn.Dropout
    return x.mul_(u.ge_(p).mul_(1.0 / (1.0 - p)))


def _drop_units_(a: torch.Tensor, u: torch.Tensor, p: float) -> None:
    """In place: each element of the pre-activation ``a`` is kept with probability 1 - p, else set to
    ``_DROPPED_PRE_ACTIVATION``; ``u`` is a float scratch buffer of ``a``'s shape.

    Float arithmetic only (a masked fill with a bool mask is several times slower on the CPU):
    kept: ``a * 1 + 0 * 30 = a`` exactly; dropped: ``a * 0 - 1 * 30 = -30``.
    """
    u.uniform_().ge_(p)  # 1.0 where kept
    a.mul_(u).add_(u.sub_(1.0), alpha=-_DROPPED_PRE_ACTIVATION)


def _scaled_mask(keep: torch.Tensor, buf: torch.Tensor, p: float) -> torch.Tensor:
    """``keep`` (bool) as float 1/(1-p) or 0 in ``buf`` (same shape), for float multiplies."""
    return buf.copy_(keep).mul_(1.0 / (1.0 - p))


class _FeedForwardCPU(torch.autograd.Function):
    """``Dropout(p2)(Linear2(Dropout(p1)(act(Linear1(x)))))`` on (R, E) rows, on CPU, in row chunks.

    The same function and dropout distribution as the module-by-module version. A chunk of
    rows goes through both Linears, the activation and both dropouts while its (rows, hidden)
    block is in cache. The hidden dropout is applied to the pre-activation: a dropped unit's
    pre-activation is set to ``_DROPPED_PRE_ACTIVATION``, where the activation and its
    derivative are exactly 0, and the 1/(1-p1) scale is folded into the second matmul (and,
    in backward, into the weight gradients and ``dx``). So backward keeps only that
    pre-activation (float) and the output's kept positions (bool), recomputes the activation
    per chunk and needs no hidden mask: two elementwise passes over the hidden block instead
    of seven. Weight gradients are written by the first chunk and accumulated by the others.
    """

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, act: str, p1: float, p2: float):  # type: ignore[override]
        r, hid, e_out = x.shape[0], w1.shape[0], w2.shape[0]
        pre = x.new_empty(r, hid)  # (R, hidden) pre-activation (dropped units at the sentinel), saved
        out = x.new_empty(r, e_out)  # (R, E_out)
        keep2 = torch.empty(r, e_out, dtype=torch.bool) if p2 > 0 else None
        rows = r if w1.numel() > _FF_MAX_WEIGHT else max(_FF_MIN_ROWS, _FF_CHUNK // hid)
        u1_buf, u2_buf = x.new_empty(min(rows, r), hid), x.new_empty(min(rows, r), e_out)
        scale1 = 1.0 / (1.0 - p1)
        for i in range(0, r, rows):
            j = min(i + rows, r)
            a = pre[i:j]
            torch.mm(x[i:j], w1.t(), out=a).add_(b1)  # (addmm with out= would first copy the bias over out)
            if p1 > 0:
                _drop_units_(a, u1_buf[: j - i], p1)
            h = _activation(a, act)  # (n, hidden), a chunk-sized temporary; 0 at dropped units
            y = torch.addmm(b2, h, w2.t(), alpha=scale1, out=out[i:j])  # (n, E_out) = (h / (1 - p1)) W2^T + b2
            if keep2 is not None:
                _drop_(y, keep2[i:j], u2_buf[: j - i], p2)
        ctx.save_for_backward(x, w1, w2, pre, keep2)
        ctx.act, ctx.scale1, ctx.p2, ctx.rows = act, scale1, p2, rows
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, w1, w2, pre, keep2 = ctx.saved_tensors
        r, hid, e_out, rows, scale1 = x.shape[0], w1.shape[0], w2.shape[0], ctx.rows, ctx.scale1
        dx = torch.empty_like(x)
        dw1, dw2 = torch.empty_like(w1), torch.empty_like(w2)  # the first chunk writes, the others add
        db1, db2 = w1.new_empty(hid), w2.new_empty(e_out)
        dh_buf, m2_buf = x.new_empty(min(rows, r), hid), x.new_empty(min(rows, r), e_out)
        for i in range(0, r, rows):
            j, n = min(i + rows, r), min(rows, r - i)
            a, dh, g = pre[i:j], dh_buf[:n], grad[i:j]
            if keep2 is not None:
                g = g * _scaled_mask(keep2[i:j], m2_buf[:n], ctx.p2)  # (n, E_out) dL/dy
            h = _activation(a, ctx.act)  # (n, hidden), 0 at dropped units
            _accumulate(dw2, db2, g, h, first=i == 0)  # dL/dW2 = scale1 * g^T h (scaled below), dL/db2 = sum(g)
            torch.mm(g, w2, out=dh)  # (n, hidden) dL/dh / scale1
            da = _activation_backward(dh, a, ctx.act)  # (n, hidden) dL/d(pre-activation) / scale1; 0 at dropped units
            _accumulate(dw1, db1, da, x[i:j], first=i == 0)
            torch.addmm(dx[i:j], da, w1, beta=0.0, alpha=scale1, out=dx[i:j])  # (n, E) (beta=0: dx is not read)
        if scale1 != 1.0:
            for t in (dw2, dw1, db1):
                t.mul_(scale1)
        return dx, dw1, db1, dw2, db2, None, None, None


def _accumulate(dw: torch.Tensor, db: torch.Tensor, grad: torch.Tensor, inp: torch.Tensor, first: bool) -> None:
    """A Linear's weight and bias gradients from one chunk of rows: written by the first chunk, added by the others."""
    if first:
        torch.mm(grad.t(), inp, out=dw)  # (out, rows) @ (rows, in)
        torch.sum(grad, 0, out=db)
    else:
        dw.addmm_(grad.t(), inp)
        db.add_(grad.sum(0))


def _activation(a: torch.Tensor, act: str) -> torch.Tensor:
    return F.gelu(a) if act == "gelu" else F.relu(a)


def _activation_backward(grad: torch.Tensor, a: torch.Tensor, act: str) -> torch.Tensor:
    if act == "gelu":
        return torch.ops.aten.gelu_backward(grad, a)
    return torch.ops.aten.threshold_backward(grad, a, 0.0)  # relu


def feed_forward(
    x: torch.Tensor, lin1: nn.Linear, lin2: nn.Linear, act: str, p1: float, p2: float, residual: torch.Tensor | None = None
) -> torch.Tensor:
    """``Dropout(p2)(lin2(Dropout(p1)(act(lin1(x))))) [+ residual]`` on (..., E); ``act`` is ``"gelu"`` or ``"relu"``.

    In training on the CPU (float32, no autocast, gradients on) this is :class:`_FeedForwardCPU`, cache-blocked
    over rows; otherwise the plain sequence of modules (dropout is the identity when ``p = 0``,
    which the caller passes in eval mode). The work runs on (rows, E) matrices and ``residual``
    is added in place before the result is viewed back to (..., E): an in-place add on a view
    would make autograd rebuild the whole base tensor in backward (``CopySlices``: a zero-filled
    full-size gradient and two copies).
    """
    lead, x2 = x.shape[:-1], x.reshape(-1, x.shape[-1])  # (..., E) -> (R, E)
    cpu_fp32 = x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    if cpu_fp32 and torch.is_grad_enabled() and (p1 > 0 or p2 > 0):
        y = _FeedForwardCPU.apply(x2, lin1.weight, lin1.bias, lin2.weight, lin2.bias, act, p1, p2)  # (R, E_out)
    else:
        h = F.gelu(lin1(x2)) if act == "gelu" else F.relu(lin1(x2))  # (R, hidden)
        y = F.dropout(lin2(F.dropout(h, p1, training=p1 > 0)), p2, training=p2 > 0)  # (R, E_out), a fresh tensor
    if residual is not None:
        y = y.add_(residual.reshape(y.shape))
    return y.view(*lead, y.shape[-1])


# Row blocks of the CPU matmuls below: about 2**18 input floats (1 MiB, half an L2 cache here) and
# at least 256 rows; a product is split only from this many blocks up.
_MM_CHUNK = 2**18
_MM_MIN_ROWS = 256
_MM_MIN_CHUNKS = 8


def _mm_rows(k: int, period: int) -> int:
    """Rows per block for inner size ``k``: a multiple of ``period`` (the bias's rows)."""
    rows = max(_MM_MIN_ROWS, _MM_CHUNK // k)
    return period * max(1, rows // period)


def _mm_chunked(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None, rows: int) -> torch.Tensor:
    """``a @ b (+ bias)`` for (R, K) @ (K, N) -> a fresh (R, N), ``rows`` rows at a time; ``bias`` (N,) or (P, N)
    with ``P`` dividing ``rows`` and R (row r gets ``bias[r % P]``)."""
    out = a.new_empty(a.shape[0], b.shape[1])  # (R, N)
    for i in range(0, a.shape[0], rows):
        y = torch.mm(a[i : i + rows], b, out=out[i : i + rows])  # (rows, N)
        if bias is not None:  # while the block is in cache
            (y if bias.dim() == 1 else y.view(-1, *bias.shape)).add_(bias)
    return out


class _RowChunkedMatmul(torch.autograd.Function):
    """``x @ weight + bias``, or ``x @ weight.T + bias`` when ``transposed`` (``F.linear``), in row blocks.

    Why: on this project's CPUs, MKL runs a tall-skinny product such as (81920, 350) @ (350, 350)
    (EEGFormer's token mixing and attention projections) at about 100 GFLOP/s, but at about
    150 when it is fed blocks of a few hundred rows whose inputs fit in L2. The same products,
    so the same function; ``benchmarks/models.py`` measures the effect.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, transposed: bool, rows: int):  # type: ignore[override]
        w = weight.t() if transposed else weight  # (K, N)
        out = _mm_chunked(x, w, bias, rows)  # (R, N)
        ctx.save_for_backward(x, weight)
        ctx.transposed, ctx.rows, ctx.bias_shape = transposed, rows, None if bias is None else bias.shape
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        w = weight.t() if ctx.transposed else weight  # (K, N)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = _mm_chunked(grad, w.t(), None, ctx.rows)  # (R, K)
        if ctx.needs_input_grad[1]:
            dw = grad.t() @ x if ctx.transposed else x.t() @ grad  # in weight's layout: (N, K) or (K, N)
        if ctx.bias_shape is not None and ctx.needs_input_grad[2]:
            db = grad.view(-1, *ctx.bias_shape).sum(0)  # (N,) or (P, N)
        return dx, dw, db, None, None


def matmul_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, transposed: bool = False) -> torch.Tensor:
    """``x @ weight + bias`` for ``x`` (R, K) and ``weight`` (K, N), or ``F.linear(x, weight, bias)`` with ``weight``
    (N, K) when ``transposed``; ``bias`` is (N,) or (P, N) with P dividing R (row r gets ``bias[r % P]``, e.g. a
    per-token embedding under a batch of B). Returns (R, N).

    On the CPU in float32 (no autocast), products with many rows run in row blocks
    (:class:`_RowChunkedMatmul`) and the result is a fresh tensor, which callers may update in
    place; otherwise this is ``F.linear`` / ``torch.matmul`` plus the bias.
    """
    r, k = x.shape
    period = 1 if bias is None or bias.dim() == 1 else bias.shape[0]
    rows = _mm_rows(k, period)
    chunked = (
        x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and r >= _MM_MIN_CHUNKS * rows
        and r % period == 0
    )
    if chunked:
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
            return _RowChunkedMatmul.apply(x, weight, bias, transposed, rows)
        return _mm_chunked(x, weight.t() if transposed else weight, bias, rows)
    if bias is None or bias.dim() == 1:
        return F.linear(x, weight, bias) if transposed else torch.matmul(x, weight) if bias is None else torch.addmm(bias, x, weight)
    y = F.linear(x, weight) if transposed else torch.matmul(x, weight)  # (R, N)
    return (y.view(-1, *bias.shape) + bias).view(r, -1)  # not in place: y.view is a view




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




# ----------------------------------------------------------------------------------------------
# The fast blocks: subclasses of the plain ones, same parameters, different forward
# ----------------------------------------------------------------------------------------------


class FastSelfAttention(SelfAttention):
    """:class:`SelfAttention` whose training forward with dropout runs :class:`_DropoutAttentionCPU`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        p = self.dropout if self.training else 0.0
        if not (p > 0.0 and _cpu_fp32(x) and torch.is_grad_enabled()):
            return super().forward(x)
        b, length, e = x.shape
        qkv = matmul_rows(x.reshape(b * length, e), self.in_proj_weight, self.in_proj_bias, transposed=True)
        o = _DropoutAttentionCPU.apply(qkv.view(b, length, 3 * e), self.n_heads, p)  # (B, L, E)
        return matmul_rows(o.reshape(b * length, e), self.out_proj.weight, self.out_proj.bias, transposed=True).view(b, length, e)


class FastPostNormEncoderLayer(PostNormEncoderLayer):
    """:class:`PostNormEncoderLayer` with the feed-forward through :func:`feed_forward` and residuals added in place."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        if not _cpu_fp32(x):
            return super().forward(x)
        x = self.norm1(self.dropout1(self.self_attn(x)).add_(x))  # a fresh output: the in-place add is safe
        p1, p2 = (self.dropout.p, self.dropout2.p) if self.training else (0.0, 0.0)
        return self.norm2(feed_forward(x, self.linear1, self.linear2, "relu", p1, p2, residual=x))


class FastPreNormBlock(PreNormBlock):
    """:class:`PreNormBlock` with the MLP (Linear, GELU, Dropout, Linear, Dropout) through :func:`feed_forward`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, E) -> (B, L, E)
        if not _cpu_fp32(x):
            return super().forward(x)
        x = x + self.attn(self.norm1(x))
        m = self.mlp
        p1, p2 = (m[2].p, m[4].p) if self.training else (0.0, 0.0)
        return feed_forward(self.norm2(x), m[0], m[3], "gelu", p1, p2, residual=x)


class FastMixedTokens(MixedTokens):
    """:class:`MixedTokens` whose ``x @ mix + embedding`` runs in row blocks (:func:`matmul_rows`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, G, N, D) -> (B, G, N, D)
        if not _cpu_fp32(x):
            return super().forward(x)
        b, g, n, d = x.shape
        x = matmul_rows(x.reshape(b * g * n, d), self.mix, self.embedding.view(g * n, d)).view(b * g, n, d)
        return self.blocks(x).view(b, g, n, d)


class FusedTemporalSpatial(TemporalSpatial):
    """:class:`TemporalSpatial` (conv -> BatchNorm -> depthwise spatial conv) with the electrodes mixed first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T) -> (B, F1*D, 1, T')
        if not _cpu_fp32(x):
            return super().forward(x)
        bn, k = self.bn1, self.conv_t.kernel_size[1]
        p, depth = k // 2, self.conv_s.out_channels // self.conv_t.out_channels
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
        kernel = (scale.unsqueeze(1) * w_t).repeat_interleave(depth, 0)  # (F1*D, k)
        bias = shift.repeat_interleave(depth) * w_s.sum(1)  # (F1*D,)
        y = F.conv1d(z, kernel.unsqueeze(1), bias, padding=p, groups=z.shape[1])  # (B, F1*D, T')
        return y.unsqueeze(2)  # (B, F1*D, 1, T')


#: plain block -> fast block (exact type match: a subclass of a plain block is left alone)
FAST_BLOCKS: dict[type[nn.Module], type[nn.Module]] = {
    SelfAttention: FastSelfAttention,
    PostNormEncoderLayer: FastPostNormEncoderLayer,
    PreNormBlock: FastPreNormBlock,
    MixedTokens: FastMixedTokens,
    TemporalSpatial: FusedTemporalSpatial,
    nn.Dropout: Dropout,
}


def use_cpu_kernels(model: nn.Module, enable: bool = True) -> nn.Module:
    """Swap the CPU training kernels into ``model`` in place (``enable=False``: back to the plain blocks).

    Only the blocks' classes change: parameters, buffers and the state dict stay the same. Returns ``model``.
    """
    plain = {fast: slow for slow, fast in FAST_BLOCKS.items()}
    table = FAST_BLOCKS if enable else plain
    for module in model.modules():
        new = table.get(type(module))
        if new is not None:
            module.__class__ = new
    return model
