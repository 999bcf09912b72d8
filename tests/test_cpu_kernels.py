"""eegalign.models.use_cpu_kernels: the fast CPU blocks compute the plain blocks' function.

Block by block with the same dropout masks (the kernels' draws replayed), forward and gradients;
whole networks with an identical state dict, in eval mode and in training without dropout.
"""

from __future__ import annotations

import copy

import pytest
import torch

from eegalign.models import build_model, use_cpu_kernels
from eegalign.models.layers import SelfAttention


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max()) if a.numel() else 0.0


NO_DROPOUT = {
    "eegformer": dict(dropout=0.0, head_dropout=0.0),
    "nervformer": dict(dropout=0.0, cross_dropout=0.0, conv_dropout=0.0, proj_dropout=0.0),
    "eegnet_transformer": dict(dropout=0.0),
}


@pytest.mark.parametrize("name", sorted(NO_DROPOUT))
def test_same_state_dict_and_function_as_the_plain_network(name):
    torch.manual_seed(0)
    plain = build_model(name, preset="small", dropout=0.2)
    fast = use_cpu_kernels(copy.deepcopy(plain))
    assert type(fast) is type(plain) and fast is not plain
    swapped = {type(m).__name__ for m in fast.modules()} - {type(m).__name__ for m in plain.modules()}
    assert swapped, "no block was swapped"
    sa, sb = plain.state_dict(), fast.state_dict()
    assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.randn(4, 128, 440)
    with torch.no_grad():
        assert _rel(fast.eval()(x), plain.eval()(x)) < 1e-5
    fresh = build_model(name, preset="small", dropout=0.2)  # checkpoints move both ways
    fresh.load_state_dict(fast.state_dict(), strict=True)
    back = use_cpu_kernels(fast, enable=False)
    assert {type(m) for m in back.modules()} == {type(m) for m in plain.modules()}


@pytest.mark.parametrize("name", sorted(NO_DROPOUT))
def test_training_forward_gradients_and_batchnorm_statistics_match(name):
    torch.manual_seed(0)
    x = torch.randn(4, 128, 440) * 1.5 + 0.3  # not z-scored: the fused BatchNorm statistics must still be exact
    plain = build_model(name, preset="small", **NO_DROPOUT[name]).train()
    fast = use_cpu_kernels(copy.deepcopy(plain)).train()
    for _ in range(2):  # two steps: running statistics updated twice
        ya, yb = fast(x), plain(x)
        assert _rel(ya, yb) < 1e-5
        ya.square().mean().backward()
        yb.square().mean().backward()
    ga = {k: p.grad for k, p in fast.named_parameters() if p.grad is not None}
    gb = {k: p.grad for k, p in plain.named_parameters() if p.grad is not None}
    assert sorted(ga) == sorted(gb)
    scale = max(float(g.abs().max()) for g in gb.values())
    for k in gb:  # relative to the largest gradient: some (e.g. BN before BN) are ~0 up to rounding
        assert float((ga[k] - gb[k]).abs().max()) < 1e-4 * scale, k
    sb = plain.state_dict()
    for k, a in fast.state_dict().items():
        if "running" in k or "num_batches" in k:
            assert torch.allclose(a.float(), sb[k].float(), rtol=1e-5, atol=1e-6), k


def test_fused_eegnet_front_end_at_reference_kernel_sizes():
    """Reference kernel sizes, training mode: the fused front end's batch statistics and gradients agree."""
    torch.manual_seed(0)
    x = torch.randn(3, 16, 120) * 2 + 0.5
    plain = build_model("eegnet_transformer", n_chans=16, n_times=120, out_shape=(4, 8), preset="reference",
                        n_layers=1, dropout=0.0).front
    fast = use_cpu_kernels(copy.deepcopy(plain))
    for _ in range(2):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = fast(xa), plain(xb)
        assert _rel(ya, yb) < 1e-5
        ya.sum().backward()
        yb.sum().backward()
        assert _rel(xa.grad, xb.grad) < 1e-5
    assert torch.allclose(fast.bn1.running_var, plain.bn1.running_var, rtol=1e-5)
    assert int(fast.bn1.num_batches_tracked) == 2
    assert _rel(fast.conv_t.weight.grad, plain.conv_t.weight.grad) < 1e-4


def test_dropout_has_the_dropout_distribution_and_gradient():
    from eegalign.models.cpu_kernels import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.3).train()
    x = torch.ones(200_000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(mask * x / (1 - p)) / dx with x = 1
    assert drop.eval()(x) is x and Dropout(0.0).train()(x) is x


@pytest.mark.parametrize("chunk", [10, 2**20])  # several chunks of one sample, and one chunk for all
def test_cpu_attention_with_dropout_is_attention_with_dropout(monkeypatch, chunk):
    """The cache-blocked CPU path equals softmax attention with the same keep mask, forward and backward."""
    import math

    import torch.nn.functional as F

    from eegalign.models import cpu_kernels as layers

    monkeypatch.setattr(layers, "_ATTN_CHUNK", chunk)
    torch.manual_seed(1)
    b, length, e, h, p = 3, 6, 12, 3, 0.3
    attn = use_cpu_kernels(SelfAttention(e, h, p)).train()
    x = torch.randn(b, length, e, requires_grad=True)
    torch.manual_seed(5)
    out = attn(x)
    torch.manual_seed(5)  # the kernel draws one uniform per probability, in (sample, head, query, key) order
    keep = (torch.empty(b * h, length, length).uniform_() >= p).view(b, h, length, length)
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(b, length, 3, h, e // h).permute(2, 0, 3, 1, 4)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(e // h), -1)
    ref = attn.out_proj(((probs * keep / (1 - p)) @ v).transpose(1, 2).reshape(b, length, e))
    assert 0.5 < keep.float().mean() < 0.9  # dropout really happened
    assert _rel(out, ref) < 1e-5
    g = torch.randn_like(ref)
    params = [x, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj.weight]
    for a, r in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        assert _rel(a, r) < 1e-5
    with torch.no_grad():  # eval mode: SDPA without dropout, deterministic
        attn.eval()
        assert torch.equal(attn(x), attn(x))


@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_cpu_feed_forward_is_the_module_sequence(monkeypatch, act):
    """Linear -> act -> Dropout -> Linear -> Dropout in row chunks equals the plain sequence with the same masks."""
    import torch.nn.functional as F

    from eegalign.models import cpu_kernels as layers

    monkeypatch.setattr(layers, "_FF_CHUNK", 64)
    monkeypatch.setattr(layers, "_FF_MIN_ROWS", 1)
    torch.manual_seed(0)
    rows_total, e, hid, p1, p2 = 37, 6, 16, 0.3, 0.2
    x = torch.randn(rows_total, e, requires_grad=True)
    lin1, lin2 = torch.nn.Linear(e, hid), torch.nn.Linear(hid, e)
    torch.manual_seed(7)
    out = layers.feed_forward(x, lin1, lin2, act, p1, p2)
    torch.manual_seed(7)  # per chunk of 4 rows: the hidden layer's draws, then the output's
    keep1, keep2 = [], []
    for i in range(0, rows_total, 64 // hid):
        n = min(64 // hid, rows_total - i)
        keep1.append(torch.empty(n, hid).uniform_() >= p1)
        keep2.append(torch.empty(n, e).uniform_() >= p2)
    keep1, keep2 = torch.cat(keep1), torch.cat(keep2)
    h = (F.gelu if act == "gelu" else F.relu)(lin1(x)) * keep1 / (1 - p1)
    ref = lin2(h) * keep2 / (1 - p2)
    assert _rel(out, ref) < 1e-6
    g = torch.randn_like(ref)
    params = [x, lin1.weight, lin1.bias, lin2.weight, lin2.bias]
    for a, r in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        assert _rel(a, r) < 1e-5
    with torch.no_grad():  # no dropout: the plain modules
        assert torch.equal(layers.feed_forward(x, lin1, lin2, act, 0.0, 0.0), lin2((F.gelu if act == "gelu" else F.relu)(lin1(x))))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision is left to autocast, not forced to fp32
        assert layers.feed_forward(x, lin1, lin2, act, p1, p2).dtype == torch.bfloat16


def test_dropped_unit_pre_activation_is_exactly_zero_for_both_activations():
    """The feed-forward kernel marks dropped hidden units by their pre-activation: value and derivative must be 0."""
    from eegalign.models import cpu_kernels as layers

    a = torch.full((1000,), layers._DROPPED_PRE_ACTIVATION)
    g = torch.randn(1000) * 1e30  # any finite incoming gradient
    for act in ("gelu", "relu"):
        assert torch.equal(layers._activation(a, act), torch.zeros(1000))
        assert torch.equal(layers._activation_backward(g, a, act), torch.zeros(1000))
    a = torch.randn(64, 64)
    kept = a.clone()
    torch.manual_seed(3)
    layers._drop_units_(kept, torch.empty_like(a), 0.3)
    dropped = kept == layers._DROPPED_PRE_ACTIVATION
    assert 0.2 < dropped.float().mean() < 0.4
    assert torch.equal(kept[~dropped], a[~dropped])  # kept units untouched, bit for bit


@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize("bias_rows", [None, 1, 4])
def test_row_blocked_matmul_is_the_matmul(monkeypatch, transposed, bias_rows):
    """matmul_rows in row blocks equals x @ W (+ bias, per row or per position in a period) in value and gradient."""
    from eegalign.models import cpu_kernels as layers

    monkeypatch.setattr(layers, "_MM_CHUNK", 16)
    monkeypatch.setattr(layers, "_MM_MIN_ROWS", 1)
    torch.manual_seed(0)
    r, k, n = 96, 8, 5  # 8 / 4-row blocks: 24 or more blocks, so the blocked path runs
    x = torch.randn(r, k, requires_grad=True)
    w = torch.randn(*((n, k) if transposed else (k, n)), requires_grad=True)
    bias = None if bias_rows is None else torch.randn(*((n,) if bias_rows == 1 else (bias_rows, n)), requires_grad=True)
    out = layers.matmul_rows(x, w, bias, transposed=transposed)
    ref = x @ (w.t() if transposed else w)
    if bias is not None:
        ref = (ref.view(-1, *bias.shape) + bias).view(r, n)
    assert out.grad_fn is not None and type(out.grad_fn).__name__.startswith("_RowChunkedMatmul")
    assert _rel(out, ref) < 1e-6
    g = torch.randn(r, n)
    params = [t for t in (x, w, bias) if t is not None]
    for a, b in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(ref, params, g)):
        assert a.shape == b.shape and _rel(a, b) < 1e-6
    with torch.no_grad():
        assert _rel(layers.matmul_rows(x, w, bias, transposed=transposed), ref) < 1e-6
    monkeypatch.setattr(layers, "_MM_CHUNK", 2**18)  # too few rows to split: the plain product
    assert _rel(layers.matmul_rows(x, w, bias, transposed=transposed), ref) < 1e-6


def test_fit_switch_swaps_the_encoder_blocks_and_keeps_checkpoint_keys():
    from eegalign.losses import CombinedLoss
    from eegalign.models.cpu_kernels import FastSelfAttention
    from eegalign.system import AlignmentModule

    torch.manual_seed(0)
    plain = AlignmentModule(build_model("nervformer", preset="small"), CombinedLoss())
    fast = AlignmentModule(build_model("nervformer", preset="small"), CombinedLoss(), cpu_kernels=True)
    assert fast.hparams["cpu_kernels"] is True
    assert any(isinstance(m, FastSelfAttention) for m in fast.encoder.modules())
    assert not any(isinstance(m, FastSelfAttention) for m in plain.encoder.modules())
    assert list(fast.state_dict()) == list(plain.state_dict())
