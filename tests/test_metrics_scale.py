"""Metrics are scale-free and finite: the same cosine and retrieval at any finite scale of the
predictions, in any float dtype, and metrics.json is strict JSON (issue #13)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eegalign import metrics as M
from eegalign.errors import DataError
from eegalign.io import write_json

SCALES = (1e-30, 1e-12, 1e-3, 1.0, 1e3, 1e12, 1e30)


def _case(route: str, n_img: int = 12, reps: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Noisy predictions of random targets: (pred, true, image_ids, labels)."""
    rng = np.random.default_rng(seed)
    shape = (n_img, 8) if route == "image" else (n_img, 5, 6)
    imgs = rng.normal(size=shape).astype(np.float32) + (2.0 if route == "text" else 0.0)  # text: a shared offset
    true = np.repeat(imgs, reps, axis=0)
    pred = (true + 1.5 * rng.normal(size=true.shape)).astype(np.float32)
    ids = [f"img{i}" for i in range(n_img) for _ in range(reps)]
    labels = np.repeat(np.arange(n_img) % 3, reps)
    return pred, true, ids, labels


def _scale_free_part(metrics: dict) -> dict:
    """The blocks that must not depend on the predictions' scale.

    The text route's centred retrieval and classification subtract a fixed target-space vector
    (the mean target) from the predictions: by definition not scale-invariant, so only its raw
    retrieval is compared there."""
    keep = ["retrieval_raw"] if metrics["route"] == "text" else ["retrieval", "classification", "per_subject"]
    out = {k: metrics[k] for k in keep}
    out["cosine"] = round(metrics["similarity"]["cosine"]["mean"], 5)
    if "per_subject" in out:
        out["per_subject"] = {s: {k: v for k, v in r.items() if "cosine" not in k} for s, r in out["per_subject"].items()}
    return out


@pytest.mark.parametrize("route", ["image", "text"])
def test_compute_metrics_same_at_any_scale(route: str) -> None:
    pred, true, ids, labels = _case(route)
    subject = np.zeros(len(pred), dtype=np.int64)
    ref = None
    for scale in SCALES:
        m, _ = M.compute_metrics(pred * np.float32(scale), true, ids, labels, subject, n_boot=50, n_perm=50, kway=(2, 10))
        json.dumps(m, allow_nan=False)  # strict JSON at every scale
        part = _scale_free_part(m)
        assert ref is None or part == ref, f"scale {scale:g} changed the scale-free metrics"
        ref = part
    block = ref["retrieval_raw" if route == "text" else "retrieval"]
    assert block["all_top1"]["value"] > block["all_top1"]["chance"]  # the case is informative


@pytest.mark.parametrize("scale", SCALES)
def test_cosine_and_similarity_matrix_scale_free(scale: float) -> None:
    pred, true, ids, _ = _case("image")
    base = M.cosine_per_trial(pred, true)
    np.testing.assert_allclose(M.cosine_per_trial(pred * scale, true), base, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(M.per_trial_similarity(pred * np.float32(scale), true)["cosine"], base, rtol=1e-6, atol=1e-7)
    _, cands, _ = M.candidates(true, ids)
    np.testing.assert_allclose(M.similarity_matrix(pred * scale, cands), M.similarity_matrix(pred, cands), atol=1e-6)
    center = cands.mean(axis=0)
    c_ref, r_ref = M.similarity_matrices(pred, cands, center)
    # the raw (uncentred) cosine is scale-free; the centred one is by definition only for large scales
    np.testing.assert_allclose(M.similarity_matrices(pred * scale, cands, center)[1], r_ref, atol=1e-5)
    assert np.isfinite(M.similarity_matrices(pred * scale, cands, center)[0]).all()
    assert M.retrieval_topk(pred * scale, true, ids) == M.retrieval_topk(pred, true, ids)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes_give_the_same_answer(dtype: type) -> None:
    pred, true, ids, _ = _case("image")
    pred = pred.astype(np.float16).astype(np.float32)  # values exactly representable in float16
    ref = M.retrieval_topk(pred, true, ids)
    assert M.retrieval_topk(pred.astype(dtype), true, ids) == ref
    np.testing.assert_allclose(M.cosine_per_trial(pred.astype(dtype), true), M.cosine_per_trial(pred, true), rtol=1e-6)


def test_float64_beyond_float32_range_is_still_scale_free() -> None:
    pred, true, ids, _ = _case("image")
    big = pred.astype(np.float64) * 1e300
    assert M.retrieval_topk(big, true, ids) == M.retrieval_topk(pred, true, ids)
    np.testing.assert_allclose(M.cosine_per_trial(big, true), M.cosine_per_trial(pred, true), rtol=1e-6)


def test_largest_float32_predictions_give_finite_metrics() -> None:
    pred, true, ids, labels = _case("image")
    huge = np.sign(pred).astype(np.float32) * np.finfo(np.float32).max  # every entry +-3.4e38
    m, _ = M.compute_metrics(huge, true, ids, labels, np.zeros(len(pred)), n_boot=20, n_perm=20, kway=(2,))
    text = json.dumps(m, allow_nan=False)
    assert "Infinity" not in text and "NaN" not in text
    assert np.isfinite(m["similarity"]["mse"]["mean"]) and m["similarity"]["mse"]["mean"] > 1e70


def test_diverged_predictions_become_null_not_nan() -> None:
    pred, true, ids, labels = _case("image")
    pred[0] = np.nan
    m, _ = M.compute_metrics(pred, true, ids, labels, np.zeros(len(pred)), n_boot=20, n_perm=20, kway=(2,))
    json.dumps(m, allow_nan=False)
    assert m["similarity"]["cosine"]["mean"] is None
    assert "non_finite_values" in m["settings"]


def test_write_json_is_strict(tmp_path) -> None:
    with pytest.raises(DataError, match="NaN or infinite"):
        write_json(tmp_path / "m.json", {"a": float("inf")})
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    write_json(tmp_path / "m.json", {"a": 1.0})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1.0}
