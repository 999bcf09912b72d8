"""Every metric of ``docs/evaluation.md`` at once: :func:`compute_metrics` -> metrics.json + report arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from eegalign.metrics.results import PredictionScores, finite_or_null
from eegalign.metrics.scoring import (
    per_subject_table, permutation_significance, score_averaged_retrieval, score_predictions,
)
from eegalign.metrics.setup import KWAY, EvaluationSetup, evaluation_settings, prepare_setup
from eegalign.metrics.similarity import similarity_matrix


def figure_arrays(scores: PredictionScores, prefix: str) -> dict[str, np.ndarray]:
    """The per-trial arrays the report draws for one prediction set (``prefix`` "" or "baseline_")."""
    out = {f"{prefix}cosine": scores.similarity.per_trial["cosine"]}
    if "token_cosine" in scores.similarity.per_trial:
        # (T,) mean over trials; a diverged (non-finite) trial is left out rather than blanking the curve
        tok = scores.similarity.per_trial["token_cosine"]  # (N, T)
        finite = np.isfinite(tok).all(axis=1)
        out[f"{prefix}token_cosine_curve"] = tok[finite].mean(axis=0) if finite.any() else np.full(tok.shape[1], np.nan)
        out[f"{prefix}token_cosine_dropped"] = np.asarray(int((~finite).sum()))  # trials left out of the curve
    return out


def report_arrays(setup: EvaluationSetup, model: PredictionScores, baseline: PredictionScores) -> dict[str, np.ndarray]:
    """Everything the report's figures need beyond metrics.json.

    ``sim_centred`` ``(N, M)``: cosine of each prediction with each candidate after subtracting the
    mean target from both (raw cosine of CLIP-like targets is dominated by their shared mean
    direction); the text route's retrieval matrix is already centred on it.
    """
    centred = model.sim if setup.route == "text" else similarity_matrix(setup.pred, setup.cands, setup.mean_target)
    return {
        "label": setup.label, "subject": setup.subject, "answer": setup.answer, "cand_label": setup.cand_label,
        **figure_arrays(model, ""), **figure_arrays(baseline, "baseline_"),
        "sim_centred": np.ascontiguousarray(centred),
    }


def strict_json(metrics: dict) -> dict:
    """``metrics`` with NaN/Inf replaced by null, and a setting saying how many were."""
    metrics, replaced = finite_or_null(metrics)
    if replaced:
        metrics["settings"]["non_finite_values"] = f"{replaced} values were NaN or infinite (diverged predictions) and are null"
    return metrics


def compute_metrics(
    pred: np.ndarray,
    true: np.ndarray,
    image_ids: Sequence[str],
    label: np.ndarray,
    subject: np.ndarray,
    *,
    train_targets: np.ndarray | None = None,
    train_labels: np.ndarray | None = None,
    kway: Sequence[int] = KWAY,
    kway_draws: int = 10,
    n_boot: int = 1000,
    n_perm: int = 1000,
    seed: int = 0,
    average_trials: bool | str = False,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Every metric of ``docs/evaluation.md`` for one set of predictions, with baselines.

    ``train_targets`` ``(M, ...)`` / ``train_labels`` ``(M,)``: the train-split images' targets
    and classes, used for the ``train_mean`` baseline, the text-route centring and the class
    prototypes. Without them the evaluated split's own distinct images stand in, and the
    settings say so (``baseline_source = "split"``: optimistic).

    Returns ``(metrics, arrays)``: the metrics.json dict (contract layout plus ``settings``,
    ``retrieval_raw`` for the text route, ``retrieval_averaged`` if asked) and the per-trial
    arrays the report's figures need (:func:`report_arrays`).
    ``average_trials``: ``"image_subject"`` (or True) averages the predictions of all trials of
    one image and one subject before retrieval, ``"image"`` all trials of one image (across
    subjects); reported separately as ``retrieval_averaged``.
    """
    setup = prepare_setup(
        pred, true, image_ids, label, subject, train_targets=train_targets, train_labels=train_labels, kway=kway,
        kway_draws=kway_draws, n_boot=n_boot, n_perm=n_perm, seed=seed, average_trials=average_trials,
    )
    model = score_predictions(setup, setup.pred)
    baseline = score_predictions(setup, setup.baseline_pred)
    metrics: dict = {
        "n": len(setup.pred),
        "route": setup.route,
        "n_images": len(setup.ids),
        "n_candidates": len(setup.ids),  # all-way retrieval candidates (= distinct images of the split)
        "n_subjects": int(len(np.unique(setup.subject))),
        **model.to_json(),
        "baselines": {"train_mean": baseline.to_json(), **asdict(permutation_significance(setup, model))},
        "per_subject": per_subject_table(setup.subject, model.per_trial, baseline.per_trial),
    }
    if setup.average_by is not None:
        averaged = score_averaged_retrieval(setup, setup.average_by)
        metrics["retrieval_averaged"] = averaged.to_json()
        metrics["baselines"]["train_mean"]["retrieval_averaged"] = averaged.baseline
    metrics["settings"] = evaluation_settings(setup)
    return strict_json(metrics), report_arrays(setup, model, baseline)
