"""The encoder registry: contract, shapes, gradients, determinism, other montages, parameter counts,
and the constructor convention (typed, documented hyperparameters; one vocabulary; no **kwargs)."""

from __future__ import annotations

import inspect
import json
import sys

import pytest
import torch

from eegalign.errors import ConfigError, EEGAlignError
from eegalign.models import build_model, count_parameters, encoder_config, list_models, model_class

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


#: THINGS-EEG montages (issue #15): the official 17 x 100 and the 63 x 250 of the NICE paper
THINGS_MONTAGES = [(17, 100), (63, 250)]


@pytest.mark.parametrize("montage", THINGS_MONTAGES, ids=lambda m: f"{m[0]}x{m[1]}")
@pytest.mark.parametrize("name", sorted(CASES))
def test_things_montages_and_other_output_shape(name, montage):
    """Every registered encoder trains on both THINGS montages: each route's targets and an odd shape."""
    torch.manual_seed(0)
    n_chans, n_times = montage
    odd = (5, 12) if "text" in model_class(name).routes else (48,)
    for out_shape in (*_shapes(name), odd):
        model = build_model(name, n_chans=n_chans, n_times=n_times, out_shape=out_shape, **CASES[name]).train()
        y = model(torch.randn(2, n_chans, n_times))
        assert y.shape == (2, *out_shape)
        assert torch.isfinite(y).all()
        y.square().mean().backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), f"{name} {montage} {out_shape}"


def test_atcnet_too_short_for_its_windows_is_one_line_error():
    with pytest.raises(ConfigError, match=r"n_windows must be at least 1 and at most 1, got 5"):
        build_model("braindecode_atcnet", preset="reference", n_chans=17, n_times=100)


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
    m = build_model("mlp", preset="small", d_hidden=8)
    assert m.hyper["d_hidden"] == 8 and encoder_config(m)["d_hidden"] == 8
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
# The constructor convention
# ---------------------------------------------------------------------------------------------

#: names that drifted between models before (left) and the one spelling used now (right)
RETIRED = {"num_heads": "n_heads", "nhead": "n_heads", "num_layers": "n_layers", "num_blocks": "n_layers",
           "kernel": "kernel_size", "kern_length": "kernel_size", "kernel_length": "kernel_size",
           "dim_feedforward": "d_hidden", "hidden": "d_hidden", "feat_dim": "d_features", "transformer_dim": "d_model",
           "depth_filters": "n_filters", "filters": "n_filters", "hidden_dim": "n_segments", "F1": "n_filters",
           "D": "depth_multiplier", "F2": "n_filters_sep", "att_depth": "n_layers", "att_heads": "n_heads"}
CONTRACT = ("self", "n_chans", "n_times", "out_shape", "preset")


@pytest.mark.parametrize("name", sorted(CASES))
def test_constructor_names_types_and_documents_every_hyperparameter(name):
    cls = model_class(name)
    params = inspect.signature(cls.__init__).parameters
    assert tuple(params)[: len(CONTRACT)] == CONTRACT
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params.values()), f"{name} takes *args/**kwargs"
    hyper = [n for n in params if n not in CONTRACT]
    for preset, values in cls.presets.items():  # every preset is a complete set of the named hyperparameters
        assert sorted(values) == sorted(hyper), f"{name} preset {preset!r}"
    doc = inspect.getdoc(cls) or ""
    for n in hyper:
        p = params[n]
        assert p.kind == p.KEYWORD_ONLY and p.default is None, f"{name}.{n}: keyword-only, None = from the preset"
        assert p.annotation is not inspect.Parameter.empty, f"{name}.{n} has no type"
        assert f"\n    {n}: " in doc, f"{name}.{n} has no docstring line"
        assert n not in RETIRED, f"{name}.{n}: use {RETIRED[n]!r}"
        assert n == n.lower(), f"{name}.{n}: lower_snake_case"


def test_hyperparameters_reach_the_network():
    m = build_model("nervformer", preset="small", n_heads=8, d_model=64, n_layers=2)
    assert len(m.encoder) == 2 and m.encoder[0].self_attn.n_heads == 8 and m.embed.out_features == 64
    m = build_model("eegnet_transformer", preset="small", kernel_size=9, d_head_hidden=32)
    assert m.front.conv_t.kernel_size == (1, 9) and m.head_w1.shape[1] == 32
    m = build_model("eegformer", preset="small", n_layers=2, n_filters=3)
    assert len(m.regional.blocks) == 2 and m.conv3.out_channels == 128 * 3


def test_eegnet_transformer_heads_are_one_stacked_parameter_each():
    """The checkpoint layout depends on no performance constant: head i is slice i of four tensors."""
    m = build_model("eegnet_transformer", preset="reference")
    heads = {k: tuple(v.shape) for k, v in m.state_dict().items() if k.startswith("head_")}
    assert heads == {"head_w1": (77, 512, 512), "head_b1": (77, 512), "head_w2": (77, 768, 512), "head_b2": (77, 768)}
    small = build_model("eegnet_transformer", preset="small", out_shape=(5, 12), dropout=0.0).eval()
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        y = small(x)
        # token 3 computed alone through its own two Linears
        z = small.encoder(small.pos(small.proj(small.drop2(small.pool2(torch.nn.functional.elu(small.bn3(small.sep_pw(
            small.sep_dw(small.drop1(small.pool1(torch.nn.functional.elu(small.bn2(small.front(x))))))))))).flatten(2).transpose(1, 2))))
        z = torch.nn.functional.interpolate(z.transpose(1, 2), size=5, mode="linear", align_corners=False)[:, :, 3]
        h = torch.nn.functional.gelu(z @ small.head_w1[3].T + small.head_b1[3])
        assert torch.allclose(y[:, 3], h @ small.head_w2[3].T + small.head_b2[3], atol=1e-5)


def test_eegnet_transformer_loads_checkpoints_with_grouped_heads():
    """Earlier eegalign checkpoints stored the heads in groups of tokens (head_w1.0, head_w1.1, ...)."""
    m = build_model("eegnet_transformer", preset="small", out_shape=(5, 12))
    old = {k: v for k, v in m.state_dict().items() if not k.startswith("head_")}
    for name in ("head_w1", "head_b1", "head_w2", "head_b2"):
        for g, part in enumerate(m.state_dict()[name].split(2)):  # groups of 2, 2, 1 tokens
            old[f"{name}.{g}"] = part
    fresh = build_model("eegnet_transformer", preset="small", out_shape=(5, 12))
    fresh.load_state_dict(old, strict=True)
    assert torch.equal(fresh.head_w2, m.head_w2) and torch.equal(fresh.head_b1, m.head_b1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_reference_forward(name):
    torch.manual_seed(0)
    model = build_model(name, preset="reference").eval()
    with torch.no_grad():
        y = model(torch.randn(2, 128, 440))
    assert y.shape == (2, *model.out_shape) and torch.isfinite(y).all()
