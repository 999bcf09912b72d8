"""A closed-form ridge classifier whose refits on permuted labels are cheap.

The audit's probes need a simple, well-regularised linear classifier and a permutation test that
refits it hundreds of times. Ridge regression onto one-hot class indicators (what scikit-learn's
``RidgeClassifier`` does) has a closed form through the thin SVD of the standardised training
features ``X = U diag(s) V^T``:

    W(alpha) = V diag(s / (s^2 + alpha)) U^T Y

so a refit on relabelled trials costs one scatter-add of the rows of ``U`` (``U^T Y`` for one-hot
``Y``), and the penalty ``alpha`` is chosen per fit, from a log grid, by generalised
cross-validation (GCV), which needs only ``U^T Y``. Choosing ``alpha`` inside every permuted refit
keeps the permutation test exact: the true-label fit gets no tuning the permuted fits do not get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA_GRID = tuple(float(a) for a in np.logspace(-2, 5, 15))  # multiples of the mean squared singular value


@dataclass
class RidgeProblem:
    """A training set and a test set, factorised once for many label vectors.

    ``u`` (n_train, r), ``s`` (r,): thin SVD of the standardised, centred training features;
    ``test_proj`` (n_test, r): the standardised test features times ``V``; ``n_classes`` (K):
    labels are integers ``0..K-1``; ``alphas`` (A,): the penalty grid in absolute units.
    """

    u: np.ndarray
    s: np.ndarray
    test_proj: np.ndarray
    n_classes: int
    alphas: np.ndarray


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z-score features with the train mean and std (constant features -> 0): (n, p), (m, p) -> same."""
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std < 1e-12] = np.inf  # a constant feature carries nothing
    return (train - mean) / std, (test - mean) / std


def _thin_svd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``x = U diag(s) V^T`` of (n, p) through the eigen-decomposition of the smaller Gram matrix.

    Returns U (n, r), s (r,), V (p, r) with directions of negligible variance dropped. (LAPACK's SVD can
    be many times slower than this under a multi-threaded BLAS on a busy machine.)
    """
    wide = x.shape[0] <= x.shape[1]
    gram = x @ x.T if wide else x.T @ x  # (n, n) or (p, p)
    evals, evecs = np.linalg.eigh(gram)
    keep = evals > max(float(evals.max(initial=0.0)), 1e-300) * 1e-12
    s = np.sqrt(evals[keep])
    if wide:
        u = evecs[:, keep]
        return u, s, (x.T @ u) / s
    v = evecs[:, keep]
    return (x @ v) / s, s, v


def factorise(x_train: np.ndarray, x_test: np.ndarray, n_classes: int) -> RidgeProblem:
    """Standardise both sets with train statistics and take the thin SVD of the training features.

    x_train (n, p), x_test (m, p) float; n_classes: K, the number of label values.
    """
    xtr, xte = standardise(np.asarray(x_train, np.float64), np.asarray(x_test, np.float64))
    u, s, v = _thin_svd(xtr)  # (n, r), (r,), (p, r)
    scale = float(np.mean(s**2)) if len(s) else 1.0
    return RidgeProblem(u=u, s=s, test_proj=xte @ v, n_classes=int(n_classes), alphas=np.asarray(ALPHA_GRID) * scale)


def _one_hot_projection(u: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``U^T Y`` for one-hot ``Y`` of ``labels`` (n,), centred: (n, r) -> (r, K)."""
    one_hot = np.zeros((len(labels), n_classes))
    one_hot[np.arange(len(labels)), labels] = 1.0
    return u.T @ one_hot  # U's columns are orthogonal to 1 (centred X), so centring Y changes nothing


def _gcv_alpha(problem: RidgeProblem, z: np.ndarray, y_norm2: float) -> float:
    """The grid penalty with the smallest GCV score, from ``z = U^T Y`` (r, K) and ``||Y_c||^2``."""
    n = problem.u.shape[0]
    s2 = problem.s[:, None] ** 2  # (r, 1)
    f = s2 / (s2 + problem.alphas[None, :])  # (r, A) shrinkage factors
    zz = np.sum(z**2, axis=1)[:, None]  # (r, 1)
    rss = y_norm2 - np.sum(zz) + np.sum((1.0 - f) ** 2 * zz, axis=0)  # (A,)
    dof = np.sum(f, axis=0)  # (A,)
    gcv = rss / np.maximum(n - dof, 1e-9) ** 2
    return float(problem.alphas[int(np.argmin(gcv))])


def fit_predict(problem: RidgeProblem, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit on training ``labels`` (n,) int and return (predicted test labels (m,), chosen alpha)."""
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=problem.n_classes).astype(np.float64)
    n = len(labels)
    y_norm2 = float(n - np.sum(counts**2) / n)  # ||Y - mean||^2 for one-hot Y
    z = _one_hot_projection(problem.u, labels, problem.n_classes)  # (r, K)
    alpha = _gcv_alpha(problem, z, y_norm2)
    gain = problem.s / (problem.s**2 + alpha)  # (r,)
    scores = (problem.test_proj * gain[None, :]) @ z + counts[None, :] / n  # (m, r) @ (r, K) -> (m, K)
    scores[:, counts == 0] = -np.inf  # a class absent from training is never predicted
    return np.argmax(scores, axis=1), alpha
