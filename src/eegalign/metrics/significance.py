"""Significance: bootstrap confidence intervals over trials and the permutation test of the pairing."""

from __future__ import annotations

import numpy as np

from eegalign.metrics.results import Accuracy, Hits


def bootstrap_counts(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``(n_boot, n)`` resampling counts (multinomial): row b says how often each trial is drawn."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float32)


def bootstrap_ci(
    values: np.ndarray, counts: np.ndarray | None = None, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> np.ndarray:
    """Percentile bootstrap CI of the mean over trials.

    ``values`` ``(N,)`` or ``(N, K)`` (K metrics resampled together); ``counts`` from
    :func:`bootstrap_counts` (made here if not given). Returns ``(2,)`` or ``(2, K)``: lo, hi.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if counts is None:
        counts = bootstrap_counts(n, n_boot, seed)
    means = counts.astype(np.float64) @ values / n  # (B, N) @ (N, K) -> (B, K)
    alpha = (1.0 - level) / 2
    return np.quantile(means, [alpha, 1 - alpha], axis=0)


def permutation_test(
    sim: np.ndarray, answer: np.ndarray, n_perm: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Permutation test of all-way top-1 accuracy and of mean own-image cosine.

    The null shuffles the pairing of predictions and trials: trial i's prediction is scored
    against the image of trial ``perm[i]``. Uses only the precomputed ``(N, M)`` similarity
    matrix: a top-1 hit is "the row's unique best candidate is the answer". Returns the
    observed values and p-values ``(1 + #{null >= observed}) / (1 + n_perm)``.
    """
    sim = np.asarray(sim)
    n = sim.shape[0]
    rng = np.random.default_rng(seed)
    best = sim.argmax(axis=1)  # (N,)
    unique = (sim >= sim.max(axis=1, keepdims=True)).sum(axis=1) == 1  # ties count against
    obs_top1 = float((unique & (best == answer)).mean())
    obs_cos = float(sim[np.arange(n), answer].mean())
    perms = rng.permuted(np.tile(np.arange(n), (n_perm, 1)), axis=1)  # (P, N)
    shuffled = answer[perms]  # (P, N): the answer each prediction is scored against
    null_top1 = (unique[None] & (best[None] == shuffled)).mean(axis=1)
    null_cos = sim[np.arange(n)[None], shuffled].mean(axis=1)
    return {
        "top1": obs_top1,
        "top1_p": float((1 + (null_top1 >= obs_top1 - 1e-12).sum()) / (1 + n_perm)),
        "cosine": obs_cos,
        "cosine_p": float((1 + (null_cos >= obs_cos - 1e-9).sum()) / (1 + n_perm)),
    }




def accuracies(hits: Hits, counts: np.ndarray) -> dict[str, Accuracy]:
    """``{metric: {"value", "ci95", "chance"}}`` of per-trial hits, all CIs from the same resamples ``counts``."""
    names = list(hits.values)
    if not names:
        return {}
    stacked = np.stack([hits.values[k] for k in names], axis=1)  # (N, K)
    lo, hi = bootstrap_ci(stacked, counts)
    return {
        k: {"value": float(stacked[:, i].mean()), "ci95": [float(lo[i]), float(hi[i])], "chance": float(hits.chance[k])}
        for i, k in enumerate(names)
    }
