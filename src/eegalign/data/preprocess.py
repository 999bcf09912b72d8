"""Preprocessing: pure numpy/scipy functions over ``(N, C, T)`` float32 EEG, applied in place.

Order (``preprocess``): scrub non-finite values -> optional zero-phase band-pass -> z-score whose
statistics are fitted on the TRAIN trials only and applied to every split (the seed fitted them per
split, which leaks test statistics). Work is done in chunks of trials so that the full data set
(12,000 x 128 x 440) needs no second full-size copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eegalign.errors import ConfigError, DataError

NORMS = ("global", "channel", "none")
_CHUNK = 512


def _chunks(n: int, size: int = _CHUNK) -> range:
    return range(0, n, size)


def scrub_nonfinite(eeg: np.ndarray) -> tuple[int, int]:
    """Replace NaN/Inf by 0 in place; return (trials affected, values replaced)."""
    trials = values = 0
    for s in _chunks(len(eeg)):
        x = eeg[s : s + _CHUNK]
        bad = ~np.isfinite(x)
        nbad = int(bad.sum())
        if nbad:
            values += nbad
            trials += int(bad.any(axis=(1, 2)).sum())
            x[bad] = 0.0
    return trials, values


def bandpass(eeg: np.ndarray, low: float, high: float, sfreq: float, order: int = 4) -> None:
    """Zero-phase Butterworth band-pass (``scipy.signal.sosfiltfilt``) along time, in place."""
    from scipy.signal import butter, sosfiltfilt

    if not 0 < low < high < sfreq / 2:
        raise ConfigError(f"band-pass {low}-{high} Hz is invalid for sfreq {sfreq} Hz: need 0 < low < high < {sfreq / 2}")
    sos = butter(order, [low, high], btype="bandpass", fs=sfreq, output="sos")
    for s in _chunks(len(eeg)):
        eeg[s : s + _CHUNK] = sosfiltfilt(sos, eeg[s : s + _CHUNK], axis=-1)


def fit_zscore(eeg: np.ndarray, train_idx: np.ndarray, norm: str) -> dict[str, Any]:
    """Mean and std over the ``train_idx`` trials: one scalar (``global``) or one per channel.

    Accumulated in float64 (two passes) for accuracy. A zero std is replaced by 1.
    """
    if norm not in NORMS:
        raise ConfigError(f"unknown --norm {norm!r}: expected one of {', '.join(NORMS)}")
    if norm == "none":
        return {"norm": "none"}
    train_idx = np.sort(np.asarray(train_idx, dtype=np.int64))
    if train_idx.size == 0:
        raise DataError("cannot fit normalisation statistics: the train split is empty")
    axes = (0, 1, 2) if norm == "global" else (0, 2)
    count = train_idx.size * eeg.shape[2] * (eeg.shape[1] if norm == "global" else 1)
    total = 0.0
    for s in _chunks(train_idx.size):
        total = total + eeg[train_idx[s : s + _CHUNK]].sum(axis=axes, dtype=np.float64)
    mean = total / count
    sq = 0.0
    for s in _chunks(train_idx.size):
        x = eeg[train_idx[s : s + _CHUNK]].astype(np.float64)
        d = x - (mean if norm == "global" else mean[None, :, None])
        sq = sq + (d * d).sum(axis=axes)
    std = np.sqrt(sq / count)
    std = np.where(std > 0, std, 1.0)
    if norm == "global":
        return {"norm": "global", "mean": float(mean), "std": float(std)}
    return {"norm": "channel", "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist()}


def apply_zscore(eeg: np.ndarray, stats: dict[str, Any]) -> None:
    """``(x - mean) / std`` in place with statistics from :func:`fit_zscore`."""
    if stats["norm"] == "none":
        return
    mean = np.asarray(stats["mean"], dtype=np.float64)
    std = np.asarray(stats["std"], dtype=np.float64)
    if stats["norm"] == "channel":
        mean, std = mean[None, :, None], std[None, :, None]  # (C,) -> (1, C, 1)
    for s in _chunks(len(eeg)):
        eeg[s : s + _CHUNK] = ((eeg[s : s + _CHUNK] - mean) / std).astype(np.float32)


def preprocess(
    eeg: np.ndarray,
    train_idx: np.ndarray,
    *,
    bandpass_hz: tuple[float, float] | None = None,
    sfreq: float = 1000.0,
    norm: str = "global",
    strict: bool = False,
) -> dict[str, Any]:
    """Scrub, band-pass and z-score ``eeg`` in place; return stats.json content (every parameter).

    Non-finite values are replaced by 0 and counted in ``stats["nonfinite"]`` (the caller reports
    them); under ``strict`` they raise :class:`DataError` instead.
    """
    if norm not in NORMS:
        raise ConfigError(f"unknown --norm {norm!r}: expected one of {', '.join(NORMS)}")
    trials, values = scrub_nonfinite(eeg)
    if values and strict:
        raise DataError(f"{trials} trials contain NaN/Inf values ({values} values); refusing under --strict")
    if bandpass_hz is not None:
        bandpass(eeg, float(bandpass_hz[0]), float(bandpass_hz[1]), sfreq)
    z = fit_zscore(eeg, train_idx, norm)
    apply_zscore(eeg, z)
    return {
        "nonfinite": {"trials": trials, "values": values, "replaced_by": 0.0},
        "bandpass": None
        if bandpass_hz is None
        else {"low": float(bandpass_hz[0]), "high": float(bandpass_hz[1]), "order": 4, "filter": "butterworth sosfiltfilt (zero-phase)"},
        "sfreq": float(sfreq),
        "normalisation": {**z, "fitted_on": "train"},
    }


class RunningMoments:
    """Mean and std accumulated block by block (float64, shifted sums), for streamed data.

    ``add(x)`` takes ``(n, C, T)`` blocks; :meth:`stats` returns what :func:`fit_zscore` returns
    for the same trials (up to rounding).
    """

    def __init__(self, norm: str):
        if norm not in NORMS:
            raise ConfigError(f"unknown --norm {norm!r}: expected one of {', '.join(NORMS)}")
        self.norm = norm
        self.count = 0
        self.shift: Any = None
        self.sum: Any = 0.0
        self.sumsq: Any = 0.0

    def add(self, x: np.ndarray) -> None:
        if self.norm == "none" or len(x) == 0:
            return
        axes = (0, 1, 2) if self.norm == "global" else (0, 2)
        if self.shift is None:  # shifting by a first estimate keeps the sums well conditioned
            self.shift = x.mean(axis=axes, dtype=np.float64)
        d = x.astype(np.float64) - (self.shift if self.norm == "global" else self.shift[None, :, None])
        self.sum = self.sum + d.sum(axis=axes)
        self.sumsq = self.sumsq + (d * d).sum(axis=axes)
        self.count += x.shape[0] * x.shape[2] * (x.shape[1] if self.norm == "global" else 1)

    def stats(self) -> dict[str, Any]:
        if self.norm == "none":
            return {"norm": "none"}
        if self.count == 0:
            raise DataError("cannot fit normalisation statistics: the train split is empty")
        m = self.sum / self.count
        std = np.sqrt(np.maximum(self.sumsq / self.count - m * m, 0.0))
        std = np.where(std > 0, std, 1.0)
        mean = m + self.shift
        if self.norm == "global":
            return {"norm": "global", "mean": float(mean), "std": float(std)}
        return {"norm": "channel", "mean": np.asarray(mean).tolist(), "std": np.asarray(std).tolist()}


def describe(stats_z: dict[str, Any], nonfinite: tuple[int, int], bandpass_hz: tuple[float, float] | None,
             sfreq: float) -> dict[str, Any]:
    """stats.json content from the pieces (the same layout :func:`preprocess` returns)."""
    trials, values = nonfinite
    return {
        "nonfinite": {"trials": trials, "values": values, "replaced_by": 0.0},
        "bandpass": None
        if bandpass_hz is None
        else {"low": float(bandpass_hz[0]), "high": float(bandpass_hz[1]), "order": 4, "filter": "butterworth sosfiltfilt (zero-phase)"},
        "sfreq": float(sfreq),
        "normalisation": {**stats_z, "fitted_on": "train"},
    }
