"""Confound features of EEG trials: what a probe may see, and nothing more.

* :func:`pre_response_features` -- the samples before any visual response can reach the cortex
  (onset-relative window, averaged in short bins).
* :func:`slow_drift_features` -- per-trial channel means and linear trend in a window (the only
  content below ~1 Hz that a few hundred ms hold).

:func:`epoch_timing` says where the epoch starts relative to stimulus onset, from the cache manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from eegalign.errors import ConfigError

CVPR40_EPOCH_START_MS = 20.0  # the release and the hub data set keep samples 20:460 after onset at 1 kHz
DEFAULT_WINDOW_END_MS = 60.0  # onset-relative end of the pre-response window (CVPR40: the first ~40 ms of the epoch)


@dataclass(frozen=True)
class EpochTiming:
    """Sampling rate (Hz), onset-relative time of the first sample (ms) and where that came from."""

    sfreq: float
    start_ms: float
    source: str


def epoch_timing(manifest: dict[str, Any], start_ms: float | None = None) -> EpochTiming:
    """Epoch timing of a cache: ``start_ms`` if given, else the manifest's notes, else the CVPR40 crop."""
    sfreq = float(manifest.get("params", {}).get("sfreq", 1000.0))
    notes = manifest.get("notes", {}) or {}
    if start_ms is not None:
        return EpochTiming(sfreq, float(start_ms), "given (--epoch-start-ms)")
    if "epoch_start_ms" in notes:
        return EpochTiming(sfreq, float(notes["epoch_start_ms"]), "cache manifest (notes.epoch_start_ms)")
    if "crop" in notes:
        return EpochTiming(sfreq, 1000.0 * float(notes["crop"][0]) / sfreq, "cache manifest (release crop)")
    return EpochTiming(sfreq, CVPR40_EPOCH_START_MS, "assumed: the CVPR40 hub crop (epoch starts 20 ms after onset)")


def window_samples(timing: EpochTiming, window_ms: tuple[float | None, float], n_times: int) -> slice:
    """Sample slice of an onset-relative window ``(lo, hi)`` in ms (``lo`` None: the epoch start)."""
    lo_ms = timing.start_ms if window_ms[0] is None else max(float(window_ms[0]), timing.start_ms)
    hi_ms = float(window_ms[1])
    lo = int(round((lo_ms - timing.start_ms) * timing.sfreq / 1000.0))
    hi = min(int(round((hi_ms - timing.start_ms) * timing.sfreq / 1000.0)), n_times)
    if hi - lo < 1:
        raise ConfigError(
            f"the pre-response window {lo_ms:g}-{hi_ms:g} ms after onset holds no sample of an epoch that starts "
            f"{timing.start_ms:g} ms after onset ({timing.source}); widen --window-ms or set --epoch-start-ms"
        )
    return slice(lo, hi)


def pre_response_features(eeg: np.ndarray, rows: np.ndarray, window: slice, bin_samples: int) -> np.ndarray:
    """Window samples averaged in bins of ``bin_samples``: eeg (N, C, T), rows (n,) -> (n, C * n_bins)."""
    x = np.asarray(eeg[np.asarray(rows, dtype=np.int64), :, window], dtype=np.float64)  # (n, C, w)
    n, c, w = x.shape
    n_bins = max(w // max(bin_samples, 1), 1)
    x = x[:, :, : n_bins * (w // n_bins)].reshape(n, c, n_bins, -1).mean(axis=-1)  # (n, C, n_bins)
    return x.reshape(n, -1)


def slow_drift_features(eeg: np.ndarray, rows: np.ndarray, window: slice) -> np.ndarray:
    """Per-channel mean and linear-trend coefficient of each trial in ``window``: (N, C, T), (n,) -> (n, 2 C).

    These two numbers per channel (Legendre degrees 0 and 1 over the window) are the trial's slowest
    content: over a few hundred ms a component below 1 Hz completes less than half a cycle, so it
    shows as an offset plus a slope. Over the whole epoch they also carry the evoked response's own
    low-frequency part, so the audit's decision uses them only where no evoked response can be yet.
    """
    out = []
    for lo in range(0, len(rows), 512):  # bounded memory on full-size caches
        x = np.asarray(eeg[np.asarray(rows[lo : lo + 512], dtype=np.int64), :, window], dtype=np.float64)  # (b, C, w)
        t = np.linspace(-1.0, 1.0, x.shape[-1])  # (w,) degree-1 Legendre polynomial
        mean = x.mean(axis=-1)  # (b, C)
        slope = (x @ t) / max(float(t @ t), 1e-12)  # (b, C)
        out.append(np.concatenate([mean, slope], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2 * eeg.shape[1]))
