"""Name -> encoder class; :func:`list_models` and :func:`build_model`."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from eegalign.errors import ConfigError
from eegalign.models.base import EncoderBase
from eegalign.models.baselines import (
    BraindecodeATCNet,
    BraindecodeConformer,
    BraindecodeEEGNet,
    BraindecodeShallow,
    MLPEncoder,
)
from eegalign.models.eegformer import EEGFormer
from eegalign.models.eegnet_transformer import EEGNetTransformer
from eegalign.models.nervformer import NervFormer
from eegalign.models.nice import NICE

_REGISTRY: dict[str, type[EncoderBase]] = {
    cls.name: cls
    for cls in (
        EEGFormer,
        NervFormer,
        EEGNetTransformer,
        NICE,
        MLPEncoder,
        BraindecodeEEGNet,
        BraindecodeShallow,
        BraindecodeConformer,
        BraindecodeATCNet,
    )
}


def list_models() -> list[str]:
    """Names of the registered encoders (nn.Modules; the closed-form ridge baseline is not one)."""
    return list(_REGISTRY)


def model_class(name: str) -> type[EncoderBase]:
    """The encoder class registered under ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}") from None


#: hyperparameter names of configs written before the names were unified (checkpoints keep
#: loading): old name -> new name, or None for a retired switch whose job moved to
#: :func:`eegalign.models.use_cpu_kernels`.
_RENAMED: dict[str, dict[str, str | None]] = {
    "eegformer": {"hidden_dim": "n_segments", "depth_filters": "n_filters", "num_heads": "n_heads",
                  "num_blocks": "n_layers", "temporal_heads": "n_temporal_heads"},
    "nervformer": {"nhead": "n_heads", "num_layers": "n_layers", "dim_feedforward": "d_hidden", "filters": "n_filters",
                   "kernel": "kernel_size", "pool": "pool_size", "branch_heads": "n_branch_heads",
                   "cross_heads": "n_cross_heads", "hidden": "d_mlp", "feat_dim": "d_features", "fast_conv": None},
    "eegnet_transformer": {"F1": "n_filters", "D": "depth_multiplier", "F2": "n_filters_sep",
                           "kern_length": "kernel_size", "pool1": "pool_size_1", "pool2": "pool_size_2",
                           "sep_kernel": "sep_kernel_size", "transformer_dim": "d_model",
                           "dim_feedforward": "d_hidden", "head_hidden": "d_head_hidden", "fast_frontend": None},
    "mlp": {"hidden": "d_hidden"},
    "braindecode_eegnet": {"feat_dim": "d_features", "F1": "n_filters", "D": "depth_multiplier",
                           "kernel_length": "kernel_size"},
    "braindecode_shallow": {"feat_dim": "d_features"},
    "braindecode_conformer": {"feat_dim": "d_features", "att_depth": "n_layers", "att_heads": "n_heads"},
    "braindecode_atcnet": {"feat_dim": "d_features"},
}


def build_model(name: str, preset: str | None = None, **options: Any) -> nn.Module:
    """Build encoder ``name``: ``options`` are ``n_chans``, ``n_times``, ``out_shape`` and the model's hyperparameters.

    Unknown options raise one :class:`ConfigError` line; hyperparameter names of older configs are
    translated (see ``_RENAMED``).
    """
    cls = model_class(name)
    for old, new in _RENAMED.get(name, {}).items():
        if old in options:
            value = options.pop(old)
            if new is not None and options.get(new) is None:
                options[new] = value
    known = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"model {name!r} has no option(s) {unknown}; known: {sorted(known - {'preset'})}")
    return cls(preset=preset, **options)
