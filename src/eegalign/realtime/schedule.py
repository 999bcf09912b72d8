"""Where each trial of a replay lies on the continuous signal: pure index arithmetic, no LSL.

The replayed signal is ``lead`` gap samples, then each trial's ``n_times`` samples followed by
``gap`` samples. A trial's marker is the sample of stimulus onset: the trial's first sample minus
``start_samples`` (the epoch's start relative to onset, preprocess.json ``epoch.start_samples``),
so the stream's epoching (:mod:`.epoching`) cuts back exactly the trial.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from eegalign.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    """Sample layout of a replay of ``len(rows)`` trials (``rows``: cache row of each trial, in order)."""

    rows: tuple[int, ...]
    n_times: int
    gap: int
    start_samples: int = 0

    def __post_init__(self) -> None:
        if self.gap < max(0, self.start_samples) or self.gap < 1:
            raise ConfigError(f"the inter-trial gap ({self.gap} samples) must hold at least one sample and the "
                              f"{self.start_samples} samples between stimulus onset and the epoch's start")
        if -self.start_samples >= self.n_times:
            raise ConfigError(f"epoch start {self.start_samples} samples lies outside the {self.n_times}-sample trial")

    @property
    def lead(self) -> int:
        """Gap samples before the first trial."""
        return self.gap

    def trial_start(self, k: int) -> int:
        """Index of trial ``k``'s first sample on the continuous signal."""
        return self.lead + k * (self.n_times + self.gap)

    def marker_index(self, k: int) -> int:
        """Index of trial ``k``'s onset sample (its marker)."""
        return self.trial_start(k) - self.start_samples

    @property
    def total(self) -> int:
        """Samples of the whole replay (the last trial is followed by one gap)."""
        return self.trial_start(len(self.rows))

    def blocks(self, eeg: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """``(first index, block (n, C) float32)`` in signal order: gaps (zeros) and trials (``eeg[row].T``).

        ``eeg``: the cache's (N, C, T) array (z-scored space: a zero gap is the train mean).
        """
        n_chans = eeg.shape[1]
        gap = np.zeros((self.gap, n_chans), dtype=np.float32)  # (gap, C)
        yield 0, gap
        for k, row in enumerate(self.rows):
            start = self.trial_start(k)
            yield start, np.ascontiguousarray(np.asarray(eeg[row], dtype=np.float32).T)  # (T, C)
            yield start + self.n_times, gap


def chunks(blocks: Iterator[tuple[int, np.ndarray]], size: int) -> Iterator[tuple[int, np.ndarray]]:
    """Cut ``blocks`` into pieces of at most ``size`` samples: ``(first index, piece (n, C))``."""
    for start, block in blocks:
        for off in range(0, len(block), size):
            yield start + off, block[off : off + size]
