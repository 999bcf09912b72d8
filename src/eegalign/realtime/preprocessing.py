"""preprocess.json applied to live epochs: what ``eegalign data prepare`` did to every trial of the cache.

The steps and their order are those of :func:`eegalign.data.preprocess.preprocess`, run on each
epoch as it is cut (the cache ran them per trial too: the band-pass is a zero-phase filter over
the epoch, the z-score uses the train-split statistics recorded in preprocess.json):

1. ``nonfinite``: NaN/Inf -> 0;
2. ``bandpass``: zero-phase Butterworth (``sosfiltfilt``) over the epoch, when the cache had one;
3. ``zscore``: ``(x - mean) / std`` with the train-split statistics (global or per channel).

A source may declare steps it already applied (``eegalign replay`` declares ``nonfinite`` and
``bandpass``, see :mod:`.replay`); those are skipped, nothing else is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eegalign.errors import ConfigError

STEPS = ("nonfinite", "bandpass", "zscore")


def check_record(record: dict[str, Any]) -> None:
    """Refuse (one line) a preprocess.json this module cannot apply."""
    norm = (record.get("normalisation") or {}).get("norm", "none")
    if norm not in ("global", "channel", "none"):
        raise ConfigError(f"preprocess.json: unknown normalisation {norm!r}")
    bp = record.get("bandpass")
    if bp is not None and not all(k in bp for k in ("low", "high")):
        raise ConfigError("preprocess.json: the band-pass record lacks 'low'/'high'")
    if not record.get("sfreq"):
        raise ConfigError("preprocess.json has no sampling rate ('sfreq')")


@dataclass
class EpochPreprocessor:
    """Apply a model directory's preprocess.json to epochs ``(B, C, T)``, skipping the steps in ``skip``."""

    record: dict[str, Any]
    skip: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        check_record(self.record)
        unknown = set(self.skip) - set(STEPS)
        if unknown:
            raise ConfigError(f"unknown preprocessing steps declared as applied: {sorted(unknown)}")

    @property
    def sfreq(self) -> float:
        return float(self.record["sfreq"])

    @property
    def start_samples(self) -> int:
        """First sample of an epoch relative to the marker's sample (0 when not recorded)."""
        return int((self.record.get("epoch") or {}).get("start_samples", 0))

    def steps(self) -> list[str]:
        """The steps this preprocessor runs, in order."""
        run = ["nonfinite"]
        if self.record.get("bandpass"):
            run.append("bandpass")
        if (self.record.get("normalisation") or {}).get("norm", "none") != "none":
            run.append("zscore")
        return [s for s in run if s not in self.skip]

    def __call__(self, epochs: np.ndarray) -> np.ndarray:
        """A preprocessed float32 copy of ``epochs`` (B, C, T)."""
        from eegalign.data.preprocess import apply_zscore, bandpass, scrub_nonfinite

        x = np.array(epochs, dtype=np.float32, copy=True)  # (B, C, T)
        steps = self.steps()
        if "nonfinite" in steps:
            scrub_nonfinite(x)
        if "bandpass" in steps:
            bp = self.record["bandpass"]
            bandpass(x, float(bp["low"]), float(bp["high"]), self.sfreq, int(bp.get("order", 4)))
        if "zscore" in steps:
            apply_zscore(x, self.record["normalisation"])
        return x


def undo_zscore(eeg: np.ndarray, normalisation: dict[str, Any]) -> np.ndarray:
    """``x * std + mean`` (float64 arithmetic, float32 result): a cache's EEG back in recorded units.

    ``eeg``: (B, C, T) or (C, T). The exact inverse of :func:`eegalign.data.preprocess.apply_zscore`
    up to float32 rounding.
    """
    x = np.asarray(eeg, dtype=np.float64)
    norm = (normalisation or {}).get("norm", "none")
    if norm == "none":
        return x.astype(np.float32)
    mean = np.asarray(normalisation["mean"], dtype=np.float64)
    std = np.asarray(normalisation["std"], dtype=np.float64)
    if norm == "channel":
        mean, std = mean[:, None], std[:, None]  # (C,) -> (C, 1), broadcast over (.., C, T)
    return (x * std + mean).astype(np.float32)
