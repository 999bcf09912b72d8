"""Import the seed's trained networks: :func:`from_seed_state_dict` (seed key layout -> eegalign encoder).

The seed (the reference notebook) trains ``NervFormerV2``, ``EEGNetTransformerToText`` and
``EEGEncoder`` (EEGformer) inside a LightningModule that holds the network as ``self.model``, so
its Lightning checkpoints prefix every key with ``model.``; both that and the bare network
state dict are accepted. Keys and shapes: ``shared/spec/seed-state-dicts.md`` of the project.

The conversion is a renaming (plus stacking the 77 per-token heads into one tensor each), so in
eval mode the converted encoder computes the seed network's function; sizes (channels, samples,
filters, layers, output width) are read from the weights' shapes. Attention head counts cannot
be read from weights: the seed's (reference preset) are used unless given.

Assumptions where the seed's layout leaves a choice open (documented in docs/models.md):
EEGformer's ``LN_D`` is the norm before attention and ``LN_z`` the one before the MLP; the
learned mixing matrices ``M`` act as ``x @ M``; NervFormer's ``norm1``/``norm2``/``norm3``
follow the branches ``ts``/``st``/cross-attention; tokens are concatenated ``ts`` first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from eegalign.errors import ConfigError
from eegalign.models.layers import sinusoidal_encoding
from eegalign.models.registry import build_model

#: seed class name -> eegalign model name
SEED_NETWORKS = {"NervFormerV2": "nervformer", "EEGNetTransformerToText": "eegnet_transformer", "EEGEncoder": "eegformer"}

_NERVFORMER_RENAMES = [  # (seed prefix, eegalign prefix), first match wins
    ("attention_model.input_projection.", "embed."),
    ("attention_model.encoder_layer.", "encoder_layer."),
    ("attention_model.transformer_encoder.layers.", "encoder."),
    ("attention_model.output_projection.", "unembed."),
    ("linear.", "time_mix."),
    ("enc_eeg.tsconv.0.", "branch_ts.conv_a.conv."),
    ("enc_eeg.tsconv.2.", "branch_ts.bn_a."),
    ("enc_eeg.tsconv.4.", "branch_ts.conv_b."),
    ("enc_eeg.tsconv.5.", "branch_ts.bn_b."),
    ("enc_eeg.stconv.0.", "branch_st.conv_a."),
    ("enc_eeg.stconv.1.", "branch_st.bn_a."),
    ("enc_eeg.stconv.3.", "branch_st.conv_b.conv."),
    ("enc_eeg.stconv.5.", "branch_st.bn_b."),
    ("enc_eeg.self_attn_ts.", "branch_ts.attn."),
    ("enc_eeg.self_attn_st.", "branch_st.attn."),
    ("enc_eeg.cross_attn.", "cross_attn."),
    ("enc_eeg.norm1.", "branch_ts.norm."),
    ("enc_eeg.norm2.", "branch_st.norm."),
    ("enc_eeg.norm3.", "cross_norm."),
    ("enc_eeg.feed_forward.1.", "mlp.0."),
    ("enc_eeg.feed_forward.4.", "mlp.3."),
    ("proj_eeg.0.", "proj_in."),
    ("proj_eeg.1.fn.1.", "proj_res.1."),
    ("proj_eeg.2.", "proj_norm."),
]

_EEGNET_RENAMES = [
    ("conv1.", "front.conv_t."),
    ("bn1.", "front.bn1."),
    ("depthwise_conv.", "front.conv_s."),
    ("bn2.", "bn2."),
    ("separable_conv1.", "sep_dw."),
    ("separable_conv2.", "sep_pw."),
    ("bn3.", "bn3."),
    ("feature_projection.", "proj."),
    ("transformer.layers.", "encoder."),
]

_EEGFORMER_RENAMES = [
    ("CNN.CV_1.", "conv1."),
    ("CNN.CV_2.", "conv2."),
    ("CNN.CV_3.", "conv3."),
    ("pooling.pooling.0.", "pool_score.0."),
    ("pooling.pooling.2.", "pool_score.2."),
    ("final.0.", "head.0."),
    ("final.3.", "head.3."),
    ("final.4.", "norm."),
]
_EEGFORMER_MODULES = {"RTM": "regional", "STM": "synchronous", "TTM": "temporal"}
_EEGFORMER_BLOCK = {"LN_D.": "norm1.", "LN_z.": "norm2.", "MLP.FC_1.": "mlp.0.", "MLP.FC_2.": "mlp.3.", "MHA.": "attn."}


def _bare(obj: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The network's own keys: a Lightning checkpoint's ``model.`` prefix removed (a bare state dict passes as is)."""
    sd = obj["state_dict"] if isinstance(obj.get("state_dict"), Mapping) else obj
    if any(k.startswith("model.") for k in sd):
        return {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    return dict(sd)


def _rename(sd: dict[str, torch.Tensor], table: list[tuple[str, str]]) -> tuple[dict[str, torch.Tensor], list[str]]:
    out, left = {}, []
    for key, value in sd.items():
        for old, new in table:
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            left.append(key)
    return out, left


def _need(sd: Mapping[str, torch.Tensor], key: str, name: str) -> torch.Tensor:
    if key not in sd:
        raise ConfigError(f"this is not a seed {name} state dict: key {key!r} is missing")
    return sd[key]


def _check_pe(pe: torch.Tensor | None, name: str) -> None:
    """The seed's positional-encoding buffer must be the standard sinusoidal table eegalign computes."""
    if pe is None:
        return
    table = pe.reshape(pe.shape[0], -1).float()  # (L, E) (the text network stores (L, 1, E))
    if not torch.allclose(table, sinusoidal_encoding(*table.shape), atol=1e-4):
        raise ConfigError(f"seed {name}: its positional encoding is not the standard sinusoidal table; cannot convert")


def _nervformer(sd: dict[str, torch.Tensor], n_heads: int | None) -> tuple[nn.Module, dict[str, torch.Tensor], list[str]]:
    _check_pe(sd.pop("attention_model.pos_encoder.pe", None), "NervFormerV2")
    d_model, n_chans = _need(sd, "attention_model.input_projection.weight", "NervFormerV2").shape
    n_layers = len({k.split(".")[3] for k in sd if k.startswith("attention_model.transformer_encoder.layers.")})
    model = build_model(
        "nervformer", preset="reference", n_chans=n_chans, n_times=_need(sd, "linear.weight", "NervFormerV2").shape[0],
        out_shape=(_need(sd, "proj_eeg.2.weight", "NervFormerV2").shape[0],), d_model=d_model, n_layers=n_layers,
        n_heads=n_heads, d_hidden=sd["attention_model.encoder_layer.linear1.weight"].shape[0],
        d_mlp=sd["enc_eeg.feed_forward.1.weight"].shape[0], d_features=sd["enc_eeg.feed_forward.4.weight"].shape[0],
        n_filters=sd["enc_eeg.tsconv.0.weight"].shape[0], kernel_size=sd["enc_eeg.tsconv.0.weight"].shape[-1],
    )
    return model, *_rename(sd, _NERVFORMER_RENAMES)


def _eegnet(sd: dict[str, torch.Tensor], n_heads: int | None, n_times: int) -> tuple[nn.Module, dict[str, torch.Tensor], list[str]]:
    _check_pe(sd.pop("pos_encoding.pe", None), "EEGNetTransformerToText")
    heads = sorted({int(k.split(".")[1]) for k in sd if k.startswith("token_projection.")})
    if not heads:
        raise ConfigError("this is not a seed EEGNetTransformerToText state dict: no token_projection.* keys")
    w1 = torch.stack([sd.pop(f"token_projection.{i}.0.weight") for i in heads])  # (77, hid, E)
    b1 = torch.stack([sd.pop(f"token_projection.{i}.0.bias") for i in heads])  # (77, hid)
    w2 = torch.stack([sd.pop(f"token_projection.{i}.3.weight") for i in heads])  # (77, dim, hid)
    b2 = torch.stack([sd.pop(f"token_projection.{i}.3.bias") for i in heads])  # (77, dim)
    conv1, depthwise = _need(sd, "conv1.weight", "EEGNetTransformerToText"), _need(sd, "depthwise_conv.weight", "EEGNetTransformerToText")
    model = build_model(
        "eegnet_transformer", preset="reference", n_chans=depthwise.shape[2], n_times=n_times,
        out_shape=(len(heads), w2.shape[1]), n_filters=conv1.shape[0], depth_multiplier=depthwise.shape[0] // conv1.shape[0],
        n_filters_sep=sd["separable_conv2.weight"].shape[0], kernel_size=conv1.shape[-1],
        sep_kernel_size=sd["separable_conv1.weight"].shape[-1], d_model=sd["feature_projection.weight"].shape[0],
        n_heads=n_heads, n_layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.layers.")}),
        d_hidden=sd["transformer.layers.0.linear1.weight"].shape[0], d_head_hidden=w1.shape[1],
    )
    out, left = _rename(sd, _EEGNET_RENAMES)
    out.update(head_w1=w1, head_b1=b1, head_w2=w2, head_b2=b2)
    return model, out, left


def _eegformer(sd: dict[str, torch.Tensor], n_heads: int | None) -> tuple[nn.Module, dict[str, torch.Tensor], list[str]]:
    conv3, mix = _need(sd, "CNN.CV_3.weight", "EEGEncoder"), _need(sd, "RTM.M", "EEGEncoder")
    n_chans, k, m = sd["CNN.CV_1.weight"].shape[0], conv3.shape[-1], _need(sd, "TTM.e", "EEGEncoder").shape[0]
    model = build_model(
        "eegformer", preset="reference", n_chans=n_chans, n_times=mix.shape[0] + 3 * (k - 1),
        out_shape=(sd["final.3.weight"].shape[0],), n_segments=m, n_filters=conv3.shape[0] // n_chans,
        kernel_size=k, n_heads=n_heads, n_temporal_heads=n_heads,
        n_layers=len({k.split(".")[2] for k in sd if k.startswith("RTM.TFB.")}),
        head_mult=sd["final.0.weight"].shape[0] // m,
    )
    out, left = _rename(sd, _EEGFORMER_RENAMES)
    rest = []
    for key in left:
        mod, _, tail = key.partition(".")
        if mod not in _EEGFORMER_MODULES:
            rest.append(key)
        elif tail in ("M", "e"):
            value = sd[key].unsqueeze(0) if key == "TTM.e" else sd[key]  # (35, 2560) -> (1, 35, 2560)
            out[f"{_EEGFORMER_MODULES[mod]}.{'mix' if tail == 'M' else 'embedding'}"] = value
        elif (hit := re.match(r"TFB\.(\d+)\.(.*)$", tail)) and any(hit[2].startswith(p) for p in _EEGFORMER_BLOCK):
            part = next(p for p in _EEGFORMER_BLOCK if hit[2].startswith(p))
            out[f"{_EEGFORMER_MODULES[mod]}.blocks.{hit[1]}.{_EEGFORMER_BLOCK[part]}{hit[2][len(part):]}"] = sd[key]
        else:
            rest.append(key)
    return model, out, rest


def from_seed_state_dict(
    name: str, state_dict: Mapping[str, torch.Tensor], n_heads: int | None = None, n_times: int = 440
) -> nn.Module:
    """The eegalign encoder holding a seed network's weights, in eval mode.

    Args:
        name: ``nervformer`` / ``NervFormerV2``, ``eegnet_transformer`` / ``EEGNetTransformerToText``
            or ``eegformer`` / ``EEGEncoder``.
        state_dict: the seed network's ``state_dict()``, or a seed Lightning checkpoint's (keys
            prefixed with ``model.``), or the checkpoint dict itself (its ``"state_dict"`` is used).
        n_heads: attention heads, if the seed run changed them (weights do not record them;
            None: the seed's defaults).
        n_times: samples per trial for the text network (its weights do not record it; 440).

    Raises :class:`ConfigError` (one line) for an unknown name or keys/shapes that do not fit.
    """
    name = SEED_NETWORKS.get(name, name)
    sd = _bare(state_dict)
    if name == "nervformer":
        model, converted, left = _nervformer(sd, n_heads)
    elif name == "eegnet_transformer":
        model, converted, left = _eegnet(sd, n_heads, n_times)
    elif name == "eegformer":
        model, converted, left = _eegformer(sd, n_heads)
    else:
        raise ConfigError(f"no seed network {name!r}; choose one of {sorted(SEED_NETWORKS.values())} (or the seed's class names)")
    if left:
        raise ConfigError(f"seed {name}: {len(left)} key(s) not in the seed layout, e.g. {left[0]!r}")
    try:
        model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in converted.items()}, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise ConfigError(f"seed {name}: weights do not fit ({first[1].strip() if len(first) > 1 else first[0]})") from None
    return model.eval()
