"""Alignment losses between predicted and target CLIP embeddings.

Every loss is an ``nn.Module`` whose ``forward(pred, target)`` returns a dict of named terms
(0-d tensors); ``"loss"`` is the total that is optimised, the other entries are logged as they
are. Shapes: ``pred`` and ``target`` are ``(B, D)`` (image route, D = 1024) or ``(B, S, E)``
(text route, 77 x 768); "per trial" losses flatten the trailing dimensions.

=================  ======================================================  ====================
name               total                                                    used by
=================  ======================================================  ====================
``mse``            mean (pred - target)^2                                   baseline
``cosine``         mean (1 - cos(pred, target))                             baseline
``combined``       w_mse * MSE + w_cos * (1 - cos)                          EEGFormer, NervFormer
``infonce``        symmetric CLIP loss, L2-normalised, learnable 1/T        EEGFormer (contrastive)
``mse_infonce``    w_mse * MSE + w_nce * InfoNCE                            ATM-style hybrid
``token``          lam * token MSE + (1 - lam) * token (1 - cos)            EEGNetTransformer
=================  ======================================================  ====================

The reference's contrastive loss divided *raw* dot products by a fixed temperature; here the
embeddings are L2-normalised first (as in CLIP, Radford et al. 2021) and the inverse
temperature is a learnable parameter initialised at 1/0.07 and clamped to ``max_scale``.
Trials in a batch that share the same target (the same image seen by several subjects or
repeated) are all treated as positives of each other, so they are not pushed apart.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MSELoss",
    "CosineLoss",
    "CombinedLoss",
    "InfoNCELoss",
    "MSEInfoNCELoss",
    "TokenLoss",
    "LOSSES",
    "build_loss",
    "loss_config",
]


def _flat(x: Tensor) -> Tensor:
    """(B, ...) -> (B, F): one row per trial."""
    return x.reshape(x.shape[0], -1)


def _check(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")


class _Loss(nn.Module):
    """Keeps its constructor arguments so that :func:`loss_config` can describe it as plain data."""

    def _remember(self, **kwargs: Any) -> None:
        self._init_args = dict(kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in getattr(self, "_init_args", {}).items())


class MSELoss(_Loss):
    """Mean squared error over all elements."""

    def __init__(self) -> None:
        super().__init__()
        self._remember()

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        _check(pred, target)
        mse = F.mse_loss(pred, target)
        return {"loss": mse, "mse": mse}


class CosineLoss(_Loss):
    """Mean cosine distance ``1 - cos`` between each trial's flattened prediction and target."""

    def __init__(self) -> None:
        super().__init__()
        self._remember()

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        _check(pred, target)
        cos_dist = (1.0 - F.cosine_similarity(_flat(pred), _flat(target), dim=-1)).mean()  # (B,) -> ()
        return {"loss": cos_dist, "cos_dist": cos_dist}


class CombinedLoss(_Loss):
    """``mse_weight * MSE + cosine_weight * (1 - cos)``: the reference's image-route loss.

    EEGFormer reference: 0.5 / 0.5; NervFormer reference: 0.6 / 0.4.
    """

    def __init__(self, mse_weight: float = 0.5, cosine_weight: float = 0.5) -> None:
        super().__init__()
        self.mse_weight, self.cosine_weight = float(mse_weight), float(cosine_weight)
        self._remember(mse_weight=self.mse_weight, cosine_weight=self.cosine_weight)

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        _check(pred, target)
        mse = F.mse_loss(pred, target)
        cos_dist = (1.0 - F.cosine_similarity(_flat(pred), _flat(target), dim=-1)).mean()
        return {"loss": self.mse_weight * mse + self.cosine_weight * cos_dist, "mse": mse, "cos_dist": cos_dist}


class InfoNCELoss(_Loss):
    """Symmetric InfoNCE (CLIP) loss on L2-normalised embeddings with a learnable temperature.

    ``logits = exp(logit_scale) * normalize(pred) @ normalize(target).T`` (B, B); the loss is the
    mean of the EEG->target and target->EEG cross-entropies. ``logit_scale`` starts at
    ``log(1 / temperature)`` and is clamped so that ``exp(logit_scale) <= max_scale``; with
    ``learnable=False`` it is a fixed buffer. Rows with identical targets are shared positives
    (soft labels spread evenly over them).
    """

    def __init__(self, temperature: float = 0.07, learnable: bool = True, max_scale: float = 100.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.max_scale = float(max_scale)
        init = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learnable:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)
        self._remember(temperature=float(temperature), learnable=bool(learnable), max_scale=self.max_scale)

    def scale(self) -> Tensor:
        """The current inverse temperature ``exp(logit_scale)``, clamped to ``max_scale``."""
        return self.logit_scale.clamp(max=math.log(self.max_scale)).exp()

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        _check(pred, target)
        p = F.normalize(_flat(pred).float(), dim=-1)  # (B, F)
        t = F.normalize(_flat(target).float(), dim=-1)  # (B, F)
        scale = self.scale()
        logits = scale * p @ t.T  # (B, B): row i = EEG i against every target
        with torch.no_grad():
            same = (t @ t.T) > 1.0 - 1e-6  # (B, B) True where targets coincide
            # the diagonal always is: in float32 a unit vector's dot with itself can fall below
            # 1 - 1e-6 (77 x 768 = 59,136 terms), which left a row without positives -> 0/0 = NaN
            same |= torch.eye(same.shape[0], dtype=torch.bool, device=same.device)
            labels = same.float() / same.float().sum(dim=1, keepdim=True)
        loss_p2t = torch.sum(-labels * F.log_softmax(logits, dim=1), dim=1).mean()
        loss_t2p = torch.sum(-labels * F.log_softmax(logits.T, dim=1), dim=1).mean()
        nce = 0.5 * (loss_p2t + loss_t2p)
        return {"loss": nce, "infonce": nce, "temperature": (1.0 / scale).detach()}


class MSEInfoNCELoss(_Loss):
    """``mse_weight * MSE + infonce_weight * InfoNCE``: regression plus contrastive, as ATM trains
    its generation encoder (Li et al. 2024, "Visual decoding and reconstruction via EEG embeddings
    with guided diffusion")."""

    def __init__(
        self,
        mse_weight: float = 0.5,
        infonce_weight: float = 0.5,
        temperature: float = 0.07,
        learnable: bool = True,
        max_scale: float = 100.0,
    ) -> None:
        super().__init__()
        self.mse_weight, self.infonce_weight = float(mse_weight), float(infonce_weight)
        self.infonce = InfoNCELoss(temperature=temperature, learnable=learnable, max_scale=max_scale)
        self._remember(
            mse_weight=self.mse_weight,
            infonce_weight=self.infonce_weight,
            temperature=float(temperature),
            learnable=bool(learnable),
            max_scale=float(max_scale),
        )

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        _check(pred, target)
        mse = F.mse_loss(pred, target)
        nce = self.infonce(pred, target)
        total = self.mse_weight * mse + self.infonce_weight * nce["loss"]
        return {"loss": total, "mse": mse, "infonce": nce["infonce"], "temperature": nce["temperature"]}


class TokenLoss(_Loss):
    """Text-route per-token loss: ``mse_weight * token MSE + (1 - mse_weight) * token (1 - cos)``.

    ``pred`` and ``target`` are (B, S, E) (77 x 768 CLIP text hidden states); the cosine is taken
    along E for every token and averaged over all B * S tokens. EEGNetTransformer reference: 0.8.
    """

    def __init__(self, mse_weight: float = 0.8) -> None:
        super().__init__()
        if not 0.0 <= mse_weight <= 1.0:
            raise ValueError(f"mse_weight must be in [0, 1], got {mse_weight}")
        self.mse_weight = float(mse_weight)
        self._remember(mse_weight=self.mse_weight)

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        _check(pred, target)
        if pred.ndim != 3:
            raise ValueError(f"TokenLoss expects (B, S, E) tensors, got shape {tuple(pred.shape)}")
        mse = F.mse_loss(pred, target)
        cos_dist = (1.0 - F.cosine_similarity(pred, target, dim=-1)).mean()  # (B, S) -> ()
        total = self.mse_weight * mse + (1.0 - self.mse_weight) * cos_dist
        return {"loss": total, "token_mse": mse, "token_cos_dist": cos_dist}


LOSSES: dict[str, type[nn.Module]] = {
    "mse": MSELoss,
    "cosine": CosineLoss,
    "combined": CombinedLoss,
    "infonce": InfoNCELoss,
    "mse_infonce": MSEInfoNCELoss,
    "token": TokenLoss,
}


def build_loss(name: str, **kwargs: Any) -> nn.Module:
    """Build a loss by its short name (see :data:`LOSSES`) or its class name."""
    by_class = {cls.__name__: cls for cls in LOSSES.values()}
    cls = LOSSES.get(name) or by_class.get(name)
    if cls is None:
        from eegalign.errors import ConfigError

        raise ConfigError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return cls(**kwargs)


def loss_config(loss: nn.Module) -> dict[str, Any]:
    """Describe a loss as plain data: ``{"class_path": ..., "init_args": {...}}`` (JSON types only)."""
    cls = type(loss)
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": dict(getattr(loss, "_init_args", {}))}
