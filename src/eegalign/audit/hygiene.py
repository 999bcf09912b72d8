"""Split hygiene: what the train and test splits share (images, blocks, time).

* Exemplar leakage (Kilgallen et al. 2024): images whose ``image_id`` has trials on both sides of
  a split pair.
* Temporal interleaving (Li et al. 2020): when the cache knows the presentation order (meta columns
  ``session`` and ``trial_index``, optionally ``block``), how close in time test trials sit to train
  trials of the same recording -- close neighbours share slow drifts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ORDER_COLUMNS = ("session", "trial_index")
PAIRS = (("train", "test"), ("train", "validation"), ("validation", "test"))


@dataclass
class SharedImages:
    """Images with trials in both splits of a pair, and how many trials of the second split show them."""

    pair: str
    images: int
    trials: int
    trials_in_second: int
    fraction_of_second: float


@dataclass
class Interleaving:
    """How test trials sit among train trials within each recording session (presentation order)."""

    sessions: int
    test_trials: int
    test_next_to_train: float  # fraction of test trials with a train trial immediately before or after
    median_gap_to_train: float | None  # trials between a test trial and the nearest train trial
    blocks_with_train_and_test: int | None
    blocks: int | None


@dataclass
class HygieneResult:
    """Everything :func:`split_hygiene` measured (``interleaving`` None when the order is unknown)."""

    shared_images: list[SharedImages]
    exemplar_leakage: bool
    interleaving: Interleaving | None
    order_note: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shared_images(meta: Any, first: str, second: str) -> SharedImages:
    """Images shown in both ``first`` and ``second`` splits of ``meta``."""
    split, ids = meta["split"].to_numpy(), meta["image_id"].to_numpy()
    both = set(ids[split == first]) & set(ids[split == second])
    in_second = split == second
    n_second = int(np.sum(in_second & np.isin(ids, list(both))))
    return SharedImages(
        pair=f"{first}/{second}",
        images=len(both),
        trials=int(np.sum(np.isin(ids, list(both)) & np.isin(split, [first, second]))),
        trials_in_second=n_second,
        fraction_of_second=n_second / max(int(in_second.sum()), 1),
    )


def _session_gaps(split: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For one session's trials: (test trial next to a train trial?, gap to nearest train) per test trial."""
    s = split[np.argsort(order, kind="stable")]
    train_pos = np.flatnonzero(s == "train")
    test_pos = np.flatnonzero(s == "test")
    if not len(test_pos) or not len(train_pos):
        return np.zeros(len(test_pos), bool), np.full(len(test_pos), np.nan)
    k = np.searchsorted(train_pos, test_pos)
    before = np.where(k > 0, test_pos - train_pos[np.maximum(k - 1, 0)], np.inf)
    after = np.where(k < len(train_pos), train_pos[np.minimum(k, len(train_pos) - 1)] - test_pos, np.inf)
    gap = np.minimum(before, after)
    return gap == 1, gap


def interleaving(meta: Any) -> Interleaving:
    """Temporal interleaving of test and train trials (needs ``subject``, ``session``, ``trial_index``)."""
    keys = meta["subject"].astype(str) + "/" + meta["session"].astype(str)
    split, order = meta["split"].to_numpy(), meta["trial_index"].to_numpy()
    adjacent, gaps = [], []
    for key in np.unique(keys.to_numpy()):
        rows = np.flatnonzero(keys.to_numpy() == key)
        a, g = _session_gaps(split[rows], order[rows])
        adjacent.append(a)
        gaps.append(g)
    adj, gap = np.concatenate(adjacent), np.concatenate(gaps)
    finite = gap[np.isfinite(gap)]
    mixed = blocks = None
    if "block" in meta.columns:
        groups = meta.assign(_key=keys).groupby(["_key", "block"])["split"]
        kinds = groups.agg(lambda s: {"train", "test"} <= set(s))
        mixed, blocks = int(kinds.sum()), int(len(kinds))
    return Interleaving(
        sessions=int(keys.nunique()),
        test_trials=int(len(adj)),
        test_next_to_train=float(adj.mean()) if len(adj) else 0.0,
        median_gap_to_train=float(np.median(finite)) if len(finite) else None,
        blocks_with_train_and_test=mixed,
        blocks=blocks,
    )


def split_hygiene(meta: Any) -> HygieneResult:
    """Shared images for every split pair, and the temporal interleaving when the order is known."""
    pairs = [shared_images(meta, a, b) for a, b in PAIRS]
    has_order = all(c in meta.columns for c in ORDER_COLUMNS)
    note = (
        "presentation order from the cache's session/trial_index columns"
        if has_order
        else "the source gives no trial order or block structure (the hub schema has none), so temporal "
        "interleaving cannot be measured; the probes still test for its consequence"
    )
    return HygieneResult(
        shared_images=pairs,
        exemplar_leakage=pairs[0].images > 0,
        interleaving=interleaving(meta) if has_order else None,
        order_note=note,
    )
