"""The constructor contract every encoder follows.

``Encoder(n_chans=128, n_times=440, out_shape=(1024,), preset=None, <typed keyword args>)``:
hyperparameters default to ``None`` = "take it from the preset"; explicit values override the
preset. Subclasses pass them on as ``super().__init__(..., preset, hyper={"n_filters": n_filters, ...})``;
no constructor takes ``**kwargs``, so ``eegalign fit --help`` lists every hyperparameter. Every
encoder maps ``(B, n_chans, n_times) -> (B, *out_shape)``, so it works on any montage (e.g. 63 x 250).
:func:`encoder_config` returns plain JSON that rebuilds the same network with
``eegalign.models.build_model(**config)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import nn

from eegalign.errors import ConfigError


class EncoderBase(nn.Module):
    """Base class: resolves presets and records the resolved configuration."""

    name: ClassVar[str] = ""
    #: preset name -> complete hyperparameter dict
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    default_preset: ClassVar[str] = "reference"
    #: target routes the network was designed for ("image": (1024,), "text": (77, 768))
    routes: ClassVar[tuple[str, ...]] = ("image",)
    default_out_shape: ClassVar[tuple[int, ...]] = (1024,)

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = None,
        preset: str | None = None,
        hyper: Mapping[str, Any] | None = None,
    ) -> None:
        """``hyper``: the subclass's explicit keyword arguments (None = from the preset)."""
        super().__init__()
        hyper = dict(hyper or {})
        preset = preset or self.default_preset
        if preset not in self.presets:
            raise ConfigError(f"model {self.name!r} has no preset {preset!r}; choose one of {sorted(self.presets)}")
        base = self.presets[preset]
        unknown = sorted(set(hyper) - set(base))
        if unknown:
            raise ConfigError(f"model {self.name!r} has no option(s) {unknown}; known: {sorted(base)}")
        self.hyper: dict[str, Any] = {k: (hyper[k] if hyper.get(k) is not None else v) for k, v in base.items()}
        self.preset = preset
        self.n_chans, self.n_times = int(n_chans), int(n_times)
        self.out_shape: tuple[int, ...] = tuple(int(s) for s in (out_shape or self.default_out_shape))
        if not 1 <= len(self.out_shape) <= 2 or min(self.out_shape) < 1:
            raise ConfigError(f"out_shape must be (D,) or (tokens, D), got {list(self.out_shape)}")
        if self.n_chans < 1 or self.n_times < 1:
            raise ConfigError(f"n_chans and n_times must be positive, got {self.n_chans} x {self.n_times}")

    @property
    def out_features(self) -> int:
        return math.prod(self.out_shape)


def encoder_config(model: nn.Module) -> dict[str, Any]:
    """Plain-JSON configuration such that ``build_model(**encoder_config(model))`` rebuilds ``model``."""
    if not isinstance(model, EncoderBase):
        raise ConfigError(f"{type(model).__name__} is not an eegalign encoder")
    return {
        "name": model.name,
        "preset": model.preset,
        "n_chans": model.n_chans,
        "n_times": model.n_times,
        "out_shape": list(model.out_shape),
        **model.hyper,
    }


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())
