"""Evaluation metrics: pure, vectorised numpy functions over (pred, true, image_ids, ...).

Definitions follow ``docs/evaluation.md``. Shapes: ``pred`` and ``true`` are ``(N, D)`` (image
route) or ``(N, 77, 768)`` (text route); everything that compares whole targets flattens the
trailing dimensions.

Tie rule (used everywhere a rank is taken): the rank of the correct candidate is the number of
candidates whose score is *greater than or equal to* its own score (itself included). A tie
therefore counts against the prediction: a constant or all-zero prediction, which ties with
every candidate, never scores above chance by luck of the sort order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPS = 1e-12


# ----------------------------------------------------------------------------- basics


def flatten(x: np.ndarray) -> np.ndarray:
    """``(N, ...) -> (N, F)`` as float32 (a view when possible)."""
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1).astype(np.float32, copy=False)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (their cosine with anything is 0)."""
    x = flatten(x)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, EPS)


def cosine_per_trial(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Cosine similarity of each prediction with its own target, trailing dims flattened: ``(N,)``."""
    p, t = flatten(pred), flatten(true)
    if p.shape != t.shape:
        raise ValueError(f"pred {np.shape(pred)} and true {np.shape(true)} differ in shape")
    num = np.einsum("nf,nf->n", p, t, dtype=np.float64)
    den = np.linalg.norm(p, axis=1).astype(np.float64) * np.linalg.norm(t, axis=1)
    return (num / np.maximum(den, EPS)).astype(np.float64)


def candidates(true: np.ndarray, image_ids: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The distinct images of a set of trials.

    Returns ``(ids, embeddings, answer)``: ``ids`` the M distinct image ids (first-seen order),
    ``embeddings`` ``(M, ...)`` the true target of each (taken from its first trial), and
    ``answer`` ``(N,)`` int64, the candidate index of each trial's own image.
    """
    ids = [str(i) for i in image_ids]
    if len(ids) != len(true):
        raise ValueError(f"{len(ids)} image_ids for {len(true)} trials")
    uniq, first, answer = np.unique(np.asarray(ids, dtype=object).astype(str), return_index=True, return_inverse=True)
    order = np.argsort(first)  # first-seen order, stable and independent of id spelling
    remap = np.empty_like(order)
    remap[order] = np.arange(len(order))
    return [str(u) for u in uniq[order]], np.asarray(true)[first[order]], remap[answer.reshape(-1)].astype(np.int64)


def similarity_matrix(pred: np.ndarray, cands: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every prediction with every candidate: ``(N, M)`` float32.

    ``center`` (target-shaped) is subtracted from both sides before flattening.
    """
    p, c = np.asarray(pred, dtype=np.float32), np.asarray(cands, dtype=np.float32)
    if center is not None:
        center = np.asarray(center, dtype=np.float32)
        p, c = p - center, c - center  # broadcast over the leading axis
    return unit_rows(p) @ unit_rows(c).T  # (N, F) @ (F, M) -> (N, M)


def ranks(sim: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """1-based rank of each row's answer: number of candidates scoring >= it (ties count against)."""
    sim = np.asarray(sim)
    own = sim[np.arange(sim.shape[0]), answer][:, None]  # (N, 1)
    return (sim >= own).sum(axis=1).astype(np.int64)


def retrieval_topk(
    pred: np.ndarray,
    true: np.ndarray,
    image_ids: Sequence[str],
    ks: Sequence[int] = (1, 5),
    center: np.ndarray | None = None,
) -> dict[str, float]:
    """All-way retrieval accuracy: each prediction ranks the distinct images by cosine.

    Candidates are the distinct ``image_ids`` with their true embeddings; a trial is a top-k hit
    when its own image ranks within the first k (ties count against, see module docstring).
    Returns ``{"top1": float, "top5": float}`` (one key per k).
    """
    _, cands, answer = candidates(true, image_ids)
    r = ranks(similarity_matrix(pred, cands, center), answer)
    return {f"top{k}": float((r <= k).mean()) for k in ks}
