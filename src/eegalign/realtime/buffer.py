"""A growing window of the most recent EEG samples and their (clock-corrected) timestamps."""

from __future__ import annotations

import numpy as np


class SampleBuffer:
    """The last ``capacity`` samples ``(N, C)`` float32 with timestamps ``(N,)`` float64, contiguous.

    Storage is twice the capacity; when it fills, the newest ``capacity`` samples move to the
    front (amortised O(1) per sample), so :attr:`data` and :attr:`timestamps` are plain views that
    :func:`eegalign.realtime.epoching.cut_epoch` can search.
    """

    def __init__(self, n_chans: int, capacity: int):
        self.capacity = int(capacity)
        self._data = np.zeros((2 * self.capacity, n_chans), dtype=np.float32)  # (2K, C)
        self._ts = np.zeros(2 * self.capacity, dtype=np.float64)  # (2K,)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def data(self) -> np.ndarray:
        return self._data[: self._n]  # (N, C)

    @property
    def timestamps(self) -> np.ndarray:
        return self._ts[: self._n]  # (N,)

    @property
    def last_time(self) -> float | None:
        return float(self._ts[self._n - 1]) if self._n else None

    def clear(self) -> None:
        self._n = 0

    def append(self, samples: np.ndarray, timestamps: np.ndarray) -> None:
        """Append ``samples`` (m, C) with ``timestamps`` (m,), keeping the newest ``capacity``."""
        m = len(timestamps)
        if m == 0:
            return
        if m >= self.capacity:
            samples, timestamps, m = samples[-self.capacity :], timestamps[-self.capacity :], self.capacity
            self._n = 0
        if self._n + m > len(self._ts):
            keep = self.capacity - m
            self._data[:keep] = self._data[self._n - keep : self._n]
            self._ts[:keep] = self._ts[self._n - keep : self._n]
            self._n = keep
        self._data[self._n : self._n + m] = samples
        self._ts[self._n : self._n + m] = timestamps
        self._n += m
