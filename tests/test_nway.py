"""Hand-checked cases of the N-way top-k metric and its bootstrap CI."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from eegalign.errors import ConfigError
from eegalign.generation.nway import bootstrap_ci, nway_summary, nway_topk_per_image


def test_true_class_on_top_always_wins_and_at_bottom_always_loses() -> None:
    logits = np.array([[0.1, 5.0, 0.2, 0.3], [4.0, 3.0, 2.0, 1.0]])
    true = np.array([1, 3])  # image 0: true class is the max; image 1: true class is the min
    acc = nway_topk_per_image(logits, true, n=3, k=1, draws=20)
    assert acc.tolist() == [1.0, 0.0]
    # All four classes as candidates: image 1's true class ranks 4th -> needs k = 4.
    assert nway_topk_per_image(logits, true, n=4, k=3, draws=3).tolist() == [1.0, 0.0]
    assert nway_topk_per_image(logits, true, n=4, k=4, draws=3).tolist() == [1.0, 1.0]


def test_one_beater_among_three_others() -> None:
    # True class 0 is beaten only by class 2. With n=2 the single distractor is class 2 in 1/3 of draws.
    logits = np.array([[1.0, 0.0, 2.0, -1.0]])
    acc = nway_topk_per_image(logits, np.array([0]), n=2, k=1, draws=6000, seed=3)
    assert acc[0] == pytest.approx(2 / 3, abs=0.03)
    assert nway_topk_per_image(logits, np.array([0]), n=4, k=1, draws=5)[0] == 0.0  # the beater is always there
    assert nway_topk_per_image(logits, np.array([0]), n=4, k=2, draws=5)[0] == 1.0  # ranked 2nd of 4


def test_matches_the_hypergeometric_probability() -> None:
    # 10 classes, the true class is beaten by 3 of the 9 others; N=4 draws 3 distractors.
    logits = np.array([[9.0, 8.0, 7.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0]])
    true = np.array([3])
    expected_top1 = comb(6, 3) / comb(9, 3)  # no beater drawn
    expected_top2 = (comb(6, 3) + 3 * comb(6, 2)) / comb(9, 3)  # at most one beater drawn
    assert nway_topk_per_image(logits, true, n=4, k=1, draws=20000, seed=0)[0] == pytest.approx(expected_top1, abs=0.01)
    assert nway_topk_per_image(logits, true, n=4, k=2, draws=20000, seed=0)[0] == pytest.approx(expected_top2, abs=0.01)


def test_ties_count_against_the_true_class() -> None:
    logits = np.zeros((2, 1000))  # a constant classifier must not score chance or better
    assert nway_topk_per_image(logits, np.array([0, 999]), n=50, k=1, draws=5).tolist() == [0.0, 0.0]


def test_seeded_and_paired() -> None:
    rng = np.random.default_rng(0)
    logits, true = rng.standard_normal((20, 1000)), rng.integers(0, 1000, 20)
    a = nway_topk_per_image(logits, true, n=50, k=1, draws=10, seed=7)
    assert np.array_equal(a, nway_topk_per_image(logits, true, n=50, k=1, draws=10, seed=7))
    assert not np.array_equal(a, nway_topk_per_image(logits, true, n=50, k=1, draws=10, seed=8))


@pytest.mark.parametrize("kw", [dict(n=5), dict(n=1), dict(n=3, k=4), dict(n=3, k=0), dict(n=3, draws=0)])
def test_invalid_arguments(kw: dict) -> None:
    with pytest.raises(ConfigError):
        nway_topk_per_image(np.zeros((1, 4)), np.array([0]), **kw)
    with pytest.raises(ConfigError):
        nway_topk_per_image(np.zeros((1, 4)), np.array([4]), n=2)


def test_bootstrap_ci_and_summary() -> None:
    assert bootstrap_ci(np.full(10, 0.25)) == (0.25, 0.25)
    values = np.r_[np.ones(30), np.zeros(70)]
    lo, hi = bootstrap_ci(values, n_boot=2000, seed=0)
    assert lo < 0.3 < hi and hi - lo < 0.25 and lo > 0.15
    s = nway_summary(np.eye(4)[[0, 1, 2, 3]] * 3.0, np.array([0, 1, 2, 0]), n=2, k=1, draws=10, n_boot=100)
    assert s["chance"] == 0.5 and s["n_images"] == 4
    assert s["value"] == pytest.approx(3 / 4)  # three images on top, the fourth never wins (all others tie)
    assert s["ci95"][0] <= s["value"] <= s["ci95"][1]
