"""Is run A better than run B on the same trials? Paired (and unpaired) differences of per-trial scores.

Every function takes per-trial scores (one number per trial: an N-way accuracy in [0, 1] averaged
over distractor draws, a PixCorr, an SSIM, ...) and returns the difference of the means A - B with a
95% bootstrap CI and a two-sided permutation p-value:

- **paired** (the runs scored the same trials, rows aligned): the per-trial differences
  ``d = a - b`` are resampled for the CI, and the p-value is the sign-flip test (under the null of no
  difference, each ``d_i`` is as likely to be ``-d_i``). With at most :data:`EXACT_MAX` trials all
  ``2**n`` sign patterns are enumerated, so the p-value is exact; beyond, ``n_perm`` random patterns
  are drawn and ``p = (1 + hits) / (1 + n_perm)`` (never 0).
- **unpaired** (the runs share no trials): each run is resampled on its own for the CI, and the
  p-value permutes the pooled scores between the two runs.

Pure numpy; trials with a non-finite score in either run are left out (and counted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from eegalign.errors import ConfigError

#: up to this many paired trials the sign-flip test enumerates every sign pattern (2**16 = 65,536)
EXACT_MAX = 16


@dataclass(frozen=True)
class Difference:
    """``mean(A) - mean(B)`` with its CI and p-value; ``paired`` says which test made them."""

    difference: float
    ci95: tuple[float, float]
    p: float
    n_trials: int
    paired: bool
    mean_a: float
    mean_b: float
    n_left_out: int = 0

    def to_json(self) -> dict:
        d = asdict(self)
        d["ci95"] = list(self.ci95)
        return d


def _as_scores(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ConfigError(f"{name}: per-trial scores must be one number per trial, got shape {arr.shape}")
    return arr


def _percentile_ci(stats: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def sign_flip_p(d: np.ndarray, n_perm: int = 10_000, seed: int = 0) -> float:
    """Two-sided sign-flip p-value of ``mean(d) != 0``; exact for ``len(d) <= EXACT_MAX``."""
    d = np.asarray(d, dtype=np.float64)
    n = d.size
    if n == 0:
        return float("nan")
    observed = abs(d.mean())
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))  # equal up to rounding counts as "as extreme"
    if n <= EXACT_MAX:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1  # (2**n, n) every sign pattern
        stats = np.abs(patterns @ d) / n  # (2**n,)
        return float(np.mean(stats >= observed - tol))
    rng = np.random.default_rng(seed)
    signs = rng.integers(0, 2, size=(n_perm, n)) * 2 - 1  # (n_perm, n)
    stats = np.abs(signs @ d) / n  # (n_perm,)
    return float((1 + np.sum(stats >= observed - tol)) / (1 + n_perm))


def paired_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, n_perm: int = 10_000, seed: int = 0
) -> Difference:
    """Paired ``mean(a) - mean(b)`` over trials scored by both runs (rows aligned).

    Args:
        a, b: (T,) per-trial scores of run A and run B on the same T trials.
        n_boot: bootstrap resamples of the trials for the 95% CI.
        n_perm: random sign patterns when T > :data:`EXACT_MAX`.
        seed: seeds the bootstrap and the random sign patterns.
    """
    a, b = _as_scores(a, "run A"), _as_scores(b, "run B")
    if a.shape != b.shape:
        raise ConfigError(f"paired scores need the same trials, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]  # (T_kept,)
    n = d.size
    if n == 0:
        nan = float("nan")
        return Difference(nan, (nan, nan), nan, 0, True, nan, nan, int((~keep).sum()))
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)  # (n_boot,)
    return Difference(
        difference=float(d.mean()), ci95=_percentile_ci(boot), p=sign_flip_p(d, n_perm, seed),
        n_trials=n, paired=True, mean_a=float(a[keep].mean()), mean_b=float(b[keep].mean()),
        n_left_out=int((~keep).sum()),
    )


def unpaired_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, n_perm: int = 10_000, seed: int = 0
) -> Difference:
    """``mean(a) - mean(b)`` for runs on different trials: independent bootstrap, label-permutation p."""
    a, b = _as_scores(a, "run A"), _as_scores(b, "run B")
    fa, fb = a[np.isfinite(a)], b[np.isfinite(b)]
    left_out = a.size - fa.size + b.size - fb.size
    if fa.size == 0 or fb.size == 0:
        nan = float("nan")
        return Difference(nan, (nan, nan), nan, 0, False, nan, nan, int(left_out))
    rng = np.random.default_rng(seed)
    boot = (fa[rng.integers(0, fa.size, size=(n_boot, fa.size))].mean(axis=1)
            - fb[rng.integers(0, fb.size, size=(n_boot, fb.size))].mean(axis=1))  # (n_boot,)
    observed = fa.mean() - fb.mean()
    pooled = np.concatenate([fa, fb])  # (Na + Nb,)
    hits = 0
    for _ in range(n_perm):
        perm = rng.permutation(pooled)
        hits += abs(perm[: fa.size].mean() - perm[fa.size :].mean()) >= abs(observed) - 1e-12
    return Difference(
        difference=float(observed), ci95=_percentile_ci(boot), p=float((1 + hits) / (1 + n_perm)),
        n_trials=int(fa.size + fb.size), paired=False, mean_a=float(fa.mean()), mean_b=float(fb.mean()),
        n_left_out=int(left_out),
    )


def verdict(metric_label: str, name_a: str, name_b: str, diff: Difference, scale: float = 100.0,
            unit: str = " points", alpha: float = 0.05, higher_is_better: bool = True,
            digits: int = 1) -> str:
    """One sentence: which run is better on ``metric_label`` and whether the difference is reliable.

    "Reliable" means the two-sided p-value is below ``alpha`` *and* the 95% CI excludes 0.
    ``scale``/``unit`` format the difference (100 and " points" for accuracies in [0, 1]);
    ``higher_is_better=False`` for distances, where the run with the lower mean is the better one.
    """
    if not np.isfinite(diff.difference):
        return f"{metric_label}: no trial scored by both runs."
    lo, hi = diff.ci95
    reliable = diff.p < alpha and (lo > 0 or hi < 0)
    how = "paired" if diff.paired else "unpaired"
    if not reliable:
        return (f"{metric_label}: no reliable difference ({name_a} - {name_b} = {diff.difference * scale:+.{digits}f}{unit} "
                f"[{lo * scale:+.{digits}f}, {hi * scale:+.{digits}f}], p = {diff.p:.2g}, {how}, {diff.n_trials} trials).")
    a_better = (diff.difference > 0) == higher_is_better
    better = name_a if a_better else name_b
    return (f"{metric_label}: {better} better by {abs(diff.difference) * scale:.{digits}f}{unit} "
            f"[{min(abs(lo), abs(hi)) * scale:.{digits}f}, {max(abs(lo), abs(hi)) * scale:.{digits}f}], "
            f"p = {diff.p:.2g} ({how}, {diff.n_trials} trials).")
