"""Classification via class prototypes: each prediction ranks the mean targets of the classes."""

from __future__ import annotations

import numpy as np

from eegalign.metrics.retrieval import ranks
from eegalign.metrics.similarity import similarity_matrix


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


