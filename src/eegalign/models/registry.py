"""Name -> encoder class; :func:`list_models` and :func:`build_model`."""

from __future__ import annotations

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


def build_model(name: str, preset: str | None = None, **kwargs: Any) -> nn.Module:
    """Build encoder ``name``: kwargs are ``n_chans``, ``n_times``, ``out_shape`` and the model's hyperparameters."""
    return model_class(name)(preset=preset, **kwargs)
