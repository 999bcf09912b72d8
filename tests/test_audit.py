"""The leakage audit: its classifier, its decision rule, its ground truth and its command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eegalign.audit.hygiene import shared_images, split_hygiene
from eegalign.audit.ridge import factorise, fit_predict
from eegalign.audit.run import AuditSettings, holm, run_audit
from eegalign.cli import main

# Small enough to synthesise and audit in seconds, large enough for a permutation test to mean something.
SIZE = dict(subjects=2, classes=8, images_per_class=10, n_chans=32, n_times=200, progress=False)
FAST = AuditSettings(n_permutations=200, n_bootstrap=200)


def _drift_cache(tmp: Path, drift: float, seed: int) -> Path:
    from eegalign.data.cache import prepare_cache
    from eegalign.data.synthetic import write_synthetic_dataset

    write_synthetic_dataset(tmp / "synth", seed=seed, drift=drift, blocked=True, **SIZE)
    return prepare_cache(tmp / "synth", tmp / "cache", progress=False)


def test_ridge_matches_scikit_learn_at_the_chosen_penalty() -> None:
    from sklearn.linear_model import RidgeClassifier
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 20)), rng.integers(0, 4, 90)
    x[:, 0] += y  # some signal
    xt = rng.normal(size=(30, 20))
    pred, alpha = fit_predict(factorise(x, xt, 4), y)
    scaler = StandardScaler().fit(x)
    ref = RidgeClassifier(alpha=alpha).fit(scaler.transform(x), y).predict(scaler.transform(xt))
    np.testing.assert_array_equal(pred, ref)


def test_holm_adjustment() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_settings_refuse_too_few_permutations() -> None:
    from eegalign.errors import ConfigError

    with pytest.raises(ConfigError, match="permutations"):
        AuditSettings(n_permutations=99, alpha=0.01).validate(2)


def test_shared_images_and_interleaving() -> None:
    meta = pd.DataFrame({
        "split": ["train", "train", "test", "test", "validation", "train"],
        "subject": [1] * 6, "session": [1] * 6, "block": [0, 0, 0, 1, 1, 1], "trial_index": [0, 1, 2, 3, 4, 5],
        "image_id": ["a", "b", "a", "c", "c", "d"], "label": [0, 0, 0, 1, 1, 1],
    })
    pair = shared_images(meta, "train", "test")
    assert (pair.images, pair.trials_in_second, pair.fraction_of_second) == (1, 1, 0.5)
    h = split_hygiene(meta)
    assert h.exemplar_leakage and h.interleaving is not None
    assert h.interleaving.test_next_to_train == 0.5  # trial 2 follows trial 1; trial 3 is 2 away from trial 5
    assert (h.interleaving.blocks_with_train_and_test, h.interleaving.blocks) == (2, 2)
    assert split_hygiene(meta.drop(columns=["session", "trial_index"])).interleaving is None


def test_synthetic_evoked_response_starts_after_the_pre_response_window() -> None:
    from eegalign.audit.features import DEFAULT_WINDOW_END_MS
    from eegalign.data.synthetic import LATENCY_JITTER_S, SynthParams, SyntheticWorld

    for seed in range(5):
        world = SyntheticWorld(SynthParams(subjects=1, classes=2, images_per_class=2, seed=seed))
        early = np.full((1, len(world._lat_s)), -3.3 * LATENCY_JITTER_S)  # every component 3.3 SD early
        wave = world._waveforms(early)[0]  # (K, T) at 1 kHz, epoch starting at onset
        assert world._lat_s.min() >= 0.08
        assert np.abs(wave[:, : int(DEFAULT_WINDOW_END_MS)]).max() == 0.0


def test_drift_is_detected(tmp_path: Path) -> None:
    result = run_audit(_drift_cache(tmp_path, drift=1.0, seed=1), FAST)
    assert result.leakage_detected
    probe = result.probes["slow_drift"]
    assert probe.p_holm <= 0.01 and probe.ci95[0] > probe.chance
    assert result.split_hygiene.interleaving is not None and result.split_hygiene.interleaving.blocks == 16


def test_no_drift_is_not_detected(tmp_path: Path) -> None:
    result = run_audit(_drift_cache(tmp_path, drift=0.0, seed=1), FAST)
    assert not result.leakage_detected
    assert result.timing.start_ms == 0.0 and "manifest" in result.timing.source
    assert result.probes["epoch_slow"].in_decision is False


def test_audit_cli_on_hub_schema_fixtures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from _hubschema import write_parquet_dir

    write_parquet_dir(tmp_path / "hub", hub_layout=True, sizes=(12, 6, 6))
    assert main(["data", "prepare", "--source", str(tmp_path / "hub"), "--out", str(tmp_path / "cache")]) == 0
    out = tmp_path / "audit"
    assert main(["audit", "--cache", str(tmp_path / "cache"), "--out", str(out), "--permutations", "199"]) == 0
    audit = json.loads((out / "audit.json").read_text())
    assert set(audit["probes"]) == {"pre_response", "slow_drift", "epoch_slow"}
    for probe in audit["probes"].values():
        assert {"value", "ci95", "chance", "p", "n_train", "n_test"} <= set(probe)
    assert audit["timing"]["start_ms"] == 20.0 and "assumed" in audit["timing"]["source"]  # CVPR40 hub crop
    assert audit["split_hygiene"]["interleaving"] is None
    assert "Holm" in audit["criterion"] and isinstance(audit["leakage_detected"], bool)
    assert "leakage audit" in (out / "audit.html").read_text()
    assert "leakage detected:" in capsys.readouterr().out
    assert main(["audit", "--cache", str(tmp_path / "cache"), "--out", str(out)]) == 2  # exists: refused


def test_audit_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["audit", "--cache", str(tmp_path / "nope"), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eegalign: error: cache not found")
    assert not (tmp_path / "a").exists()


def test_evaluate_report_shows_the_audit(tmp_path: Path) -> None:
    from _hubschema import write_parquet_dir

    from eegalign.audit.run import write_audit
    from eegalign.data.cache import prepare_cache
    from eegalign.predictions import Predictions

    write_parquet_dir(tmp_path / "hub", sizes=(12, 6, 6))
    cache = prepare_cache(tmp_path / "hub", tmp_path / "cache", progress=False)
    write_audit(run_audit(cache, FAST), tmp_path / "audit")
    rng = np.random.default_rng(0)
    true = np.repeat(rng.normal(size=(6, 16)).astype(np.float32), 2, axis=0)
    Predictions(pred=true + rng.normal(size=true.shape).astype(np.float32), true=true, label=(np.arange(12) // 2) % 3,
                subject=np.tile([1, 2], 6), image_ids=[f"i{k // 2}" for k in range(12)], route="image",
                model="toy").save(tmp_path / "p.safetensors")
    out = tmp_path / "eval"
    args = ["evaluate", "--predictions", str(tmp_path / "p.safetensors"), "--out", str(out), "--bootstrap", "50",
            "--permutations", "49", "--audit", str(tmp_path / "audit")]
    assert main(args) == 0
    html = (out / "report.html").read_text()
    assert "Leakage audit" in html and "pre_response" in html and "Split hygiene" in html
    assert json.loads((out / "metrics.json").read_text())["run"]["audit"] == str(tmp_path / "audit")
    assert main([*args[:4], str(tmp_path / "eval2"), *args[5:-1], str(tmp_path / "nothing")]) == 2
    assert not (tmp_path / "eval2").exists()


def test_synth_blocked_layout_columns(tmp_path: Path) -> None:
    from eegalign.data.synthetic import write_synthetic_dataset

    small = dict(SIZE, subjects=1, classes=3, images_per_class=2)
    write_synthetic_dataset(tmp_path / "plain", **small)
    write_synthetic_dataset(tmp_path / "blocked", drift=0.5, **small)
    plain = pd.read_parquet(tmp_path / "plain" / "train.parquet")
    blocked = pd.concat([pd.read_parquet(tmp_path / "blocked" / f"{s}.parquet") for s in ("train", "validation", "test")])
    assert "block" not in plain.columns and "drift" not in json.loads((tmp_path / "plain" / "synthetic.json").read_text())["params"]
    assert sorted(blocked["trial_index"]) == list(range(6))
    per_block = blocked.groupby("block")["label"].nunique()
    assert (per_block == 1).all() and len(per_block) == 3  # one class per block
    assert json.loads((tmp_path / "blocked" / "synthetic.json").read_text())["params"]["drift"] == 0.5
