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
    """``(N, ...) -> (N, F)`` as float32, or float64 when given float64 (a view when possible)."""
    x = np.asarray(x)
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    return x.reshape(x.shape[0], -1).astype(dtype, copy=False)


def scaled_rows(x: np.ndarray, center: np.ndarray | None = None, chunk_elems: int = 4_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Rows (minus ``center``) divided by their largest absolute value, in float64 first.

    Returns ``(rows (N, F) float32, scale (N,) float64)`` with ``x - center = scale * rows``. Every
    entry of ``rows`` lies in [-1, 1], so products and norms of them neither overflow nor
    underflow at any finite scale of ``x``: cosine and retrieval are computed from these. With
    ``center`` the scale is at least the centre's largest absolute value, so ``center / scale``
    is also in [-1, 1]. All-zero rows keep scale 1; rows with a NaN or Inf become all NaN.
    """
    x = np.asarray(x)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    mu = None if center is None else np.asarray(center, dtype=np.float64).reshape(-1)
    floor = 0.0 if mu is None else float(np.abs(mu).max(initial=0.0))
    rows = np.empty(flat.shape, dtype=np.float32)
    scale = np.ones(n, dtype=np.float64)
    step = max(1, chunk_elems // max(1, flat.shape[1]))
    for s in range(0, n, step):
        block = flat[s : s + step].astype(np.float64)  # (b, F)
        if mu is not None:
            block -= mu
        with np.errstate(invalid="ignore"):
            big = np.maximum(np.abs(block).max(axis=1, initial=0.0), floor)  # (b,)
        bad = ~np.isfinite(big)
        big = np.where(bad | (big == 0), 1.0, big)
        block /= big[:, None]
        block[bad] = np.nan
        rows[s : s + step] = block
        scale[s : s + step] = big
    return rows, scale


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32, computed scale-free); all-zero rows stay zero."""
    rows, _ = scaled_rows(x)
    norm = np.sqrt(np.einsum("nf,nf->n", rows, rows, dtype=np.float64))
    return (rows / np.maximum(norm, EPS)[:, None]).astype(np.float32)


def _row_norms(rows: np.ndarray) -> np.ndarray:
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
    return num / np.maximum(_row_norms(p) * _row_norms(t), EPS)


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

    ``center`` (target-shaped) is subtracted from both sides before flattening. Scale-free: each
    row (minus the centre) is first divided by its largest entry in float64
    (:func:`scaled_rows`), so the raw cosine is the same at any finite scale of the predictions.
    A NaN/Inf prediction row scores -inf (never a hit).
    """
    p, _ = scaled_rows(pred, center)  # (N, F), entries in [-1, 1]
    c, _ = scaled_rows(cands, center)  # (M, F)
    dots = (p @ c.T).astype(np.float64)  # (N, F) @ (F, M) -> (N, M)
    with np.errstate(invalid="ignore"):
        sim = dots / np.maximum(np.outer(_row_norms(p), _row_norms(c)), EPS)
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
        t = true[start : start + chunk].astype(np.float64)  # float64: squares of any float32 stay finite
        p = (pred if pred.shape[0] == 1 else pred[start : start + chunk]).astype(np.float64)
        p = np.broadcast_to(p, t.shape)
        d = p - t  # (b, ...)
        b = len(t)
        f = d[0].size
        if text:  # per-token sums first; the global sums are their totals
            tok_pt, tok_pp, tok_tt, tok_dd = (
                np.einsum("nsd,nsd->ns", x, y) for x, y in ((p, t), (p, p), (t, t), (d, d))
            )  # 4 x (b, S)
            pp, tt, pt, dd = tok_pp.sum(1), tok_tt.sum(1), tok_pt.sum(1), tok_dd.sum(1)
            out["token_cosine"].append(_cosine(tok_pt, tok_pp, tok_tt))
            out["token_mse"].append(tok_dd.mean(axis=1) / d.shape[2])
            out["token_l2"].append(np.sqrt(tok_dd).mean(axis=1))
        else:
            pp, tt, pt, dd = (np.einsum("nf,nf->n", x, y) for x, y in ((p, p), (t, t), (p, t), (d, d)))
        ad = np.abs(d).reshape(b, -1).sum(axis=1)
        out["cosine"].append(_cosine(pt, pp, tt))
        out["mse"].append(dd / f)
        out["l2"].append(np.sqrt(dd))
        out["l1"].append(ad)
        out["abs_diff"].append(ad / f)
    return {k: np.concatenate(v) for k, v in out.items()}


def _cosine(pt: np.ndarray, pp: np.ndarray, tt: np.ndarray) -> np.ndarray:
    """``pt / (|p| |t|)`` in float64, 0 where either side is all zero (no epsilon: scale-free)."""
    den = np.sqrt(pp) * np.sqrt(tt)
    out = np.zeros_like(pt)
    ok = den > 0
    out[ok] = pt[ok] / den[ok]
    out[np.isnan(den) | np.isnan(pt)] = np.nan  # a diverged prediction stays visible
    return out


def mean_std(x: np.ndarray) -> dict[str, float]:
    """``{"mean", "std"}`` of a per-trial vector (population std)."""
    x = np.asarray(x, dtype=np.float64)
    return {"mean": float(x.mean()), "std": float(x.std())}


def similarity_summary(per_trial: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """The ``similarity`` block of metrics.json from :func:`per_trial_similarity` output."""
    return {k: mean_std(per_trial[k]) for k in ("cosine", "mse", "l2", "l1", "abs_diff")}


def text_summary(per_trial: dict[str, np.ndarray], thresholds: Sequence[float] = TOKEN_THRESHOLDS) -> dict:
    """The ``text`` block: global/token cosine, token MSE/L2, and threshold shares of token cosines."""
    tok = per_trial["token_cosine"]  # (N, S)
    return {
        "global_cosine": mean_std(per_trial["cosine"]),
        "token_cosine": mean_std(tok.mean(axis=1)),
        "token_mse": mean_std(per_trial["token_mse"]),
        "token_l2": mean_std(per_trial["token_l2"]),
        "token_cosine_above": {f"{t:g}": float((tok > t).mean()) for t in thresholds},
    }


# ----------------------------------------------------------------------------- retrieval


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


# ----------------------------------------------------------------------------- classification


def class_prototypes(targets: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prototype of class c = mean target of the images of class c: ``(classes (C,), protos (C, ...))``."""
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    targets = np.asarray(targets)
    if len(labels) != len(targets):
        raise ValueError(f"{len(targets)} targets but {len(labels)} labels")
    classes = np.unique(labels)
    protos = np.stack([targets[labels == c].astype(np.float64).mean(axis=0) for c in classes]).astype(np.float32)
    return classes, protos


def prototype_ranks(
    pred: np.ndarray, label: np.ndarray, classes: np.ndarray, protos: np.ndarray, center: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each trial's own class among the prototypes by cosine (ties count against).

    Returns ``(rank (N,), valid (N,) bool)``; ``valid`` is False for trials whose class has no
    prototype (their rank is set to ``len(classes) + 1``).
    """
    label = np.asarray(label).astype(np.int64)
    pos = {int(c): i for i, c in enumerate(classes)}
    answer = np.array([pos.get(int(c), -1) for c in label], dtype=np.int64)
    valid = answer >= 0
    sim = similarity_matrix(pred, protos, center)  # (N or 1, C)
    sim = np.broadcast_to(sim, (len(label), len(classes)))
    r = np.full(len(label), len(classes) + 1, dtype=np.int64)
    if valid.any():
        r[valid] = ranks(sim[valid], answer[valid])
    return r, valid


# ----------------------------------------------------------------------------- significance


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


# ----------------------------------------------------------------------------- everything at once


def finite_or_null(obj: object) -> tuple[object, int]:
    """A copy of a JSON-like tree with every NaN/Inf float replaced by None, and how many were.

    metrics.json is strict JSON: ``NaN`` and ``Infinity`` are not JSON values.
    """
    if isinstance(obj, dict):
        pairs = [(k, finite_or_null(v)) for k, v in obj.items()]
        return {k: v for k, (v, _) in pairs}, sum(c for _, (_, c) in pairs)
    if isinstance(obj, (list, tuple)):
        items = [finite_or_null(v) for v in obj]
        return [v for v, _ in items], sum(c for _, c in items)
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None, 1
    return obj, 0


KWAY = (2, 10, 50, 200)
KWAY_THINGS = (2, 4, 10, 50, 100, 200)  # the THINGS-EEG2 literature reports 2-, 4-, 10-, 50-, 100-way and 200-way


def _scored(values: dict[str, np.ndarray], chance: dict[str, float], counts: np.ndarray) -> dict[str, dict]:
    """``{name: {"value", "ci95", "chance"}}`` for per-trial hit vectors, CIs from shared resamples."""
    names = list(values)
    if not names:
        return {}
    stacked = np.stack([values[k] for k in names], axis=1)  # (N, K)
    lo, hi = bootstrap_ci(stacked, counts)
    return {
        k: {"value": float(stacked[:, i].mean()), "ci95": [float(lo[i]), float(hi[i])], "chance": float(chance[k])}
        for i, k in enumerate(names)
    }


def _retrieval_hits(
    sim: np.ndarray, answer: np.ndarray, kway: Sequence[int], draws: int, seed: int, cache: dict | None = None
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Per-trial hit vectors and chance levels of all-way and k-way retrieval.

    ``cache`` keeps the distractor draws per k, so that model, baseline and raw variants are
    scored on the very same draws.
    """
    m = sim.shape[1]
    cache = {} if cache is None else cache
    hits: dict[str, np.ndarray] = {}
    chance: dict[str, float] = {}
    for k in kway:
        if k > m:
            continue
        if k not in cache:
            cache[k] = kway_distractors(answer, m, k, draws, seed + k)
        tops = (1, 5) if k >= 10 else (1,)
        kh = kway_hits(sim, answer, k, topk=tops, distractors=cache[k])
        for t in tops:
            hits[f"{k}way_top{t}"] = kh[t]
            chance[f"{k}way_top{t}"] = min(t, k) / k
    for t, h in all_way_hits(sim, answer, (1, 5)).items():
        hits[f"all_top{t}"] = h
        chance[f"all_top{t}"] = min(t, m) / m
    return hits, chance


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
    arrays the report's figures need (``sim_centred``: ``(N, M)`` cosine of each prediction with
    each candidate after subtracting the mean target, train or split, from both).
    ``average_trials``: ``"image_subject"`` (or True) averages the predictions of all trials of
    one image and one subject before retrieval, ``"image"`` all trials of one image (across
    subjects); reported separately as ``retrieval_averaged``.
    """
    pred = np.asarray(pred, dtype=np.float32)
    true = np.asarray(true, dtype=np.float32)
    label = np.asarray(label).astype(np.int64)
    subject = np.asarray(subject).astype(np.int64)
    n = len(pred)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ in shape")
    route = "text" if pred.ndim == 3 else "image"
    ids, cands, answer = candidates(true, image_ids)
    cand_label = label[np.unique(answer, return_index=True)[1]]  # class of each candidate

    if train_targets is None:
        source = "split"
        ref_targets, ref_labels = cands, cand_label
    else:
        source = "train"
        ref_targets = np.asarray(train_targets, dtype=np.float32)
        ref_labels = np.asarray(train_labels).astype(np.int64) if train_labels is not None else None
        if ref_targets.shape[1:] != pred.shape[1:]:
            raise ValueError(f"train targets {ref_targets.shape[1:]} do not match predictions {pred.shape[1:]}")
    mean_target = ref_targets.astype(np.float64).mean(axis=0).astype(np.float32)
    center = mean_target if route == "text" else None
    counts = bootstrap_counts(n, n_boot, seed)
    baseline_pred = mean_target[None]  # (1, ...): the same prediction for every trial

    arrays: dict[str, np.ndarray] = {"label": label, "subject": subject, "answer": answer, "cand_label": cand_label}
    metrics: dict = {
        "n": n,
        "route": route,
        "n_images": len(ids),
        "n_candidates": len(ids),  # all-way retrieval candidates (= distinct images of the split)
        "n_subjects": int(len(np.unique(subject))),
    }

    draws_cache: dict[int, np.ndarray] = {}

    def block(p: np.ndarray, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        per = per_trial_similarity(p, true)
        out: dict = {"similarity": similarity_summary(per)}
        if route == "text":
            out["text"] = text_summary(per)
        sim, sim_raw = (np.broadcast_to(x, (n, len(ids))) for x in similarity_matrices(p, cands, center))
        hits, chance = _retrieval_hits(sim, answer, kway, kway_draws, seed, draws_cache)
        out["retrieval"] = _scored(hits, chance, counts)
        vec = {"cosine": per["cosine"], **hits}
        if route == "text":
            raw_hits, raw_chance = _retrieval_hits(sim_raw, answer, kway, kway_draws, seed, draws_cache)
            out["retrieval_raw"] = _scored(raw_hits, raw_chance, counts)
            # (T,) mean over trials; a diverged (non-finite) trial is left out rather than blanking the curve
            tok = per["token_cosine"]  # (N, T)
            finite = np.isfinite(tok).all(axis=1)
            arrays[f"{prefix}token_cosine_curve"] = tok[finite].mean(axis=0) if finite.any() else np.full(tok.shape[1], np.nan)
            arrays[f"{prefix}token_cosine_dropped"] = np.asarray(int((~finite).sum()))  # trials left out of the curve
        if ref_labels is not None:
            classes, protos = class_prototypes(ref_targets, ref_labels)
            r, valid = prototype_ranks(p, label, classes, protos, center)
            c = len(classes)
            cls_hits = {"top1": (r <= 1).astype(np.float64), "top5": (r <= 5).astype(np.float64)}
            if valid.all():
                out["classification"] = _scored(cls_hits, {"top1": 1 / c, "top5": min(5, c) / c}, counts)
            elif not valid.any():  # zero-shot (THINGS-EEG2): no evaluated class has a training prototype
                out["classification_skipped"] = "no evaluated trial's class has a training prototype (zero-shot split)"
            else:  # trials of classes without a prototype cannot be scored: resample the rest
                sub = bootstrap_counts(int(valid.sum()), counts.shape[0], seed)
                out["classification"] = _scored(
                    {k: v[valid] for k, v in cls_hits.items()}, {"top1": 1 / c, "top5": min(5, c) / c}, sub
                )
            if valid.any():
                vec.update({f"class_{k}": np.where(valid, v, np.nan) for k, v in cls_hits.items()})
        arrays[f"{prefix}cosine"] = per["cosine"]
        return out, {"vec": vec, "sim": sim, "sim_raw": sim_raw}

    model_block, model_aux = block(pred, "")
    metrics.update(model_block)
    base_block, base_aux = block(baseline_pred, "baseline_")
    # The report's matrix figure: cosine after subtracting the mean target from predictions and candidates
    # (raw cosine of CLIP-like targets is dominated by their shared mean direction). The text route's
    # retrieval matrix is already centred on it.
    arrays["sim_centred"] = np.ascontiguousarray(
        model_aux["sim"] if route == "text" else similarity_matrix(pred, cands, mean_target)
    )  # (N, M)
    perm = permutation_test(model_aux["sim"], answer, n_perm, seed)
    perm_cos = permutation_test(model_aux["sim_raw"], answer, n_perm, seed) if route == "text" else perm
    metrics["baselines"] = {
        "train_mean": base_block,
        "permutation_p": perm["top1_p"],
        "permutation_p_cosine": perm_cos["cosine_p"],
        "permutation_n": n_perm,
    }

    per_subject: dict[str, dict] = {}
    keys = ["cosine", "all_top1", "all_top5", "2way_top1", "class_top1"]
    for s in np.unique(subject):
        mask = subject == s
        row: dict = {"n": int(mask.sum())}
        for k in keys:
            if k in model_aux["vec"]:
                name = k.replace("class_", "classification_")
                row[name] = float(np.nanmean(model_aux["vec"][k][mask])) if np.isfinite(model_aux["vec"][k][mask]).any() else None
                row[f"baseline_{name}"] = (
                    float(np.nanmean(base_aux["vec"][k][mask])) if np.isfinite(base_aux["vec"][k][mask]).any() else None
                )
        per_subject[str(int(s))] = row
    metrics["per_subject"] = per_subject

    if average_trials:
        by = "image_subject" if average_trials is True else str(average_trials).replace("-", "_")
        if by not in ("image", "image_subject"):
            raise ValueError(f"average_trials must be 'image' or 'image_subject', got {average_trials!r}")
        keys_g = [f"{i}\x00{s}" if by == "image_subject" else str(i) for i, s in zip(image_ids, subject)]
        avg_pred, group = average_by_group(pred, keys_g)
        first = np.unique(group, return_index=True)[1]
        avg_true, avg_ids = true[first], [str(image_ids[i]) for i in first]
        _, a_cands, a_answer = candidates(avg_true, avg_ids)
        a_sim = similarity_matrix(avg_pred, a_cands, center)  # (G, M')
        a_draws: dict[int, np.ndarray] = {}  # the model and the baseline on the same distractor draws
        a_hits, a_chance = _retrieval_hits(a_sim, a_answer, kway, kway_draws, seed, a_draws)
        # the train-mean baseline predicts the same for every trial, so also for every averaged group
        b_sim = np.broadcast_to(similarity_matrix(baseline_pred, a_cands, center), a_sim.shape)  # (G, M')
        b_hits, b_chance = _retrieval_hits(b_sim, a_answer, kway, kway_draws, seed, a_draws)
        a_counts = bootstrap_counts(len(avg_pred), n_boot, seed)
        what = "image and subject" if by == "image_subject" else "image (across subjects)"
        metrics["retrieval_averaged"] = {
            "n": len(avg_pred),
            "by": by,
            "note": f"predictions of all trials of the same {what} averaged before retrieval",
            **_scored(a_hits, a_chance, a_counts),
        }
        metrics["baselines"]["train_mean"]["retrieval_averaged"] = _scored(b_hits, b_chance, a_counts)

    metrics["settings"] = {
        "baseline_source": source,
        "baseline_label": "train mean" if source == "train" else "split mean (no train targets given; optimistic)",
        "prototype_source": "train-split images" if source == "train" else "evaluated split's images (optimistic)",
        "retrieval_center": "train mean target" if (route == "text" and source == "train") else (
            "split mean target" if route == "text" else "none"
        ),
        "kway_draws": kway_draws,
        "bootstrap_resamples": n_boot,
        "permutation_resamples": n_perm,
        "seed": seed,
        "tie_rule": "rank = number of candidates scoring >= the correct one (ties count as misses)",
        "n_classes": int(len(np.unique(ref_labels))) if ref_labels is not None else None,
    }
    metrics, replaced = finite_or_null(metrics)
    if replaced:
        metrics["settings"]["non_finite_values"] = f"{replaced} values were NaN or infinite (diverged predictions) and are null"
    return metrics, arrays
