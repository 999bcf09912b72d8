"""Preprocessing maths on hand-checked values: train-only z-score, band-pass, NaN/Inf scrub."""

from __future__ import annotations

import numpy as np
import pytest

from eegalign.data.preprocess import apply_zscore, bandpass, fit_zscore, preprocess, scrub_nonfinite
from eegalign.errors import ConfigError, DataError


def test_global_zscore_uses_train_only() -> None:
    eeg = np.zeros((3, 2, 4), dtype=np.float32)
    eeg[0] = [[0, 2, 0, 2], [0, 2, 0, 2]]  # train: values 0/2 -> mean 1, std 1
    eeg[1] = [[2, 0, 2, 0], [2, 0, 2, 0]]
    eeg[2] = 5.0  # test: far off; must not move the statistics
    stats = fit_zscore(eeg, np.array([0, 1]), "global")
    assert stats == {"norm": "global", "mean": 1.0, "std": 1.0}
    apply_zscore(eeg, stats)
    np.testing.assert_allclose(eeg[2], 4.0)
    np.testing.assert_allclose(eeg[0, 0], [-1, 1, -1, 1])


def test_channel_zscore() -> None:
    eeg = np.empty((2, 2, 2), dtype=np.float32)
    eeg[:, 0] = [[1, 3], [1, 3]]  # channel 0: mean 2, std 1
    eeg[:, 1] = [[10, 10], [14, 14]]  # channel 1: mean 12, std 2
    stats = fit_zscore(eeg, np.array([0, 1]), "channel")
    np.testing.assert_allclose(stats["mean"], [2, 12])
    np.testing.assert_allclose(stats["std"], [1, 2])
    apply_zscore(eeg, stats)
    np.testing.assert_allclose(eeg[1, 1], [1, 1])
    np.testing.assert_allclose(eeg[0, 0], [-1, 1])


def test_constant_channel_keeps_unit_std() -> None:
    eeg = np.ones((2, 1, 3), dtype=np.float32)
    assert fit_zscore(eeg, np.array([0, 1]), "channel")["std"] == [1.0]


def test_bandpass_removes_out_of_band_sine() -> None:
    sfreq, t = 1000.0, np.arange(2000) / 1000.0
    slow, fast = np.sin(2 * np.pi * 10 * t), np.sin(2 * np.pi * 120 * t)
    eeg = np.tile((slow + fast).astype(np.float32), (2, 3, 1))
    bandpass(eeg, 5.0, 30.0, sfreq)
    mid = slice(500, 1500)  # away from the edges
    resid = eeg[0, 0, mid] - slow[mid]
    assert np.sqrt(np.mean(resid**2)) < 0.05  # the 120 Hz sine (rms 0.71) is gone, 10 Hz kept
    assert np.allclose(eeg[0, 0], eeg[1, 2])
    with pytest.raises(ConfigError, match="invalid"):
        bandpass(eeg, 30.0, 600.0, sfreq)


def test_scrub_and_strict() -> None:
    eeg = np.ones((3, 2, 2), dtype=np.float32)
    eeg[1, 0, 0], eeg[1, 1, 1], eeg[2, 0, 1] = np.nan, np.inf, -np.inf
    assert scrub_nonfinite(eeg.copy()) == (2, 3)
    stats = preprocess(eeg, np.array([0, 1, 2]), norm="none")
    assert stats["nonfinite"] == {"trials": 2, "values": 3, "replaced_by": 0.0}
    assert eeg[1, 0, 0] == 0 and np.isfinite(eeg).all()
    bad = np.full((1, 1, 2), np.nan, dtype=np.float32)
    with pytest.raises(DataError, match="--strict"):
        preprocess(bad, np.array([0]), strict=True)


def test_preprocess_records_parameters() -> None:
    rng = np.random.default_rng(0)
    eeg = rng.normal(3.0, 2.0, (4, 2, 600)).astype(np.float32)
    stats = preprocess(eeg, np.array([0, 1]), bandpass_hz=(1.0, 40.0), sfreq=250.0, norm="global")
    assert stats["bandpass"]["low"] == 1.0 and stats["bandpass"]["high"] == 40.0
    assert stats["sfreq"] == 250.0 and stats["normalisation"]["fitted_on"] == "train"
    assert abs(float(eeg[:2].mean())) < 1e-4 and abs(float(eeg[:2].std()) - 1) < 1e-4
    with pytest.raises(ConfigError, match="--norm"):
        preprocess(eeg, np.array([0]), norm="robust")
