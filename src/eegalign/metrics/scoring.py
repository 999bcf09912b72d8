"""The named scoring steps of an evaluation: similarity, retrieval, classification, significance,
per-subject and trial-averaged retrieval. Each returns a typed result (:mod:`eegalign.metrics.results`).
"""

from __future__ import annotations

import numpy as np

from eegalign.metrics.classification import class_prototypes, prototype_ranks
from eegalign.metrics.results import (
    AveragedRetrieval, ClassificationScores, Hits, PredictionScores, Significance, SimilarityScores,
)
from eegalign.metrics.retrieval import average_by_group, candidates, retrieval_hits
from eegalign.metrics.setup import EvaluationSetup
from eegalign.metrics.significance import accuracies, bootstrap_counts, permutation_test
from eegalign.metrics.similarity import per_trial_similarity, similarity_matrices, similarity_matrix, similarity_summary, text_summary

ZERO_SHOT = "no evaluated trial's class has a training prototype (zero-shot split)"
PER_SUBJECT_KEYS = ("cosine", "all_top1", "all_top5", "2way_top1", "class_top1")


def score_similarity(pred: np.ndarray, true: np.ndarray, route: str) -> SimilarityScores:
    """Per-trial similarity of ``pred`` (``(N, ...)`` or ``(1, ...)``) with ``true``, and its summaries."""
    per_trial = per_trial_similarity(pred, true)
    return SimilarityScores(per_trial, similarity_summary(per_trial), text_summary(per_trial) if route == "text" else None)


def score_classification(
    pred: np.ndarray, label: np.ndarray, ref_targets: np.ndarray, ref_labels: np.ndarray,
    center: np.ndarray | None, counts: np.ndarray, seed: int,
) -> ClassificationScores:
    """Class-prototype top-1/top-5: prototypes from ``ref_targets``/``ref_labels``, CIs from ``counts``.

    Trials whose class has no prototype cannot be scored: the rest is resampled on its own; with
    none left (a zero-shot split) classification is skipped.
    """
    classes, protos = class_prototypes(ref_targets, ref_labels)
    rank, valid = prototype_ranks(pred, label, classes, protos, center)
    c = len(classes)
    hits = Hits({"top1": (rank <= 1).astype(np.float64), "top5": (rank <= 5).astype(np.float64)},
                {"top1": 1 / c, "top5": min(5, c) / c})
    if not valid.any():
        return ClassificationScores({}, None, skipped=ZERO_SHOT)
    per_trial = {k: np.where(valid, v, np.nan) for k, v in hits.values.items()}
    if valid.all():
        return ClassificationScores(per_trial, accuracies(hits, counts))
    scorable = Hits({k: v[valid] for k, v in hits.values.items()}, hits.chance)
    return ClassificationScores(per_trial, accuracies(scorable, bootstrap_counts(int(valid.sum()), counts.shape[0], seed)))


def score_predictions(setup: EvaluationSetup, pred: np.ndarray) -> PredictionScores:
    """Every per-trial score of one prediction set: the model's ``(N, ...)`` or the baseline's ``(1, ...)``."""
    similarity = score_similarity(pred, setup.true, setup.route)
    shape = (len(setup.true), len(setup.ids))  # (N, M)
    sim, sim_raw = (np.broadcast_to(x, shape) for x in similarity_matrices(pred, setup.cands, setup.center))
    hits = retrieval_hits(sim, setup.answer, setup.kway, setup.kway_draws, setup.seed, setup.distractors)
    raw = None
    if setup.route == "text":  # uncentred retrieval, for comparison with papers that report it
        raw_hits = retrieval_hits(sim_raw, setup.answer, setup.kway, setup.kway_draws, setup.seed, setup.distractors)
        raw = accuracies(raw_hits, setup.counts)
    classification = None
    if setup.ref_labels is not None:
        classification = score_classification(
            pred, setup.label, setup.ref_targets, setup.ref_labels, setup.center, setup.counts, setup.seed
        )
    per_trial = {"cosine": similarity.per_trial["cosine"], **hits.values}
    if classification is not None:
        per_trial.update({f"class_{k}": v for k, v in classification.hits.items()})
    return PredictionScores(similarity, accuracies(hits, setup.counts), raw, classification, per_trial, sim, sim_raw)


def permutation_significance(setup: EvaluationSetup, model: PredictionScores) -> Significance:
    """Permutation p-values of the model's all-way top-1 and mean own-image cosine (raw cosine on the text route)."""
    perm = permutation_test(model.sim, setup.answer, setup.n_perm, setup.seed)
    perm_cos = permutation_test(model.sim_raw, setup.answer, setup.n_perm, setup.seed) if setup.route == "text" else perm
    return Significance(perm["top1_p"], perm_cos["cosine_p"], setup.n_perm)


def _subject_mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean over the subject's scorable trials; None when it has none (NaN marks an unscorable trial)."""
    return float(np.nanmean(values[mask])) if np.isfinite(values[mask]).any() else None


def per_subject_table(
    subject: np.ndarray, model: dict[str, np.ndarray], baseline: dict[str, np.ndarray]
) -> dict[str, dict[str, float | int | None]]:
    """``{subject: {"n", metric, "baseline_" + metric, ...}}`` for the :data:`PER_SUBJECT_KEYS` both have."""
    table: dict[str, dict[str, float | int | None]] = {}
    for s in np.unique(subject):
        mask = subject == s
        row: dict[str, float | int | None] = {"n": int(mask.sum())}
        for key in PER_SUBJECT_KEYS:
            if key in model:
                name = key.replace("class_", "classification_")
                row[name] = _subject_mean(model[key], mask)
                row[f"baseline_{name}"] = _subject_mean(baseline[key], mask)
        table[str(int(s))] = row
    return table


def score_averaged_retrieval(setup: EvaluationSetup, by: str) -> AveragedRetrieval:
    """Retrieval of the mean prediction of the trials of one image (``by="image"``) or image and subject.

    The baseline predicts the same for every trial, so also for every averaged group; model and
    baseline are scored on the same distractor draws.
    """
    keys = [f"{i}\x00{s}" if by == "image_subject" else str(i) for i, s in zip(setup.image_ids, setup.subject)]
    avg_pred, group = average_by_group(setup.pred, keys)
    first = np.unique(group, return_index=True)[1]
    _, cands, answer = candidates(setup.true[first], [str(setup.image_ids[i]) for i in first])
    sim = similarity_matrix(avg_pred, cands, setup.center)  # (G, M')
    draws: dict[int, np.ndarray] = {}
    model_hits = retrieval_hits(sim, answer, setup.kway, setup.kway_draws, setup.seed, draws)
    base_sim = np.broadcast_to(similarity_matrix(setup.baseline_pred, cands, setup.center), sim.shape)  # (G, M')
    base_hits = retrieval_hits(base_sim, answer, setup.kway, setup.kway_draws, setup.seed, draws)
    counts = bootstrap_counts(len(avg_pred), setup.n_boot, setup.seed)
    what = "image and subject" if by == "image_subject" else "image (across subjects)"
    note = f"predictions of all trials of the same {what} averaged before retrieval"
    return AveragedRetrieval(len(avg_pred), by, note, accuracies(model_hits, counts), accuracies(base_hits, counts))
