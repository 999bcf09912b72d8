"""Split protocols for ``data prepare --split-by``: which trials may be tested against which.

* ``source``  -- the source's own splits (hub data set / release splits file), unchanged;
* ``image``   -- every image entirely in one split, dealt stratified by class (no exemplar leakage);
* ``block``   -- within each subject, whole presentation blocks (``session``/``block`` columns) held
  out: no test trial shares a block, hence a block's slow drift, with a train trial;
* ``session`` -- within each subject, whole recording sessions held out (needs >= 3 sessions each).

Leave-one-subject-out is not a cache protocol: it is chosen at training time (``EEGDataModule``'s
``leave_out_subject``) on any cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eegalign.errors import ConfigError, DataError

PROTOCOLS = ("source", "image", "block", "session")
SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class SplitSummary:
    """What a protocol did: the new split of every trial and a JSON-able description."""

    split: np.ndarray  # (N,) object: train / validation / test
    protocol: str
    info: dict[str, Any] = field(default_factory=dict)


def split_counts(n: int, fractions: tuple[float, float, float]) -> np.ndarray:
    """Largest-remainder counts of ``n`` groups for (train, validation, test); every positive split gets one."""
    raw = np.asarray(fractions, dtype=float) * n
    counts = np.floor(raw).astype(int)
    for j in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[j] += 1
    for j in (2, 1):
        if fractions[j] > 0 and counts[j] == 0:
            counts[int(np.argmax(counts))] -= 1
            counts[j] = 1
    return counts


def deal_groups(group_class: np.ndarray, fractions: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """Split index (0/1/2) of every group, stratified by ``group_class`` (G,).

    Groups are dealt round-robin over classes (random class order each round, random group order within
    a class); the first dealt go to test, then validation, the rest to train.
    """
    classes = np.unique(group_class)
    queues = [list(rng.permutation(np.flatnonzero(group_class == c))) for c in classes]
    dealt: list[int] = []
    while any(queues):
        for k in rng.permutation(len(classes)):
            if queues[k]:
                dealt.append(int(queues[k].pop()))
    counts = split_counts(len(group_class), fractions)
    out = np.zeros(len(group_class), dtype=np.int64)
    out[dealt[: counts[2]]] = 2
    out[dealt[counts[2] : counts[2] + counts[1]]] = 1
    return out


def _group_labels(meta: Any, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(group index of every trial (N,), majority class of every group (G,)) for the ``keys`` columns."""
    codes = meta.groupby(keys, sort=True).ngroup().to_numpy()
    labels = meta["label"].to_numpy()
    majority = np.array([np.bincount(labels[codes == g]).argmax() for g in range(codes.max() + 1)])
    return codes, majority


def _by_groups_within_subject(meta: Any, keys: list[str], fractions, rng: np.random.Generator, what: str) -> np.ndarray:
    """Deal the ``keys`` groups of each subject separately; returns the split index of every trial."""
    out = np.zeros(len(meta), dtype=np.int64)
    for subject in np.unique(meta["subject"].to_numpy()):
        rows = np.flatnonzero(meta["subject"].to_numpy() == subject)
        codes, majority = _group_labels(meta.iloc[rows], keys)
        need = sum(f > 0 for f in fractions)
        if len(majority) < need:
            raise DataError(
                f"--split-by {what}: subject {subject} has {len(majority)} {what}(s); {need} are needed to fill "
                f"train/validation/test (use --split-by image, or leave-one-subject-out at training time)"
            )
        out[rows] = deal_groups(majority, fractions, rng)[codes]
    return out


def resplit(meta: Any, by: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> SplitSummary:
    """New splits of the trials in ``meta`` under protocol ``by`` (see the module docstring)."""
    if by not in PROTOCOLS:
        raise ConfigError(f"unknown --split-by {by!r}: expected one of {', '.join(PROTOCOLS)}")
    if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError("--split-fractions must be three non-negative numbers (train > 0) summing to 1")
    if by == "source":
        return SplitSummary(meta["split"].to_numpy(), by, {"protocol": by})
    rng = np.random.default_rng(seed)
    if by == "image":
        codes, majority = _group_labels(meta, ["image_id"])
        index = deal_groups(majority, fractions, rng)[codes]
    else:
        needed = ["block"] if by == "block" else ["session"]
        missing = [c for c in needed if c not in meta.columns]
        if missing:
            raise DataError(
                f"--split-by {by}: the source has no {missing[0]!r} column (the hub schema carries no "
                "presentation order); use --split-by image, or leave-one-subject-out at training time"
            )
        keys = (["session", "block"] if "session" in meta.columns else ["block"]) if by == "block" else ["session"]
        index = _by_groups_within_subject(meta, keys, fractions, rng, by)
    split = np.array(SPLIT_NAMES, dtype=object)[index]
    counts = {s: int(np.sum(split == s)) for s in SPLIT_NAMES}
    return SplitSummary(split, by, {"protocol": by, "fractions": list(fractions), "seed": seed, "trials": counts})
