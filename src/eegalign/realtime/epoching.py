"""Cutting epochs out of a buffered EEG stream at marker times: pure numpy, no LSL.

Times are LSL timestamps already mapped onto one clock (each stream's ``time_correction()`` added),
never arrival times. An epoch starts at the sample nearest to ``t_marker`` plus ``start_samples``
(the epoch's first sample relative to stimulus onset, from preprocess.json) and lasts ``n_times``
samples; :func:`cut_epoch` says whether it is ``ready``, must ``wait`` for more samples, or is
``missed`` (its start left the buffer, or the stream lost samples inside it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

READY, WAIT, MISSED = "ready", "wait", "missed"


@dataclass
class Cut:
    """Outcome of :func:`cut_epoch`: ``status``, the epoch ``(C, n_times)`` when ready, and why when missed."""

    status: str
    epoch: np.ndarray | None = None
    first_index: int | None = None
    reason: str = ""


def onset_index(timestamps: np.ndarray, t_marker: float, period: float) -> int | None:
    """Index of the sample nearest to ``t_marker`` (None if the marker lies outside the buffer by > period/2)."""
    if len(timestamps) == 0:
        return None
    i = int(np.searchsorted(timestamps, t_marker))
    candidates = [j for j in (i - 1, i) if 0 <= j < len(timestamps)]
    j = min(candidates, key=lambda k: abs(timestamps[k] - t_marker))
    if abs(timestamps[j] - t_marker) > period / 2:
        return None
    return j


def cut_epoch(data: np.ndarray, timestamps: np.ndarray, t_marker: float, *, start_samples: int, n_times: int,
              period: float) -> Cut:
    """Cut the epoch of a marker from buffered samples ``data`` (N, C) with ``timestamps`` (N,), ascending.

    ``period``: the sample period (1 / sampling rate) in seconds. A gap of more than 1.5 periods inside
    the epoch means samples were lost: the epoch is ``missed``.
    """
    if len(timestamps) == 0 or t_marker > timestamps[-1] + period / 2:
        return Cut(WAIT)  # the marker's sample has not arrived yet
    onset = onset_index(timestamps, t_marker, period)
    if onset is None:
        return Cut(MISSED, reason="marker time not covered by the buffered samples")
    first = onset + int(start_samples)
    if first < 0:
        return Cut(MISSED, reason="the epoch starts before the oldest buffered sample")
    if first + n_times > len(timestamps):
        return Cut(WAIT)
    ts = timestamps[first : first + n_times]
    if n_times > 1 and float(np.max(np.diff(ts))) > 1.5 * period:
        return Cut(MISSED, reason="samples lost inside the epoch (timestamp gap)")
    return Cut(READY, np.ascontiguousarray(data[first : first + n_times].T, dtype=np.float32), first)  # (C, n_times)
