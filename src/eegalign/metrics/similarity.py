"""Similarity of predictions and targets: scale-free cosines, the similarity matrix, per-trial distances.

Shapes: ``pred`` and ``true`` are ``(N, D)`` (image route) or ``(N, 77, 768)`` (text route);
everything that compares whole targets flattens the trailing dimensions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eegalign.metrics.results import MeanStd, TextSummary

EPS = 1e-12


def flatten(x: np.ndarray) -> np.ndarray:
    """``(N, ...) -> (N, F)`` as float32, or float64 when given float64 (a view when possible)."""
    x = np.asarray(x)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return x.reshape(x.shape[0], -1).astype(dtype, copy=False)


def _scale_block(block: np.ndarray, mu: np.ndarray | None, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """One block of :func:`scaled_rows`, in ``block``'s dtype: ``(rows (b, F), scale (b,) float64)``."""
    block = block - mu if mu is not None else block.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        big = np.maximum(np.abs(block).max(axis=1, initial=0.0), floor)  # (b,)
    bad = ~np.isfinite(big)
    big = np.where(bad | (big == 0), 1.0, big).astype(block.dtype)
    block /= big[:, None]
    block[bad] = np.nan
    return block, big.astype(np.float64)


def scaled_rows(x: np.ndarray, center: np.ndarray | None = None, chunk_elems: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Rows (minus ``center``) divided by their largest absolute value.

    Returns ``(rows (N, F) float32, scale (N,) float64)`` with ``x - center = scale * rows``. Every
    entry of ``rows`` lies in [-1, 1], so products and norms of them neither overflow nor
    underflow at any finite scale of ``x``: cosine and retrieval are computed from these. With
    ``center`` the scale is at least the centre's largest absolute value, so ``center / scale``
    is also in [-1, 1]. All-zero rows keep scale 1; rows with a NaN or Inf become all NaN.
    float16/32 input is scaled in float32 (a division cannot overflow); a block whose subtraction
    of the centre overflows float32, and any float64 input, is scaled in float64.
    """
    x = np.asarray(x)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    mu64 = None if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
    mu32 = None if mu64 is None else mu64.astype(np.float32)
    floor = 0.0 if mu64 is None else float(np.abs(mu64).max(initial=0.0))
    fast = flat.dtype in (np.float16, np.float32) and (mu64 is None or np.isfinite(mu32).all())
    rows = np.empty(flat.shape, dtype=np.float32)
    scale = np.ones(n, dtype=np.float64)
    step = max(1, chunk_elems // max(1, flat.shape[1]))
    for s in range(0, n, step):
        raw = flat[s : s + step]
        if fast:
            block, big = _scale_block(raw.astype(np.float32, copy=False), mu32, floor)
            if np.isnan(block).any() and np.isfinite(raw).all():  # the subtraction overflowed float32
                block, big = _scale_block(raw.astype(np.float64), mu64, floor)
        else:
            block, big = _scale_block(raw.astype(np.float64), mu64, floor)
        rows[s : s + step] = block
        scale[s : s + step] = big
    return rows, scale


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32, computed scale-free); all-zero rows stay zero."""
    rows, _ = scaled_rows(x)
    return (rows / np.maximum(row_norms(rows), EPS)[:, None]).astype(np.float32)


def row_norms(rows: np.ndarray) -> np.ndarray:
    """L2 norm of each row in float64: ``(N,)``."""
    return np.sqrt(np.einsum("nf,nf->n", rows, rows, dtype=np.float64))


def cosine_per_trial(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Cosine similarity of each prediction with its own target, trailing dims flattened: ``(N,)``.

    Scale-free: both sides are divided by their largest entry in float64 before any product.
    """
    if np.shape(pred)[0] != np.shape(true)[0] or np.size(pred) != np.size(true):
        raise ValueError(f"pred {np.shape(pred)} and true {np.shape(true)} differ in shape")
    p, _ = scaled_rows(pred)
    t, _ = scaled_rows(true)
    num = np.einsum("nf,nf->n", p, t, dtype=np.float64)
    return num / np.maximum(row_norms(p) * row_norms(t), EPS)


def similarity_matrix(pred: np.ndarray, cands: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every prediction with every candidate: ``(N, M)`` float32.

    ``center`` (target-shaped) is subtracted from both sides before flattening. Scale-free: each
    row (minus the centre) is first divided by its largest entry in float64
    (:func:`scaled_rows`), so the raw cosine is the same at any finite scale of the predictions.
    A NaN/Inf prediction row scores -inf (never a hit).
    """
    p, _ = scaled_rows(pred, center)  # (N, F), entries in [-1, 1]
    c, _ = scaled_rows(cands, center)  # (M, F)
    dots = (p @ c.T).astype(np.float64)  # (N, F) @ (F, M) -> (N, M)
    with np.errstate(invalid="ignore"):
        sim = dots / np.maximum(np.outer(row_norms(p), row_norms(c)), EPS)
    return _finite_or_worst(sim.astype(np.float32))


def _finite_or_worst(sim: np.ndarray) -> np.ndarray:
    """A NaN/Inf similarity (a diverged prediction) scores -inf: under the tie rule it is never a hit.

    Without this, ``nan >= nan`` is False, so a NaN row would get rank 0 and count as perfect.
    """
    return sim if np.isfinite(sim).all() else np.where(np.isfinite(sim), sim, -np.inf).astype(sim.dtype)


def similarity_matrices(
    pred: np.ndarray, cands: np.ndarray, center: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Centred and raw cosine matrices ``(N, M)``; without ``center`` both are the same object.

    Two products: deriving one from the other loses all precision at extreme scales (the raw
    cosine of tiny predictions would drown in the centre).
    """
    raw = similarity_matrix(pred, cands)
    return (raw, raw) if center is None else (similarity_matrix(pred, cands, center), raw)


# ----------------------------------------------------------------------------- per-trial similarity

TOKEN_THRESHOLDS = (0.75, 0.85, 0.95, 0.98)


def per_trial_similarity(pred: np.ndarray, true: np.ndarray, chunk: int = 256) -> dict[str, np.ndarray]:
    """Per-trial similarity metrics, each ``(N,)`` float64 (the seed's set).

    ``pred`` may be ``(N, ...)`` or ``(1, ...)`` (a constant prediction, broadcast over trials).
    Keys: ``cosine`` (flattened), ``mse`` (mean squared difference), ``l2`` (norm of the
    difference), ``l1`` (sum of absolute differences), ``abs_diff`` (mean absolute difference).
    For 3-D targets ``(N, S, D)`` (text route) also ``token_cosine`` ``(N, S)`` (cosine of each
    token row), ``token_mse`` (mean over tokens of the per-token MSE) and ``token_l2`` (mean over
    tokens of the per-token L2 distance).
    """
    true = np.asarray(true)
    pred = np.asarray(pred)
    n = true.shape[0]
    if pred.shape[1:] != true.shape[1:] or pred.shape[0] not in (1, n):
        raise ValueError(f"pred {pred.shape} does not match true {true.shape}")
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("cosine", "mse", "l2", "l1", "abs_diff")}
    text = true.ndim == 3
    if text:
        out.update(token_cosine=[], token_mse=[], token_l2=[])
    chunk = max(1, min(chunk, 4_000_000 // max(1, true[0].size)))  # float64 blocks of ~32 MB
    for start in range(0, n, chunk):
        t = true[start : start + chunk]
        p = pred if pred.shape[0] == 1 else pred[start : start + chunk]
        dtype = _sum_dtype(p, t)
        t = t.astype(dtype, copy=False)
        p = np.broadcast_to(p.astype(dtype, copy=False), t.shape)
        d = p - t  # (b, ...)
        b = len(t)
        f = d[0].size
        if text:  # per-token sums first; the global sums are their totals
            tok_pt, tok_pp, tok_tt, tok_dd = (
                np.einsum("nsd,nsd->ns", x, y).astype(np.float64) for x, y in ((p, t), (p, p), (t, t), (d, d))
            )  # 4 x (b, S)
            pp, tt, pt, dd = tok_pp.sum(1), tok_tt.sum(1), tok_pt.sum(1), tok_dd.sum(1)
            out["token_cosine"].append(cosine_from_sums(tok_pt, tok_pp, tok_tt))
            out["token_mse"].append(tok_dd.mean(axis=1) / d.shape[2])
            out["token_l2"].append(np.sqrt(tok_dd).mean(axis=1))
        else:
            pp, tt, pt, dd = (np.einsum("nf,nf->n", x, y).astype(np.float64) for x, y in ((p, p), (t, t), (p, t), (d, d)))
        ad = np.abs(d).reshape(b, -1).sum(axis=1, dtype=np.float64)
        out["cosine"].append(cosine_from_sums(pt, pp, tt))
        out["mse"].append(dd / f)
        out["l2"].append(np.sqrt(dd))
        out["l1"].append(ad)
        out["abs_diff"].append(ad / f)
    return {k: np.concatenate(v) for k, v in out.items()}


def _sum_dtype(*blocks: np.ndarray) -> type:
    """float32 where its squared sums stay exact enough and finite, else float64 (any float32 scale).

    float32 is used only for float16/32 blocks whose nonzero rows all have their largest entry
    in [1e-15, 1e15]: squares then neither overflow nor vanish.
    """
    for b in blocks:
        if b.dtype not in (np.float16, np.float32):
            return np.float64
        with np.errstate(invalid="ignore"):
            big = np.abs(b.reshape(len(b), -1)).max(axis=1, initial=0.0)
        if not (np.isfinite(big).all() and (big <= 1e15).all() and ((big == 0) | (big >= 1e-15)).all()):
            return np.float64
    return np.float32


def cosine_from_sums(pt: np.ndarray, pp: np.ndarray, tt: np.ndarray) -> np.ndarray:
    """``pt / (|p| |t|)`` in float64, 0 where either side is all zero (no epsilon: scale-free)."""
    den = np.sqrt(pp) * np.sqrt(tt)
    out = np.zeros_like(pt)
    ok = den > 0
    out[ok] = pt[ok] / den[ok]
    out[np.isnan(den) | np.isnan(pt)] = np.nan  # a diverged prediction stays visible
    return out


def mean_std(x: np.ndarray) -> MeanStd:
    """``{"mean", "std"}`` of a per-trial vector (population std)."""
    x = np.asarray(x, dtype=np.float64)
    return {"mean": float(x.mean()), "std": float(x.std())}


def similarity_summary(per_trial: dict[str, np.ndarray]) -> dict[str, MeanStd]:
    """The ``similarity`` block of metrics.json from :func:`per_trial_similarity` output."""
    return {k: mean_std(per_trial[k]) for k in ("cosine", "mse", "l2", "l1", "abs_diff")}


def text_summary(per_trial: dict[str, np.ndarray], thresholds: Sequence[float] = TOKEN_THRESHOLDS) -> TextSummary:
    """The ``text`` block: global/token cosine, token MSE/L2, and threshold shares of token cosines."""
    tok = per_trial["token_cosine"]  # (N, S)
    return {
        "global_cosine": mean_std(per_trial["cosine"]),
        "token_cosine": mean_std(tok.mean(axis=1)),
        "token_mse": mean_std(per_trial["token_mse"]),
        "token_l2": mean_std(per_trial["token_l2"]),
        "token_cosine_above": {f"{t:g}": float((tok > t).mean()) for t in thresholds},
    }


