"""Retrieval: rank the distinct images of a split by similarity; all-way and k-way hits per trial.

Tie rule (used everywhere a rank is taken): the rank of the correct candidate is the number of
candidates whose score is *greater than or equal to* its own score (itself included). A tie
therefore counts against the prediction: a constant or all-zero prediction, which ties with
every candidate, never scores above chance by luck of the sort order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eegalign.metrics.results import Hits
from eegalign.metrics.similarity import flatten, similarity_matrix


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


def kway_distractors(answer: np.ndarray, m: int, k: int, n_draws: int = 10, seed: int = 0) -> np.ndarray:
    """Seeded distractor sets: ``(N, n_draws, k - 1)`` int32 candidate indices, drawn without
    replacement from the ``m - 1`` candidates other than each trial's answer."""
    if not 2 <= k <= m:
        raise ValueError(f"k-way retrieval needs 2 <= k <= {m} (number of candidates), got k={k}")
    answer = np.asarray(answer)
    n = len(answer)
    rng = np.random.default_rng(seed)
    out = np.empty((n, n_draws, k - 1), dtype=np.int32)
    step = max(1, 8_000_000 // max(1, n_draws * m))
    for s in range(0, n, step):
        rows = np.arange(s, min(n, s + step))
        keys = rng.random((len(rows), n_draws, m), dtype=np.float32)  # a random order of the candidates
        keys[np.arange(len(rows)), :, answer[rows]] = np.inf  # never draw the answer itself
        out[rows] = np.argpartition(keys, k - 2, axis=2)[:, :, : k - 1]
    return out


def kway_hits(
    sim: np.ndarray,
    answer: np.ndarray,
    k: int,
    topk: Sequence[int] = (1,),
    n_draws: int = 10,
    seed: int = 0,
    distractors: np.ndarray | None = None,
) -> dict[int, np.ndarray]:
    """k-way retrieval: the true image plus ``k - 1`` distractors drawn without replacement.

    For every trial, ``n_draws`` distractor sets are drawn from the other candidates with a
    generator seeded by ``seed`` (or taken from ``distractors``, see :func:`kway_distractors`);
    the returned per-trial hit rate (``(N,)`` float64, one array per requested top-t) is averaged
    over the draws. Ties count against (rank = 1 + number of distractors scoring >= the true
    image). Requires ``2 <= k <= M``.
    """
    sim = np.asarray(sim)
    n, m = sim.shape
    if distractors is None:
        distractors = kway_distractors(answer, m, k, n_draws, seed)
    own = sim[np.arange(n), answer]  # (N,)
    scores = sim[np.arange(n)[:, None, None], distractors]  # (N, D, k-1)
    rank = 1 + (scores >= own[:, None, None]).sum(axis=2)  # (N, D)
    return {t: (rank <= t).mean(axis=1) for t in topk}


def all_way_hits(sim: np.ndarray, answer: np.ndarray, topk: Sequence[int] = (1, 5)) -> dict[int, np.ndarray]:
    """All-way retrieval per trial: ``{t: (N,) float64}``, 1.0 where the own image ranks <= t."""
    r = ranks(sim, answer)
    return {t: (r <= t).astype(np.float64) for t in topk}


def average_by_group(pred: np.ndarray, keys: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Average the rows of ``pred`` that share a key: ``(G, ...)`` means and the ``(N,)`` group index."""
    _, group = np.unique(np.asarray([str(k) for k in keys]), return_inverse=True)
    group = group.reshape(-1)
    g = int(group.max()) + 1
    from scipy.sparse import csr_matrix

    counts = np.bincount(group, minlength=g).astype(np.float32)
    weights = csr_matrix(
        ((1.0 / counts[group]).astype(np.float32), (group, np.arange(len(group)))), shape=(g, len(group)), dtype=np.float32
    )
    means = np.asarray(weights @ flatten(pred), dtype=np.float32)  # (G, N) @ (N, F) -> (G, F)
    return means.reshape((g, *np.shape(pred)[1:])), group




def retrieval_hits(
    sim: np.ndarray, answer: np.ndarray, kway: Sequence[int], draws: int, seed: int,
    distractors: dict[int, np.ndarray] | None = None,
) -> Hits:
    """Per-trial hits and chance levels of k-way (each k <= M) and all-way retrieval.

    ``sim`` ``(N, M)``, ``answer`` ``(N,)``. k-way keys ``{k}way_top1`` (and ``_top5`` for k >= 10),
    then ``all_top1``, ``all_top5``. ``distractors`` keeps the draws per k, so that the model,
    the baseline and the raw variant are scored on the very same draws.
    """
    m = sim.shape[1]
    distractors = {} if distractors is None else distractors
    hits = Hits()
    for k in kway:
        if k > m:
            continue
        if k not in distractors:
            distractors[k] = kway_distractors(answer, m, k, draws, seed + k)
        tops = (1, 5) if k >= 10 else (1,)
        by_top = kway_hits(sim, answer, k, topk=tops, distractors=distractors[k])
        for t in tops:
            hits.values[f"{k}way_top{t}"] = by_top[t]
            hits.chance[f"{k}way_top{t}"] = min(t, k) / k
    for t, h in all_way_hits(sim, answer, (1, 5)).items():
        hits.values[f"all_top{t}"] = h
        hits.chance[f"all_top{t}"] = min(t, m) / m
    return hits
