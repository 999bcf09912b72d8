"""The encoder registry: contract, shapes, gradients, determinism, other montages, parameter counts,
and equivalence of eegalign's fast implementations with straightforward ones (benchmarks/naive_reference.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from eegalign.errors import ConfigError, EEGAlignError
from eegalign.models import build_model, count_parameters, encoder_config, list_models, model_class

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from naive_reference import convert_state, naive_from  # noqa: E402

TEXT = (77, 768)
IMAGE = (1024,)

# One case per registered model: small but real configurations (every model must be listed here).
CASES: dict[str, dict] = {
    "eegformer": dict(preset="small"),
    "nervformer": dict(preset="small"),
    "eegnet_transformer": dict(preset="small"),
    "nice": dict(preset="small"),
    "mlp": dict(preset="small"),
    "braindecode_eegnet": dict(preset="small"),
    "braindecode_shallow": dict(preset="small"),
    "braindecode_conformer": dict(preset="small"),
    "braindecode_atcnet": dict(preset="small"),
}

REFERENCE_PARAMS = {"eegformer": 91_771_961, "nervformer": 20_765_424, "eegnet_transformer": 63_257_104}


def _shapes(name: str) -> list[tuple[int, ...]]:
    routes = model_class(name).routes
    return [s for r, s in (("image", IMAGE), ("text", TEXT)) if r in routes]


def test_registry_is_complete():
    assert set(list_models()) == set(CASES), "every registered model needs a test case (and vice versa)"
    for name in list_models():
        assert "reference" in model_class(name).presets and "small" in model_class(name).presets


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_reference_parameter_counts(name):
    model = build_model(name, preset="reference")
    assert count_parameters(model) == REFERENCE_PARAMS[name]
    assert (model.n_chans, model.n_times) == (128, 440)


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_backward_shapes(name):
    torch.manual_seed(0)
    for out_shape in _shapes(name):
        model = build_model(name, out_shape=out_shape, **CASES[name]).train()
        assert model.out_shape == out_shape
        x = torch.randn(3, 128, 440)
        y = model(x)
        assert y.shape == (3, *out_shape)
        assert torch.isfinite(y).all()
        y.square().mean().backward()
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        missing = [n for n, p in trainable if p.grad is None]
        assert not missing, f"parameters without gradient: {missing[:5]}"
        assert all(torch.isfinite(p.grad).all() for _, p in trainable)


@pytest.mark.parametrize("name", sorted(CASES))
def test_other_montage_and_output_shape(name):
    torch.manual_seed(0)
    out_shape = (5, 12) if "text" in model_class(name).routes else (48,)
    model = build_model(name, n_chans=63, n_times=250, out_shape=out_shape, **CASES[name]).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 63, 250))
    assert y.shape == (2, *out_shape)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_deterministic_under_seed_and_config_roundtrip(name):
    x = torch.randn(2, 128, 440)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(name, **CASES[name])
        torch.manual_seed(7)
        outs.append(model.train()(x))  # dropout masks from the same seed
    assert torch.equal(outs[0], outs[1])
    cfg = encoder_config(model)
    assert json.loads(json.dumps(cfg)) == cfg  # plain JSON
    clone = build_model(**cfg)
    clone.load_state_dict(model.state_dict(), strict=True)
    model.eval(), clone.eval()
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
    torch.manual_seed(124)
    other = build_model(name, **CASES[name]).eval()
    with torch.no_grad():
        assert not torch.allclose(other(x), model(x)), "a different seed must give a different initialisation"


def test_hyperparameters_override_presets_and_errors_are_one_line():
    m = build_model("mlp", preset="small", hidden=8)
    assert m.hyper["hidden"] == 8 and encoder_config(m)["hidden"] == 8
    with pytest.raises(ConfigError, match="unknown model"):
        build_model("nope")
    with pytest.raises(ConfigError, match="no preset"):
        build_model("mlp", preset="huge")
    with pytest.raises(ConfigError, match="no option"):
        build_model("mlp", hiddden=3)
    with pytest.raises(ConfigError):
        build_model("eegformer", preset="small", n_times=20)


def test_braindecode_missing_gives_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "braindecode.models", None)  # import fails as if not installed
    with pytest.raises(EEGAlignError, match=r"pip install 'eegalign\[baselines\]'"):
        build_model("braindecode_eegnet", preset="small")


# ---------------------------------------------------------------------------------------------
# The fast implementations compute the reference function
# ---------------------------------------------------------------------------------------------

NO_DROPOUT = {
    "eegformer": dict(dropout=0.0, head_dropout=0.0),
    "nervformer": dict(dropout=0.0, cross_dropout=0.0, conv_dropout=0.0, proj_dropout=0.0),
    "eegnet_transformer": dict(dropout=0.0),
}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max()) if a.numel() else 0.0


@pytest.mark.parametrize("name", sorted(NO_DROPOUT))
def test_matches_naive_reference_small(name):
    """Same weights in the naive twin: same outputs (eval), same outputs and gradients (train, no dropout)."""
    torch.manual_seed(0)
    x = torch.randn(4, 128, 440)
    ours = build_model(name, preset="small").eval()
    naive = naive_from(ours).eval()
    with torch.no_grad():
        assert _rel(ours(x), naive(x)) < 1e-5
    ours = build_model(name, preset="small", **NO_DROPOUT[name]).train()
    naive = naive_from(ours).train()
    ya, yb = ours(x), naive(x)
    assert _rel(ya, yb) < 1e-5
    ya.square().mean().backward()
    yb.square().mean().backward()
    ga = convert_state(ours, {k: p.grad for k, p in ours.named_parameters() if p.grad is not None})
    gb = {k: p.grad for k, p in naive.named_parameters() if p.grad is not None}
    assert sorted(ga) == sorted(gb)
    scale = max(float(g.abs().max()) for g in gb.values())
    for k in gb:  # relative to the largest gradient: some (e.g. BN before BN) are ~0 up to rounding
        assert float((ga[k] - gb[k]).abs().max()) < 1e-4 * scale, k
    sb = naive.state_dict()
    for k, a in ours.state_dict().items():
        if "running" in k:  # BatchNorm running statistics updated identically
            assert torch.allclose(a, sb[k], rtol=1e-5, atol=1e-6), k


def test_fused_eegnet_front_end_matches_literal_layers():
    """Reference kernel sizes, training mode: batch statistics, running statistics and gradients agree."""
    torch.manual_seed(0)
    x = torch.randn(3, 16, 120) * 2 + 0.5  # not z-scored: the statistics must still be exact
    fast = build_model("eegnet_transformer", n_chans=16, n_times=120, out_shape=(4, 8), preset="reference",
                       n_layers=1, dropout=0.0)
    slow = build_model("eegnet_transformer", n_chans=16, n_times=120, out_shape=(4, 8), preset="reference",
                       n_layers=1, dropout=0.0, fast_frontend=False)
    slow.load_state_dict(fast.state_dict())
    for step in range(2):
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = fast.front(xa), slow.front(xb)
        assert _rel(ya, yb) < 1e-5
        ya.sum().backward()
        yb.sum().backward()
        assert _rel(xa.grad, xb.grad) < 1e-5
    assert torch.allclose(fast.front.bn1.running_mean, slow.front.bn1.running_mean, atol=1e-6)
    assert torch.allclose(fast.front.bn1.running_var, slow.front.bn1.running_var, rtol=1e-5)
    assert int(fast.front.bn1.num_batches_tracked) == int(slow.front.bn1.num_batches_tracked) == 2
    ga, gb = fast.front.conv_t.weight.grad, slow.front.conv_t.weight.grad
    assert _rel(ga, gb) < 1e-4
    fast.eval(), slow.eval()
    with torch.no_grad():
        assert _rel(fast.front(x), slow.front(x)) < 1e-5


def test_nervformer_fast_conv_is_the_same_function():
    torch.manual_seed(0)
    a = build_model("nervformer", preset="small").eval()
    b = build_model("nervformer", preset="small", fast_conv=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        assert _rel(a(x), b(x)) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_reference_forward_and_naive_equivalence(name):
    torch.manual_seed(0)
    ours = build_model(name, preset="reference").eval()
    naive = naive_from(ours).eval()
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        y = ours(x)
        assert y.shape == (2, *ours.out_shape)
        assert _rel(y, naive(x)) < 1e-5


def test_dropout_has_the_dropout_distribution_and_gradient():
    from eegalign.models.layers import Dropout

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

    from eegalign.models import layers

    monkeypatch.setattr(layers, "_ATTN_CHUNK", chunk)
    torch.manual_seed(1)
    b, length, e, h, p = 3, 6, 12, 3, 0.3
    attn = layers.SelfAttention(e, h, p).train()
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

    from eegalign.models import layers

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
    from eegalign.models import layers

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


def _autograd_node_names(t: torch.Tensor) -> set[str]:
    seen, stack, names = set(), [t.grad_fn], set()
    while stack:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        names.add(type(f).__name__)
        stack += [g for g, _ in f.next_functions]
    return names


@pytest.mark.parametrize("name", ["eegformer", "nervformer", "eegnet_transformer", "mlp"])
@pytest.mark.parametrize("dropout", [None, 0.2])
def test_no_in_place_op_on_a_view_in_the_training_graph(name, dropout):
    """An in-place op on a view makes autograd rebuild the whole base tensor in backward (CopySlices:
    a zero-filled full-size gradient and two copies per op, measurable at reference size)."""
    hyper = {} if dropout is None or name == "mlp" else {"dropout": dropout}
    model = build_model(name, preset="small", **hyper)
    for mode in (model.train, model.eval):  # eval with gradients on: e.g. saliency maps
        mode()
        names = _autograd_node_names(model(torch.randn(2, 128, 440)))
        assert not names & {"CopySlices", "AsStridedBackward0"}, f"{name} ({'train' if model.training else 'eval'})"


@pytest.mark.parametrize("transposed", [True, False])
@pytest.mark.parametrize("bias_rows", [None, 1, 4])
def test_row_blocked_matmul_is_the_matmul(monkeypatch, transposed, bias_rows):
    """matmul_rows in row blocks equals x @ W (+ bias, per row or per position in a period) in value and gradient."""
    from eegalign.models import layers

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
