"""from_seed_state_dict: the seed's three networks (keys and shapes of shared/spec/seed-state-dicts.md) become
eegalign encoders computing the same function in eval mode (tests/seed_reference.py holds the seed side)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_reference import EEGEncoder, EEGNetTransformerToText, NervFormerV2  # noqa: E402

from eegalign.errors import ConfigError  # noqa: E402
from eegalign.models import count_parameters, from_seed_state_dict  # noqa: E402

# the seed's constructor arguments and its state dicts' entry and parameter counts (seed-state-dicts.md)
FULL = {
    "nervformer": (NervFormerV2, {}, 87, 20_765_424),
    "eegnet_transformer": (EEGNetTransformerToText, {}, 378, 63_257_104),
    "eegformer": (EEGEncoder, {}, 58, 91_771_961),
}
# the same layouts at smaller sizes, for fast function checks
SMALL = {
    "nervformer": (NervFormerV2, dict(num_channels=16, sequence_length=120, d_model=32, dim_ff=64, num_layers=2,
                                      filters=40, hidden=64, feat=48, out_dim=24)),
    "eegnet_transformer": (EEGNetTransformerToText, dict(chans=16, samples=440, transformer_dim=32, F1=8, D=2, F2=16,
                                                          n_heads=4, n_layers=2, tokens=7, token_dim=12, head_hidden=16)),
    "eegformer": (EEGEncoder, dict(input_shape=(4, 16, 120), hidden_dim=6, depth_dim=3, kernel_size=7, num_heads=2,
                                   num_blocks=2, out_dim=24, head_mult=5)),
}


def _randomised(net: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """The network's state dict with every tensor random (BatchNorm variances positive, the fixed
    positional-encoding tables and counters kept), loaded back into the network."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in net.state_dict().items():
        if k.endswith(".pe") or not v.is_floating_point():
            sd[k] = v.clone()
        elif k.endswith("running_var"):
            sd[k] = torch.rand(v.shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(v.shape, generator=g) * (0.5 if v.dim() < 2 else 1.0 / max(1, v[0].numel()) ** 0.5)
    net.load_state_dict(sd, strict=True)
    return sd


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("name", sorted(FULL))
def test_seed_reference_has_the_listed_layout(name):
    cls, kwargs, entries, params = FULL[name]
    with torch.device("meta"):
        net = cls(**kwargs)
    assert len(net.state_dict()) == entries
    assert sum(p.numel() for p in net.parameters()) == params


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("lightning", [False, True])
def test_converted_network_computes_the_seed_function(name, lightning):
    cls, kwargs = SMALL[name]
    torch.manual_seed(0)
    seed_net = cls(**kwargs)
    sd = _randomised(seed_net)
    if lightning:  # a seed Lightning checkpoint: keys under "state_dict", prefixed with "model."
        sd = {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 3}
    seed_net.eval()
    ours = from_seed_state_dict(name, sd, n_heads=kwargs.get("n_heads"), n_times=kwargs.get("samples", 440))
    assert not ours.training
    x = torch.randn(3, ours.n_chans, ours.n_times)
    with torch.no_grad():
        a, b = ours(x), seed_net(x)
    assert a.shape == b.shape
    assert _rel(a, b) <= 1e-4


def test_batchnorm_statistics_and_heads_are_carried_over():
    cls, kwargs = SMALL["eegnet_transformer"]
    seed_net = cls(**kwargs)
    sd = _randomised(seed_net, seed=1)
    ours = from_seed_state_dict("EEGNetTransformerToText", sd)
    assert torch.equal(ours.front.bn1.running_var, sd["bn1.running_var"])
    assert torch.equal(ours.bn3.running_mean, sd["bn3.running_mean"])
    assert int(ours.bn2.num_batches_tracked) == int(sd["bn2.num_batches_tracked"])
    assert ours.head_w1.shape == (7, 16, 32)
    for i in (0, 6):
        assert torch.equal(ours.head_w2[i], sd[f"token_projection.{i}.3.weight"])
        assert torch.equal(ours.head_b1[i], sd[f"token_projection.{i}.0.bias"])


def test_full_size_nervformer_and_text_network_convert(tmp_path):
    """The seed's real sizes: every listed key lands, parameter counts agree (eval outputs compared for NervFormer)."""
    torch.manual_seed(0)
    seed_net = NervFormerV2()
    sd = _randomised(seed_net)
    ours = from_seed_state_dict("nervformer", {f"model.{k}": v for k, v in sd.items()})
    assert count_parameters(ours) == 20_765_424
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        assert _rel(ours(x), seed_net.eval()(x)) <= 1e-4
    text = EEGNetTransformerToText()
    ours = from_seed_state_dict("eegnet_transformer", _randomised(text))
    assert count_parameters(ours) == 63_257_104 and ours.out_shape == (77, 768)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_outputs_agree(name):
    cls, kwargs, _, params = FULL[name]
    torch.manual_seed(0)
    seed_net = cls(**kwargs)
    ours = from_seed_state_dict(name, _randomised(seed_net))
    assert count_parameters(ours) == params
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        assert _rel(ours(x), seed_net.eval()(x)) <= 1e-4


def test_bad_input_is_one_config_error():
    with pytest.raises(ConfigError, match="no seed network"):
        from_seed_state_dict("resnet", {})
    cls, kwargs = SMALL["nervformer"]
    sd = _randomised(cls(**kwargs))
    with pytest.raises(ConfigError, match="not in the seed layout"):
        from_seed_state_dict("nervformer", {**sd, "extra.weight": torch.zeros(1)})
    with pytest.raises(ConfigError, match="missing"):
        from_seed_state_dict("eegformer", sd)
    bad = dict(sd)
    bad["attention_model.pos_encoder.pe"] = torch.zeros_like(bad["attention_model.pos_encoder.pe"])
    with pytest.raises(ConfigError, match="positional encoding"):
        from_seed_state_dict("nervformer", bad)
