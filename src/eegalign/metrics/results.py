"""Typed results of the scoring functions, and the JSON entries of ``metrics.json`` they serialise to.

The TypedDicts are the exact shapes written to ``metrics.json`` (``docs/evaluation.md``); the
dataclasses carry what one scoring step computed, per trial, for the next step (per-subject
tables, permutation tests, report figures) and turn themselves into those JSON entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

import numpy as np


class MeanStd(TypedDict):
    """A similarity or distance over trials: mean and population std."""

    mean: float
    std: float


class Accuracy(TypedDict):
    """An accuracy over trials: value, 95% percentile-bootstrap CI ``[lo, hi]`` and chance level."""

    value: float
    ci95: list[float]
    chance: float


class TextSummary(TypedDict):
    """The ``text`` block (text route): global/token cosine, token MSE/L2, shares of token cosines above thresholds."""

    global_cosine: MeanStd
    token_cosine: MeanStd
    token_mse: MeanStd
    token_l2: MeanStd
    token_cosine_above: dict[str, float]


@dataclass
class Hits:
    """Per-trial scores of several accuracy metrics and their chance levels.

    Args:
        values: ``{metric: (N,) float64}``, the per-trial hit rate (1/0, or a mean over k-way draws).
        chance: ``{metric: chance level}`` (same keys, same order).
    """

    values: dict[str, np.ndarray] = field(default_factory=dict)
    chance: dict[str, float] = field(default_factory=dict)


@dataclass
class SimilarityScores:
    """Similarity of one prediction set with the targets.

    Args:
        per_trial: :func:`eegalign.metrics.similarity.per_trial_similarity` output (``cosine`` (N,), ...).
        summary: the ``similarity`` block.
        text: the ``text`` block (text route) or None.
    """

    per_trial: dict[str, np.ndarray]
    summary: dict[str, MeanStd]
    text: TextSummary | None


@dataclass
class ClassificationScores:
    """Class-prototype classification of one prediction set.

    Args:
        hits: per-trial top-1/top-5 hits over every trial (NaN where the class has no prototype).
        accuracy: the ``classification`` block, or None when no trial could be scored.
        skipped: why classification was not scored (zero-shot split), else None.
    """

    hits: dict[str, np.ndarray]
    accuracy: dict[str, Accuracy] | None
    skipped: str | None = None


@dataclass
class PredictionScores:
    """Every score of one prediction set (the model's, or the baseline's constant prediction).

    Args:
        similarity: see :class:`SimilarityScores`.
        retrieval: the ``retrieval`` block; ``retrieval_raw``: uncentred text-route retrieval, else None.
        classification: see :class:`ClassificationScores` (None without class labels).
        per_trial: ``{metric: (N,)}``: cosine, retrieval hits and class hits, for the per-subject table.
        sim, sim_raw: ``(N, M)`` (centred and raw) cosine of each prediction with each candidate.
    """

    similarity: SimilarityScores
    retrieval: dict[str, Accuracy]
    retrieval_raw: dict[str, Accuracy] | None
    classification: ClassificationScores | None
    per_trial: dict[str, np.ndarray]
    sim: np.ndarray
    sim_raw: np.ndarray

    def to_json(self) -> dict:
        """The block of metrics.json: similarity, [text], retrieval, [retrieval_raw], [classification | skipped]."""
        out: dict = {"similarity": self.similarity.summary}
        if self.similarity.text is not None:
            out["text"] = self.similarity.text
        out["retrieval"] = self.retrieval
        if self.retrieval_raw is not None:
            out["retrieval_raw"] = self.retrieval_raw
        if self.classification is not None and self.classification.accuracy is not None:
            out["classification"] = self.classification.accuracy
        elif self.classification is not None and self.classification.skipped:
            out["classification_skipped"] = self.classification.skipped
        return out


@dataclass
class Significance:
    """Permutation p-values of all-way top-1 and of the mean own-image cosine, and the number of permutations."""

    permutation_p: float
    permutation_p_cosine: float
    permutation_n: int


@dataclass
class AveragedRetrieval:
    """Retrieval after averaging the predictions of trials that share an image (and subject).

    Args:
        n: number of averaged queries; by: ``"image"`` or ``"image_subject"``; note: what was averaged.
        model, baseline: the accuracy blocks of the model and of the baseline on the same draws.
    """

    n: int
    by: str
    note: str
    model: dict[str, Accuracy]
    baseline: dict[str, Accuracy]

    def to_json(self) -> dict:
        """The ``retrieval_averaged`` block: n, by, note, then one accuracy entry per metric."""
        return {"n": self.n, "by": self.by, "note": self.note, **self.model}


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
