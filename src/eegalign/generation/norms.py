"""The norm of the predictions handed to Stable Diffusion (``--match-norm``).

A decoder trained with a normalised loss (InfoNCE, cosine) learns a direction only: the norm of
its output is arbitrary. The generator is not norm-free: IP-Adapter's image projection is
``LayerNorm(W x + b)`` (the bias makes the output depend on |x|) and the UNet's cross-attention
sees the text states' norms. So such predictions are rescaled, keeping their direction, to a
reference norm: by default the mean norm of the *training* targets, which ``eegalign evaluate``
records in the predictions file (one number on the image route, one per token position on the
text route). Modes:

========  ==============================================================================
auto      rescale to the training norm when the recorded loss is norm-free; else leave as is
train     rescale to the recorded training norm (an error if none is recorded)
test      rescale to the mean norm of this file's true embeddings (one constant per file)
off       leave the predictions as they are
========  ==============================================================================
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from eegalign.errors import ConfigError
from eegalign.generation.settings import MATCH_NORM_MODES as MODES
from eegalign.predictions import Predictions, mean_target_norm
#: training losses that leave the prediction's norm arbitrary (class names in eegalign.losses)
NORM_FREE_LOSSES = ("InfoNCELoss", "CosineLoss")


def rescale(pred: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rescale each prediction to ``reference``, keeping its direction.

    Args:
        pred: (N, D) or (N, S, D) predictions.
        reference: () for (N, D), (S,) for (N, S, D): the target norm (per token position).
    """
    pred = np.asarray(pred, dtype=np.float32)
    norms = np.linalg.norm(pred, axis=-1, keepdims=True)  # (N, 1) or (N, S, 1)
    return (pred / np.maximum(norms, 1e-12) * np.asarray(reference)[..., None]).astype(np.float32)


def _reference(preds: Predictions, mode: str) -> tuple[str | None, np.ndarray | None, str]:
    """(which reference, its norm, why) for ``mode``."""
    loss, train_norm = preds.training_loss, preds.train_target_norm
    if mode == "off":
        return None, None, "--match-norm off"
    if mode == "test":
        return "test", mean_target_norm(preds.true), "--match-norm test: mean norm of this file's true embeddings"
    if mode == "train":
        if train_norm is None:
            raise ConfigError("--match-norm train: the predictions file records no training-target norm "
                              "(written by `eegalign evaluate` with train targets); use --match-norm test or off")
        return "train", train_norm, "--match-norm train"
    if loss is None:
        return None, None, "auto: the training loss is not recorded in the predictions file, left as is"
    if loss not in NORM_FREE_LOSSES:
        return None, None, f"auto: trained with {loss}, which constrains the norm; left as is"
    if train_norm is None:
        print(f"eegalign: warning: the predictions were trained with {loss} (arbitrary norm) but record no training-"
              "target norm; they are left as is (pass --match-norm test to rescale to the true embeddings' norm)",
              file=sys.stderr)
        return None, None, f"auto: trained with {loss} but no training-target norm recorded; left as is"
    return "train", train_norm, f"auto: trained with {loss} (a norm-free loss): rescaled to the training targets' mean norm"


def _summary(norm: np.ndarray) -> float | list[float]:
    return float(norm) if norm.ndim == 0 else [float(x) for x in norm]


def prepare_predictions(preds: Predictions, mode: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The predictions to generate from under ``--match-norm mode``, and the record for ``generation.json``.

    Returns:
        pred: (N, D) or (N, S, D) float32, rescaled or as is;
        record: {"mode", "applied" ("train" | "test" | None), "training_loss", "reference_norm",
        "prediction_norm" (mean norm before rescaling), "reason"}.
    """
    if mode not in MODES:
        raise ConfigError(f"--match-norm must be one of {', '.join(MODES)}, got {mode!r}")
    applied, reference, reason = _reference(preds, mode)
    if reference is not None and reference.shape != preds.pred.shape[1:-1]:
        raise ConfigError(f"the recorded training-target norm has shape {reference.shape}, the predictions "
                          f"{preds.pred.shape}: it was recorded for other targets")
    pred = preds.pred if reference is None else rescale(preds.pred, reference)
    record = {
        "mode": mode, "applied": applied, "training_loss": preds.training_loss,
        "reference_norm": None if reference is None else _summary(reference),
        "prediction_norm": _summary(mean_target_norm(preds.pred)), "reason": reason,
    }
    return pred, record
