"""Baselines: an MLP, braindecode backbones with a projection head, and closed-form ridge regression.

- :class:`MLPEncoder`: time-binned channel means -> Linear -> GELU -> Dropout -> Linear.
- :class:`BraindecodeEncoder` subclasses wrap braindecode's EEGNetv4 (Lawhern et al. 2018),
  ShallowFBCSPNet (Schirrmeister et al. 2017), EEGConformer (Song et al. 2023) and ATCNet
  (Altaheri et al. 2023): the backbone's classification layer is built with ``d_features`` outputs
  (no softmax) and followed by a projection head GELU -> Dropout -> Linear(d_features, prod(out_shape)).
  braindecode is imported only when such a model is built.
- :func:`fit_ridge`: ridge regression from time-binned channel means to the targets, the
  regularisation chosen on the validation split from a log grid; one SVD of the centred,
  standardised training features serves every alpha.

All encoders: (B, n_chans, n_times) -> (B, *out_shape).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from eegalign.errors import ConfigError, EEGAlignError
from eegalign.models.base import EncoderBase

BRAINDECODE_HINT = "braindecode is missing or cannot be imported; install it with: pip install 'eegalign[baselines]'"


def _bin_means(x: torch.Tensor, bins: int) -> torch.Tensor:
    """(B, C, T) -> (B, C * bins): the mean of each channel over ``bins`` equal time windows."""
    return F.adaptive_avg_pool1d(x, bins).flatten(1)


class MLPEncoder(EncoderBase):
    """Two-layer MLP on time-binned channel means: (B, C, T) -> (B, C*bins) -> (B, *out_shape).

    Args:
        n_chans: EEG channels C.
        n_times: samples per trial T.
        out_shape: target shape, ``(1024,)`` or ``(77, 768)``.
        preset: ``reference`` or ``small``.
        bins: equal time windows whose channel means are the features (reference 22; None: from the preset).
        d_hidden: hidden width (reference 1024; None: from the preset).
        dropout: dropout after the hidden layer (reference 0.5; None: from the preset).
    """

    name = "mlp"
    routes = ("image", "text")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(bins=22, d_hidden=1024, dropout=0.5),
        "small": dict(bins=11, d_hidden=256, dropout=0.3),
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        *,
        bins: int | None = None,
        d_hidden: int | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper=dict(bins=bins, d_hidden=d_hidden, dropout=dropout))
        h = self.hyper
        self.bins = min(h["bins"], self.n_times)
        self.net = nn.Sequential(
            nn.Linear(self.n_chans * self.bins, h["d_hidden"]), nn.GELU(), nn.Dropout(h["dropout"]),
            nn.Linear(h["d_hidden"], self.out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(_bin_means(x, self.bins)).view(x.shape[0], *self.out_shape)


def _import_braindecode_models():
    try:
        import braindecode.models as bd
    except Exception as e:  # ImportError, or a broken torchaudio extension (OSError/RuntimeError)
        raise EEGAlignError(BRAINDECODE_HINT) from e
    return bd


class BraindecodeEncoder(EncoderBase):
    """A braindecode backbone whose classifier outputs ``d_features`` features, then a projection head."""

    routes = ("image", "text")
    #: class names to try, newest API first (braindecode 1.x renamed EEGNetv4 to EEGNet)
    class_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        hyper: Mapping[str, Any] | None = None,
    ) -> None:
        """Subclasses name their hyperparameters and pass them on as ``hyper``."""
        super().__init__(n_chans, n_times, out_shape, preset, hyper=hyper)
        h = self.hyper
        bd = _import_braindecode_models()
        cls = next((getattr(bd, n) for n in self.class_names if hasattr(bd, n)), None)
        if cls is None:
            raise EEGAlignError(f"this braindecode version has none of {list(self.class_names)}; {BRAINDECODE_HINT}")
        kwargs = dict(n_chans=self.n_chans, n_outputs=h["d_features"], n_times=self.n_times, **self._backbone_kwargs())
        params = inspect.signature(cls.__init__).parameters
        if "add_log_softmax" in params:
            kwargs["add_log_softmax"] = False
        kwargs = {k: v for k, v in kwargs.items() if k in params or any(p.kind == p.VAR_KEYWORD for p in params.values())}
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.backbone = cls(**kwargs)
        for name, mod in list(self.backbone.named_modules()):  # drop any (log-)softmax left at the end
            if isinstance(mod, (nn.LogSoftmax, nn.Softmax)) and name:
                parent = self.backbone.get_submodule(name.rsplit(".", 1)[0]) if "." in name else self.backbone
                setattr(parent, name.rsplit(".", 1)[-1], nn.Identity())
        self.head = nn.Sequential(nn.GELU(), nn.Dropout(h["dropout"]), nn.Linear(h["d_features"], self.out_features))

    def _backbone_kwargs(self) -> dict[str, Any]:
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.backbone(x).reshape(x.shape[0], -1)  # (B, d_features)
        return self.head(f).view(x.shape[0], *self.out_shape)


class BraindecodeEEGNet(BraindecodeEncoder):
    """braindecode EEGNetv4 (Lawhern et al. 2018, J. Neural Eng.) + projection head.

    Args:
        n_chans: EEG channels C.
        n_times: samples per trial T.
        out_shape: target shape, ``(1024,)`` or ``(77, 768)``.
        preset: ``reference`` or ``small``.
        d_features: outputs of the backbone's classification layer (reference 256; None: from the preset).
        dropout: dropout before the projection head's Linear (None: from the preset).
        n_filters: temporal filters F1 (reference 8; None: from the preset).
        depth_multiplier: spatial filters per temporal filter D (reference 2; None: from the preset).
        kernel_size: temporal convolution length in samples (reference 64; None: from the preset).
    """

    name = "braindecode_eegnet"
    class_names = ("EEGNetv4", "EEGNet")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(d_features=256, dropout=0.25, n_filters=8, depth_multiplier=2, kernel_size=64),
        "small": dict(d_features=64, dropout=0.25, n_filters=4, depth_multiplier=2, kernel_size=32),
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        *,
        d_features: int | None = None,
        dropout: float | None = None,
        n_filters: int | None = None,
        depth_multiplier: int | None = None,
        kernel_size: int | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper=dict(
            d_features=d_features, dropout=dropout, n_filters=n_filters, depth_multiplier=depth_multiplier, kernel_size=kernel_size,
        ))

    def _backbone_kwargs(self) -> dict[str, Any]:
        h = self.hyper
        f1, d = h["n_filters"], h["depth_multiplier"]
        return dict(F1=f1, D=d, F2=f1 * d, kernel_length=h["kernel_size"])


class BraindecodeShallow(BraindecodeEncoder):
    """braindecode ShallowFBCSPNet (Schirrmeister et al. 2017, Hum. Brain Mapp.) + projection head.

    Args:
        n_chans: EEG channels C.
        n_times: samples per trial T.
        out_shape: target shape, ``(1024,)`` or ``(77, 768)``.
        preset: ``reference`` or ``small``.
        d_features: outputs of the backbone's classification layer (reference 256; None: from the preset).
        dropout: dropout before the projection head's Linear (None: from the preset).
        n_filters: temporal and spatial filters (reference 40; None: from the preset).
    """

    name = "braindecode_shallow"
    class_names = ("ShallowFBCSPNet",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(d_features=256, dropout=0.5, n_filters=40),
        "small": dict(d_features=64, dropout=0.5, n_filters=16),
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        *,
        d_features: int | None = None,
        dropout: float | None = None,
        n_filters: int | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper=dict(
            d_features=d_features, dropout=dropout, n_filters=n_filters,
        ))

    def _backbone_kwargs(self) -> dict[str, Any]:
        n = self.hyper["n_filters"]
        return dict(n_filters_time=n, n_filters_spat=n, final_conv_length="auto")


class BraindecodeConformer(BraindecodeEncoder):
    """braindecode EEGConformer (Song et al. 2023, IEEE TNSRE) + projection head.

    Args:
        n_chans: EEG channels C.
        n_times: samples per trial T.
        out_shape: target shape, ``(1024,)`` or ``(77, 768)``.
        preset: ``reference`` or ``small``.
        d_features: outputs of the backbone's classification layer (reference 256; None: from the preset).
        dropout: dropout before the projection head's Linear (None: from the preset).
        n_layers: transformer layers (braindecode's ``att_depth``; reference 6; None: from the preset).
        n_heads: attention heads (braindecode's ``att_heads``; reference 10; None: from the preset).
    """

    name = "braindecode_conformer"
    class_names = ("EEGConformer",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(d_features=256, dropout=0.5, n_layers=6, n_heads=10),
        "small": dict(d_features=64, dropout=0.5, n_layers=1, n_heads=4),
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        *,
        d_features: int | None = None,
        dropout: float | None = None,
        n_layers: int | None = None,
        n_heads: int | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper=dict(
            d_features=d_features, dropout=dropout, n_layers=n_layers, n_heads=n_heads,
        ))

    def _backbone_kwargs(self) -> dict[str, Any]:
        return dict(att_depth=self.hyper["n_layers"], att_heads=self.hyper["n_heads"], final_fc_length="auto")


#: braindecode ATCNet's two average pools in time (its defaults, which eegalign keeps): 8 x 7 samples
ATCNET_POOL = 8 * 7


class BraindecodeATCNet(BraindecodeEncoder):
    """braindecode ATCNet (Altaheri et al. 2023, IEEE TII) + projection head.

    Args:
        n_chans: EEG channels C.
        n_times: samples per trial T.
        out_shape: target shape, ``(1024,)`` or ``(77, 768)``.
        preset: ``reference`` or ``small``.
        d_features: outputs of the backbone's classification layer (reference 256; None: from the preset).
        dropout: dropout before the projection head's Linear (None: from the preset).
        n_windows: sliding windows of the attention blocks, at most ``n_times // 56`` (reference 5;
            None: from the preset).
        sfreq: sampling rate in Hz the backbone assumes (reference 1000; None: from the preset).
    """

    name = "braindecode_atcnet"
    class_names = ("ATCNet",)
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "reference": dict(d_features=256, dropout=0.3, n_windows=5, sfreq=1000.0),
        "small": dict(d_features=64, dropout=0.3, n_windows=1, sfreq=1000.0),  # 1 window: runs on 100 samples
    }

    def __init__(
        self,
        n_chans: int = 128,
        n_times: int = 440,
        out_shape: Sequence[int] | None = (1024,),
        preset: str | None = None,
        *,
        d_features: int | None = None,
        dropout: float | None = None,
        n_windows: int | None = None,
        sfreq: float | None = None,
    ) -> None:
        super().__init__(n_chans, n_times, out_shape, preset, hyper=dict(
            d_features=d_features, dropout=dropout, n_windows=n_windows, sfreq=sfreq,
        ))

    def _backbone_kwargs(self) -> dict[str, Any]:
        h = self.hyper
        steps = self.n_times // ATCNET_POOL  # time steps after braindecode's convolution block
        if not 1 <= h["n_windows"] <= steps:
            raise ConfigError(
                f"braindecode_atcnet: {self.n_times} samples give {steps} time step(s) after the convolution block "
                f"(n_times // {ATCNET_POOL}); n_windows must be at least 1 and at most {steps}, got {h['n_windows']}"
            )
        return dict(n_windows=h["n_windows"], sfreq=h["sfreq"], input_window_seconds=self.n_times / h["sfreq"])


# --------------------------------------------------------------------------------------------
# Ridge regression (closed form)
# --------------------------------------------------------------------------------------------

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))


def ridge_features(eeg: np.ndarray, bins: int = 11, chunk: int = 512) -> np.ndarray:
    """(N, C, T) array or memmap -> (N, C*bins) float64 time-binned channel means, read in chunks."""
    n, c, t = eeg.shape
    if bins < 1:
        raise ConfigError(f"--bins must be at least 1, got {bins}")
    bins = min(bins, t)
    edges = np.linspace(0, t, bins + 1).round().astype(int)
    out = np.empty((n, c * bins), dtype=np.float64)
    for s in range(0, n, chunk):
        x = np.asarray(eeg[s : s + chunk], dtype=np.float64)  # (n_chunk, C, T)
        feats = np.stack([x[..., a:b].mean(-1) for a, b in zip(edges[:-1], edges[1:])], -1)  # (n_chunk, C, bins)
        out[s : s + chunk] = feats.reshape(len(x), -1)
    return out


@dataclass
class RidgeModel:
    """A fitted ridge map: ``y = ((x - x_mean) / x_scale) @ coef + y_mean``, on flattened targets."""

    alpha: float
    coef: np.ndarray  # (P, D)
    x_mean: np.ndarray  # (P,)
    x_scale: np.ndarray  # (P,)
    y_mean: np.ndarray  # (D,)
    target_shape: tuple[int, ...]
    curve: list[dict[str, float]] = field(default_factory=list)  # validation score of every alpha

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.x_mean) / self.x_scale
        return (z @ self.coef + self.y_mean).reshape(len(x), *self.target_shape).astype(np.float32)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12
    return float((num / den).mean())


def fit_ridge(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    alphas: tuple[float, ...] | list[float] = DEFAULT_ALPHAS,
) -> RidgeModel:
    """Fit ridge on train for every alpha (one SVD) and keep the alpha with the lowest validation MSE.

    x_*: (N, P) features; y_*: (N, *target_shape). Features are standardised and targets centred
    with training statistics only. The returned coefficients are fitted on the training split only.
    """
    if len(alphas) == 0 or not all(np.isfinite(float(a)) and float(a) > 0 for a in alphas):
        raise ConfigError(f"ridge alphas must be a non-empty list of positive, finite numbers, got {list(alphas)}")
    if len(x_train) < 2 or len(x_val) < 1:
        raise EEGAlignError("ridge needs at least 2 training and 1 validation trials")
    shape = tuple(y_train.shape[1:])
    yt = y_train.reshape(len(y_train), -1).astype(np.float64)
    yv = y_val.reshape(len(y_val), -1).astype(np.float64)
    x_mean = x_train.mean(0)
    x_scale = x_train.std(0)
    x_scale[x_scale < 1e-12] = 1.0
    y_mean = yt.mean(0)
    xt = (x_train - x_mean) / x_scale
    xv = (x_val - x_mean) / x_scale
    u, s, vt = np.linalg.svd(xt, full_matrices=False)  # xt = U diag(s) Vt, once for all alphas
    uty = u.T @ (yt - y_mean)  # (k, D)
    xv_v = xv @ vt.T  # (Nv, k)
    curve, best = [], None
    for a in sorted(float(a) for a in alphas):
        f = s / (s * s + a)  # (k,) shrunk inverse singular values
        pred = (xv_v * f) @ uty + y_mean  # (Nv, D)
        mse = float(((pred - yv) ** 2).mean())
        curve.append({"alpha": a, "val_mse": mse, "val_cosine": _cosine(pred, yv)})
        if best is None or mse < best[1]:
            best = (a, mse)
    alpha = best[0]
    coef = vt.T @ ((s / (s * s + alpha))[:, None] * uty)  # (P, D)
    return RidgeModel(alpha, coef, x_mean, x_scale, y_mean, shape, curve)
