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


def test_per_trial_similarity_hand_values() -> None:
    pred = np.array([[3.0, 4.0], [1.0, 1.0]], dtype=np.float32)
    true = np.array([[0.0, 0.0], [1.0, -1.0]], dtype=np.float32)
    out = M.per_trial_similarity(pred, true)
    np.testing.assert_allclose(out["cosine"], [0.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(out["mse"], [12.5, 2.0])
    np.testing.assert_allclose(out["l2"], [5.0, 2.0])
    np.testing.assert_allclose(out["l1"], [7.0, 2.0])
    np.testing.assert_allclose(out["abs_diff"], [3.5, 1.0])
    # a (1, ...) prediction is broadcast over all trials
    const = M.per_trial_similarity(pred[:1], true)
    np.testing.assert_allclose(const["l2"], [5.0, np.sqrt(4 + 25)])


def test_text_token_metrics_and_threshold_shares() -> None:
    # 1 trial, 4 tokens of dim 2: cosines 1, 0.8, 0, -1
    true = np.array([[[1, 0], [1, 0], [1, 0], [1, 0]]], dtype=np.float32)
    pred = np.array([[[2, 0], [0.8, 0.6], [0, 1], [-1, 0]]], dtype=np.float32)
    per = M.per_trial_similarity(pred, true)
    np.testing.assert_allclose(per["token_cosine"], [[1.0, 0.8, 0.0, -1.0]], atol=1e-6)
    t = M.text_summary(per)
    assert t["token_cosine"]["mean"] == pytest.approx(0.2)
    assert t["token_cosine_above"] == {"0.75": 0.5, "0.85": 0.25, "0.95": 0.25, "0.98": 0.25}
    # token L2 = mean over tokens of per-token distance: 1, |(-0.2, 0.6)|, sqrt(2), 2
    assert t["token_l2"]["mean"] == pytest.approx((1 + np.sqrt(0.4) + np.sqrt(2) + 2) / 4, rel=1e-5)
    assert t["global_cosine"]["mean"] == pytest.approx(per["cosine"][0])


def test_kway_perfect_constant_and_known_rate() -> None:
    true, ids = _eye_case(8, 1)
    _, cands, answer = M.candidates(true, ids)
    sim = M.similarity_matrix(true, cands)
    for k in (2, 5, 8):
        assert M.kway_hits(sim, answer, k)[1].mean() == 1.0
    const = M.similarity_matrix(np.ones((8, 8), np.float32), cands)  # ties with everyone
    h = M.kway_hits(np.broadcast_to(const, (8, 8)), answer, 8, topk=(1, 7, 8))
    assert h[1].mean() == 0.0 and h[7].mean() == 0.0 and h[8].mean() == 1.0  # k-1 distinct distractors
    # own image always second: a 2-way trial misses only when the preferred image is the distractor
    lean = 0.9 * np.roll(true, 1, axis=0) + 0.1 * true
    s2 = M.similarity_matrix(lean, cands)
    rate = M.kway_hits(s2, answer, 2, n_draws=400, seed=1)[1].mean()
    assert rate == pytest.approx(6 / 7, abs=0.03)
    assert M.kway_hits(s2, answer, 8)[1].mean() == 0.0  # k = M always includes the preferred image
    np.testing.assert_array_equal(M.kway_hits(s2, answer, 2, seed=3)[1], M.kway_hits(s2, answer, 2, seed=3)[1])
    with pytest.raises(ValueError):
        M.kway_hits(s2, answer, 9)


def test_class_prototypes_and_ranks() -> None:
    targets = np.array([[1, 0, 0], [3, 0, 0], [0, 1, 0], [0, 0, 2]], dtype=np.float32)
    labels = np.array([5, 5, 7, 9])
    classes, protos = M.class_prototypes(targets, labels)
    np.testing.assert_array_equal(classes, [5, 7, 9])
    np.testing.assert_allclose(protos, [[2, 0, 0], [0, 1, 0], [0, 0, 2]])
    pred = np.array([[1, 0.1, 0], [0, 0, 1], [1, 1, 1], [0, 1, 0]], dtype=np.float32)
    r, valid = M.prototype_ranks(pred, np.array([5, 7, 9, 3]), classes, protos)
    np.testing.assert_array_equal(valid, [True, True, True, False])
    # trial 1 (class 7) scores 0 with classes 5 and 7 and 1 with class 9: the tie puts it at rank 3;
    # the all-equal prediction ties with every prototype: worst rank
    np.testing.assert_array_equal(r[:3], [1, 3, 3])
    assert r[3] == len(classes) + 1


def test_bootstrap_ci() -> None:
    const = np.full(50, 0.3)
    np.testing.assert_allclose(M.bootstrap_ci(const), [0.3, 0.3])
    half = np.r_[np.ones(100), np.zeros(100)]
    lo, hi = M.bootstrap_ci(half, seed=1)
    assert 0.38 < lo < 0.5 < hi < 0.62
    np.testing.assert_array_equal(M.bootstrap_ci(half, seed=1), M.bootstrap_ci(half, seed=1))
    both = M.bootstrap_ci(np.stack([half, const[:1].repeat(200)], axis=1), seed=1)
    assert both.shape == (2, 2) and both[0, 1] == pytest.approx(0.3)


def test_permutation_test() -> None:
    rng = np.random.default_rng(0)
    true = rng.normal(size=(40, 16)).astype(np.float32)
    ids = [f"i{i}" for i in range(40)]
    _, cands, answer = M.candidates(true, ids)
    perfect = M.permutation_test(M.similarity_matrix(true, cands), answer, n_perm=199)
    assert perfect["top1"] == 1.0 and perfect["top1_p"] == pytest.approx(1 / 200) and perfect["cosine_p"] == pytest.approx(1 / 200)
    noise = M.permutation_test(M.similarity_matrix(rng.normal(size=(40, 16)), cands), answer, n_perm=199)
    assert noise["top1_p"] > 0.05
    const = M.permutation_test(np.broadcast_to(M.similarity_matrix(np.ones((1, 16)), cands), (40, 40)), answer, n_perm=199)
    assert const["top1"] <= 1 / 40 and const["top1_p"] > 0.05


def test_average_by_group() -> None:
    pred = np.array([[1, 0], [3, 0], [0, 2]], dtype=np.float32)
    means, group = M.average_by_group(pred, ["a", "b", "a"])
    np.testing.assert_allclose(means[group[0]], [0.5, 1.0])
    np.testing.assert_allclose(means[group[1]], [3, 0])


def _case(route: str = "image", n_img: int = 12, subjects: int = 2, noise: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (16,) if route == "image" else (5, 8)
    img = rng.normal(size=(n_img, *shape)).astype(np.float32)
    ids = [f"img{i}" for i in range(n_img) for _ in range(subjects)]
    true = np.repeat(img, subjects, axis=0)
    label = np.repeat(np.arange(n_img) % 3, subjects)
    subject = np.tile(np.arange(1, subjects + 1), n_img)
    pred = (true + noise * rng.normal(size=true.shape)).astype(np.float32)
    train = rng.normal(size=(30, *shape)).astype(np.float32)
    return pred, true, ids, label, subject, train, np.arange(30) % 3


CONTRACT_KEYS = {"n", "route", "similarity", "retrieval", "classification", "baselines", "per_subject"}


def test_compute_metrics_layout_perfect_predictions() -> None:
    pred, true, ids, label, subject, train, tl = _case()
    m, arrays = M.compute_metrics(pred, true, ids, label, subject, train_targets=train, train_labels=tl, n_boot=100, n_perm=99)
    assert CONTRACT_KEYS <= set(m) and "text" not in m
    assert set(m["similarity"]) == {"cosine", "mse", "l2", "l1", "abs_diff"}
    assert m["similarity"]["cosine"]["mean"] == pytest.approx(1.0) and m["similarity"]["mse"]["mean"] == pytest.approx(0.0)
    # 12 images: 2-way and 10-way fit, 50 and 200 do not
    assert set(m["retrieval"]) == {"2way_top1", "10way_top1", "10way_top5", "all_top1", "all_top5"}
    for k, e in m["retrieval"].items():
        assert e["value"] == 1.0 and e["ci95"] == [1.0, 1.0]
    assert m["retrieval"]["all_top1"]["chance"] == pytest.approx(1 / 12)
    assert m["retrieval"]["10way_top5"]["chance"] == pytest.approx(0.5)
    assert m["classification"]["top1"]["chance"] == pytest.approx(1 / 3)
    assert m["baselines"]["permutation_p"] == pytest.approx(1 / 100)
    base = m["baselines"]["train_mean"]
    assert base["similarity"]["cosine"]["mean"] == pytest.approx(M.cosine_per_trial(np.broadcast_to(train.mean(0), true.shape), true).mean(), abs=1e-6)
    assert base["retrieval"]["all_top1"]["value"] <= 2 / 12  # a constant prediction hits at most one image's trials
    assert set(m["per_subject"]) == {"1", "2"} and m["per_subject"]["1"]["n"] == 12
    assert m["per_subject"]["1"]["all_top1"] == 1.0
    assert m["settings"]["baseline_source"] == "train"
    assert arrays["sim_centred"].shape == (24, 12)


def test_compute_metrics_noise_is_not_significant_and_split_mean_is_labelled() -> None:
    pred, true, ids, label, subject, *_ = _case(n_img=40)
    rng = np.random.default_rng(5)
    noise = rng.normal(size=pred.shape).astype(np.float32)
    m, _ = M.compute_metrics(noise, true, ids, label, subject, n_boot=200, n_perm=199)
    assert m["baselines"]["permutation_p"] > 0.01
    lo, hi = m["retrieval"]["2way_top1"]["ci95"]
    assert lo <= 0.5 + 0.1 and hi >= 0.5 - 0.1
    assert m["settings"]["baseline_source"] == "split" and "optimistic" in m["settings"]["baseline_label"]


def test_compute_metrics_text_route_and_averaging() -> None:
    pred, true, ids, label, subject, train, tl = _case("text", noise=0.5)
    m, arrays = M.compute_metrics(
        pred, true, ids, label, subject, train_targets=train, train_labels=tl, n_boot=50, n_perm=49, average_trials=True
    )
    assert set(m["text"]) == {"global_cosine", "token_cosine", "token_mse", "token_l2", "token_cosine_above"}
    assert set(m["text"]["token_cosine_above"]) == {"0.75", "0.85", "0.95", "0.98"}
    assert "retrieval_raw" in m and m["settings"]["retrieval_center"] == "train mean target"
    # the centred train-mean baseline is the zero vector: ties everywhere, never a hit
    assert m["baselines"]["train_mean"]["retrieval"]["all_top1"]["value"] == 0.0
    assert arrays["token_cosine_curve"].shape == (5,)
    assert m["retrieval_averaged"]["n"] == len(pred)  # one trial per (image, subject) here
    assert m["retrieval_averaged"]["all_top1"]["value"] == m["retrieval"]["all_top1"]["value"]


@pytest.mark.slow
def test_full_size_text_route_is_fast() -> None:
    """2,000 trials x 77 x 768 against 333 images, default resampling, well within a minute."""
    import time

    rng = np.random.default_rng(0)
    img = rng.normal(size=(333, 77, 768)).astype(np.float32)
    which = np.arange(2000) % 333
    true = img[which]
    pred = (true + 3 * rng.normal(size=true.shape)).astype(np.float32)
    t0 = time.perf_counter()
    m, _ = M.compute_metrics(pred, true, [str(i) for i in which], which % 40, which // 333, train_targets=img[:200], train_labels=np.arange(200) % 40)
    assert time.perf_counter() - t0 < 60
    assert m["retrieval"]["all_top1"]["value"] > 0.9 and m["baselines"]["permutation_p"] < 0.01


@pytest.mark.parametrize("center", [False, True])
def test_nan_predictions_are_never_hits(center: bool) -> None:
    """A diverged model (NaN outputs) must score zero, not perfect (nan >= nan is False)."""
    from eegalign.metrics import retrieval_topk

    rng = np.random.default_rng(0)
    true = rng.normal(size=(10, 16)).astype(np.float32)[np.arange(40) % 10]  # 4 trials per image
    ids = [f"i{k % 10}" for k in range(40)]
    nan = np.full_like(true, np.nan)
    c = true.mean(0) if center else None
    assert retrieval_topk(nan, true, ids, center=c) == {"top1": 0.0, "top5": 0.0}
    half = true.copy()
    half[:20] = np.nan  # the finite half still scores perfectly
    assert retrieval_topk(half, true, ids, center=c)["top1"] == pytest.approx(0.5)


def test_trial_averaged_retrieval_has_its_baseline_and_a_nan_trial_keeps_the_token_curve() -> None:
    pred, true, ids, label, subject, train, tl = _case("text", noise=0.5)
    pred = pred.copy()
    pred[0] = np.nan  # one diverged trial
    m, arrays = M.compute_metrics(
        pred, true, ids, label, subject, train_targets=train, train_labels=tl, n_boot=50, n_perm=49, average_trials=True
    )
    base = m["baselines"]["train_mean"]["retrieval_averaged"]
    assert set(base) == {k for k, v in m["retrieval_averaged"].items() if isinstance(v, dict)}
    assert base["all_top1"]["value"] == 0.0  # the centred train mean ties with every candidate
    assert base["2way_top1"]["chance"] == m["retrieval_averaged"]["2way_top1"]["chance"] == 0.5
    assert np.isfinite(arrays["token_cosine_curve"]).all() and int(arrays["token_cosine_dropped"]) == 1
