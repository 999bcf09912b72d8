"""Metrics on hand-built cases whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from eegalign import metrics as M


def _eye_case(n_img: int = 6, reps: int = 2) -> tuple[np.ndarray, list[str]]:
    true = np.repeat(np.eye(n_img, dtype=np.float32), reps, axis=0)  # (n_img*reps, n_img)
    ids = [f"img{i}" for i in range(n_img) for _ in range(reps)]
    return true, ids


def test_cosine_per_trial_known_values() -> None:
    pred = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)
    true = np.array([[1, 0], [1, 0], [1, 0], [1, 0]], dtype=np.float32)
    np.testing.assert_allclose(M.cosine_per_trial(pred, true), [1, 0, 1 / np.sqrt(2), 0], atol=1e-6)
    # trailing dims are flattened
    np.testing.assert_allclose(M.cosine_per_trial(pred.reshape(4, 1, 2), true.reshape(4, 2, 1)), [1, 0, 1 / np.sqrt(2), 0], atol=1e-6)


def test_retrieval_perfect_shuffled_constant() -> None:
    true, ids = _eye_case()
    assert M.retrieval_topk(true, true, ids) == {"top1": 1.0, "top5": 1.0}
    # every prediction leans to the next image, own image second: never top-1, always top-2
    shifted = 0.9 * np.roll(true, 2, axis=0) + 0.1 * true
    out = M.retrieval_topk(shifted, true, ids, ks=(1, 2))
    assert out == {"top1": 0.0, "top2": 1.0}
    # a constant prediction ties with every candidate: ties count against, so it never hits
    const = np.ones_like(true)
    assert M.retrieval_topk(const, true, ids, ks=(1, 5, 6)) == {"top1": 0.0, "top5": 0.0, "top6": 1.0}
    zeros = np.zeros_like(true)
    assert M.retrieval_topk(zeros, true, ids)["top1"] == 0.0


def test_retrieval_center_is_subtracted() -> None:
    true, ids = _eye_case(4, 1)
    true = true + 10.0  # a large shared offset
    pred = true.copy()
    pred[0] = pred[1]  # trial 0 predicts image 1
    center = np.full(4, 10.0, dtype=np.float32)
    assert M.retrieval_topk(pred, true, ids, ks=(1,), center=center)["top1"] == 0.75
