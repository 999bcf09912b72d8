"""N-way top-k classification accuracy of images (the protocol of GWIT and DreamDiffusion).

An ImageNet-1k classifier scores an image (logits over the 1000 classes). For one draw, the
candidates are the image's true class plus ``n - 1`` distractor classes drawn without
replacement from the other classes; the draw counts as correct when the true class's logit
is among the ``k`` highest logits of the ``n`` candidates. An image's score is the mean over
``draws`` seeded draws; a set's accuracy is the mean over images, with a bootstrap 95% CI over
images. Chance is ``k / n``.

Ties are counted against the true class (a distractor whose logit equals the true logit beats
it), so a constant classifier scores 0, never a flattering number.

Everything here is pure numpy: logits in, numbers out.
"""

from __future__ import annotations

import numpy as np

from eegalign.errors import ConfigError


def nway_topk_per_image(
    logits: np.ndarray, true_idx: np.ndarray, n: int = 50, k: int = 1, draws: int = 50, seed: int = 0
) -> np.ndarray:
    """Per-image N-way top-k accuracy, averaged over ``draws`` seeded distractor draws.

    Args:
        logits: (M, C) classifier scores of M images over C classes.
        true_idx: (M,) index of each image's true class in ``[0, C)``.
        n: candidates per draw (the true class + ``n - 1`` distractors), ``2 <= n <= C``.
        k: the true class must rank within the top ``k`` of the ``n`` candidates.
        draws: distractor draws per image.
        seed: the draws depend only on (seed, image position), so equal calls on different
            image sets (original / true / EEG) use the same distractors: a paired comparison.

    Returns:
        (M,) float64 in [0, 1]: the share of draws in which each image was correct.
    """
    logits = np.asarray(logits, dtype=np.float64)
    true_idx = np.asarray(true_idx, dtype=np.int64)
    if logits.ndim != 2:
        raise ConfigError(f"logits must be (images, classes), got shape {logits.shape}")
    m, c = logits.shape
    if true_idx.shape != (m,):
        raise ConfigError(f"true_idx must have shape ({m},), got {true_idx.shape}")
    if not 2 <= n <= c:
        raise ConfigError(f"N-way needs 2 <= N <= number of classes ({c}), got N={n}")
    if not 1 <= k <= n:
        raise ConfigError(f"top-k needs 1 <= k <= N ({n}), got k={k}")
    if draws < 1:
        raise ConfigError(f"draws must be >= 1, got {draws}")
    if m and (true_idx.min() < 0 or true_idx.max() >= c):
        raise ConfigError(f"true class indices must lie in [0, {c})")

    rng = np.random.default_rng(seed)
    out = np.empty(m, dtype=np.float64)
    for i in range(m):
        true_logit = logits[i, true_idx[i]]
        others = np.delete(logits[i], true_idx[i])  # (C-1,) the possible distractors
        beats = others >= true_logit  # (C-1,) bool: would outrank the true class
        # A uniform random (n-1)-subset per draw: the n-1 smallest of C-1 uniform keys.
        keys = rng.random((draws, c - 1))  # (draws, C-1)
        chosen = np.argpartition(keys, n - 2, axis=1)[:, : n - 1] if n - 1 < c - 1 else None
        n_beating = beats[chosen].sum(axis=1) if chosen is not None else np.full(draws, beats.sum())
        out[i] = float(np.mean(n_beating < k))  # correct: fewer than k candidates outrank it
    return out


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (resampling the entries)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.size, size=(n_boot, values.size))  # (n_boot, M)
    means = values[idx].mean(axis=1)  # (n_boot,)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def nway_summary(
    logits: np.ndarray,
    true_idx: np.ndarray,
    n: int = 50,
    k: int = 1,
    draws: int = 50,
    seed: int = 0,
    n_boot: int = 1000,
) -> dict:
    """N-way top-k accuracy of a set of images: ``{"value", "ci95", "chance", "n", "k", "n_images"}``."""
    per_image = nway_topk_per_image(logits, true_idx, n=n, k=k, draws=draws, seed=seed)
    return {
        "value": float(per_image.mean()) if per_image.size else float("nan"),
        "ci95": list(bootstrap_ci(per_image, n_boot=n_boot, seed=seed)),
        "chance": k / n,
        "n": n,
        "k": k,
        "draws": draws,
        "n_images": int(per_image.size),
    }
