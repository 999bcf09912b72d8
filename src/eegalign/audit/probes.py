"""Confound probes: decode the class from features that cannot carry the stimulus.

Each probe fits the closed-form ridge classifier of :mod:`eegalign.audit.ridge` within each
subject (train split -> test split), pools the test trials of all subjects, and reports the
accuracy with its chance level, a majority-class baseline, a percentile bootstrap 95% CI over test
trials and a permutation p-value (training labels permuted within each subject, the classifier
refitted -- penalty chosen again -- on every permutation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from eegalign.audit.ridge import factorise, fit_predict

FeatureFn = Callable[[np.ndarray], np.ndarray]  # trial rows (n,) -> features (n, p)


@dataclass
class ProbeResult:
    """One probe's outcome (``value`` is the pooled test accuracy; None when the probe could not run)."""

    name: str
    question: str
    features: str
    value: float | None
    ci95: list[float] | None
    chance: float | None
    majority_baseline: float | None
    p: float | None
    n_train: int
    n_test: int
    n_classes: int
    n_subjects: int
    n_permutations: int
    scope: str = "within-subject (fit on each subject's train trials, scored on its test trials, pooled)"
    median_alpha: float | None = None
    skipped: str | None = None
    in_decision: bool = True  # False: descriptive only (its features may carry the evoked response)
    p_holm: float | None = None
    reliable: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SubjectFit:
    """Per-subject outcome: test correctness (m,), permuted correct counts (n_perm,), baselines."""

    correct: np.ndarray
    perm_correct: np.ndarray
    chance_sum: float
    majority_correct: int
    alpha: float
    n_train: int


def _fit_subject(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    n_classes: int, n_perm: int, rng: np.random.Generator,
) -> SubjectFit:
    """True-label fit plus ``n_perm`` refits on permuted training labels, for one subject."""
    problem = factorise(x_train, x_test, n_classes)
    pred, alpha = fit_predict(problem, y_train)
    perm_correct = np.empty(n_perm, dtype=np.int64)
    for j in range(n_perm):
        perm_pred, _ = fit_predict(problem, rng.permutation(y_train))
        perm_correct[j] = int(np.sum(perm_pred == y_test))
    present = np.bincount(y_train, minlength=n_classes) > 0
    majority = int(np.argmax(np.bincount(y_train, minlength=n_classes)))
    return SubjectFit(
        correct=pred == y_test,
        perm_correct=perm_correct,
        chance_sum=float(np.sum(present[y_test]) / max(int(present.sum()), 1)),
        majority_correct=int(np.sum(y_test == majority)),
        alpha=alpha,
        n_train=len(y_train),
    )


def bootstrap_ci(correct: np.ndarray, n_boot: int, rng: np.random.Generator) -> list[float]:
    """Percentile 95% CI of the mean of a 0/1 vector (m,) over ``n_boot`` resamples of trials."""
    m = len(correct)
    means = np.empty(n_boot)
    for lo in range(0, n_boot, 256):  # bounded memory for large test sets
        hi = min(lo + 256, n_boot)
        means[lo:hi] = correct[rng.integers(0, m, (hi - lo, m))].mean(axis=1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def run_probe(
    name: str, question: str, feature_text: str, features_of: FeatureFn, meta: Any, *,
    n_perm: int, n_boot: int, seed: int, in_decision: bool = True,
) -> ProbeResult:
    """Decode ``label`` from ``features_of(rows)`` within each subject; see the module docstring."""
    labels_all = meta["label"].to_numpy().astype(np.int64)
    classes, label_idx = np.unique(labels_all, return_inverse=True)
    split, subject = meta["split"].to_numpy(), meta["subject"].to_numpy()
    rng = np.random.default_rng(seed)
    fits = []
    for s in np.unique(subject):
        tr = np.flatnonzero((split == "train") & (subject == s))
        te = np.flatnonzero((split == "test") & (subject == s))
        if len(tr) < 2 or len(te) < 1 or len(np.unique(label_idx[tr])) < 2:
            continue
        fits.append(_fit_subject(features_of(tr), label_idx[tr], features_of(te), label_idx[te], len(classes), n_perm, rng))
    common = dict(name=name, question=question, features=feature_text, n_classes=len(classes), n_permutations=n_perm,
                  in_decision=in_decision)
    if not fits:
        return ProbeResult(**common, value=None, ci95=None, chance=None, majority_baseline=None, p=None, n_train=0,
                           n_test=0, n_subjects=0, skipped="no subject has train trials of two classes and test trials")
    if sum(f.chance_sum for f in fits) == 0:
        return ProbeResult(**common, value=None, ci95=None, chance=0.0, majority_baseline=None, p=None,
                           n_train=sum(f.n_train for f in fits), n_test=sum(len(f.correct) for f in fits),
                           n_subjects=len(fits), skipped="no test trial's class has train trials of the same subject "
                           "(e.g. block-held-out splits of block-design data): within-subject class decoding is undefined")
    correct = np.concatenate([f.correct for f in fits]).astype(np.float64)
    observed = int(correct.sum())
    perm_total = np.sum([f.perm_correct for f in fits], axis=0)  # (n_perm,)
    n_test = len(correct)
    return ProbeResult(
        **common,
        value=observed / n_test,
        ci95=bootstrap_ci(correct, n_boot, rng),
        chance=sum(f.chance_sum for f in fits) / n_test,
        majority_baseline=sum(f.majority_correct for f in fits) / n_test,
        p=float((1 + np.sum(perm_total >= observed)) / (1 + n_perm)),
        n_train=sum(f.n_train for f in fits),
        n_test=n_test,
        n_subjects=len(fits),
        median_alpha=float(np.median([f.alpha for f in fits])),
    )
