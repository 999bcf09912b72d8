"""metrics.json stays what it was: compute_metrics on three small seeded cases against committed golden files.

The golden files were written by the pre-refactor ``eegalign/metrics.py`` (one 173-line
``compute_metrics``, commit 9950975) with :func:`golden_cases` below; the split into the
``eegalign.metrics`` package must reproduce their layout (every key, in order) and their numbers.
Regenerate only for an intended change of metrics.json: ``python tests/test_metrics_golden.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "data"


def golden_cases() -> dict[str, tuple[tuple, dict]]:
    """``{name: (positional args, keyword args)}`` of compute_metrics: image/train/averaged,
    text/split-mean/averaged, and a case with a diverged trial and a subject without prototypes."""
    rng = np.random.default_rng(7)
    img = rng.normal(size=(12, 16)).astype(np.float32) + 2.0  # a shared mean direction, like CLIP
    true = np.repeat(img, 2, axis=0)  # (24, 16): 12 images x 2 subjects
    pred = (true + rng.normal(size=true.shape)).astype(np.float32)
    ids = [f"i{i}" for i in range(12) for _ in range(2)]
    label, subject = np.repeat(np.arange(12) % 4, 2), np.tile([1, 2], 12)
    train = (rng.normal(size=(20, 16)) + 2.0).astype(np.float32)
    small = dict(n_boot=50, n_perm=49, kway_draws=4)
    image = ((pred, true, ids, label, subject),
             dict(train_targets=train, train_labels=np.arange(20) % 4, average_trials="image", **small))

    tok = rng.normal(size=(10, 4, 8)).astype(np.float32)
    ttrue = np.repeat(tok, 2, axis=0)  # (20, 4, 8)
    tpred = (ttrue + 0.8 * rng.normal(size=ttrue.shape)).astype(np.float32)
    text = ((tpred, ttrue, [f"t{i}" for i in range(10) for _ in range(2)], np.repeat(np.arange(10) % 5, 2),
             np.tile([1, 2], 10)), dict(average_trials=True, **small))

    single = rng.normal(size=(12, 16)).astype(np.float32)  # 12 images, one trial each
    spred = single + 0.5 * rng.normal(size=single.shape).astype(np.float32)
    spred[5] = np.nan  # a diverged prediction
    partial = ((spred, single, [f"s{i}" for i in range(12)], np.array([0, 1, 0, 1, 1, 0, 1, 0, 2, 2, 2, 2]),
                np.repeat([1, 2, 3], 4)),  # subject 3 saw only class 2, which has no prototype
               dict(train_targets=rng.normal(size=(8, 16)).astype(np.float32), train_labels=np.arange(8) % 2, **small))
    return {"image": image, "text": text, "partial": partial}


def _metrics_json(name: str) -> dict:
    from eegalign.metrics import compute_metrics

    args, kwargs = golden_cases()[name]
    metrics, _ = compute_metrics(*args, **kwargs)
    return json.loads(json.dumps(metrics, allow_nan=False))  # what write_json writes


def _leaves(obj: object, path: str = "") -> list[tuple[str, object]]:
    """Every (path, leaf) of a JSON tree, in document order (so key order is compared too)."""
    if isinstance(obj, dict):
        return [leaf for k, v in obj.items() for leaf in _leaves(v, f"{path}/{k}")]
    if isinstance(obj, list):
        return [leaf for i, v in enumerate(obj) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, obj)]


@pytest.mark.parametrize("name", ["image", "text", "partial"])
def test_metrics_json_matches_golden(name: str) -> None:
    got = _leaves(_metrics_json(name))
    want = _leaves(json.loads((GOLDEN / f"metrics_golden_{name}.json").read_text()))
    assert [p for p, _ in got] == [p for p, _ in want]  # same keys, same order
    for (path, g), (_, w) in zip(got, want):
        if isinstance(w, float) and isinstance(g, (int, float)):
            assert g == pytest.approx(w, rel=1e-6, abs=1e-9), path
        else:
            assert g == w, path


if __name__ == "__main__":  # regenerate the golden files (an intended change of metrics.json only)
    for case in golden_cases():
        (GOLDEN / f"metrics_golden_{case}.json").write_text(json.dumps(_metrics_json(case), indent=2) + "\n")
        print(f"wrote {GOLDEN / f'metrics_golden_{case}.json'}", file=sys.stderr)
