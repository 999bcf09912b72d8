"""Cutting epochs out of a buffered EEG stream at marker times: pure numpy, no LSL.

Times are LSL timestamps already mapped onto one clock (each stream's ``time_correction()`` added),
never arrival times. An epoch starts at the sample nearest to ``t_marker`` plus ``start_samples``
(the epoch's first sample relative to stimulus onset, from preprocess.json) and lasts ``n_times``
samples; :func:`cut_epoch` says whether it is ``ready``, must ``wait`` for more samples, or is
``missed`` (its start left the buffer, or samples were lost, or timestamps went out of order, anywhere
between the marker's sample and the epoch's end).
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

    ``period``: the sample period (1 / sampling rate) in seconds. The epoch's first sample is found by
    counting ``start_samples`` from the marker's sample, so every step from that sample through the
    epoch's last one must be one sample: a step above 1.5 periods (samples lost) or not above zero
    (timestamps out of order) makes the epoch ``missed`` rather than silently shifted.
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
    # The start is found by counting samples from the onset, so the whole span from the onset sample
    # to the epoch's far end must be gap-free: a sample lost between marker and epoch would shift it.
    lo, hi = min(onset, first), max(onset, first + n_times - 1)
    bad = _timestamp_fault(timestamps[lo : hi + 1], period)
    if bad:
        return Cut(MISSED, reason=bad)
    return Cut(READY, np.ascontiguousarray(data[first : first + n_times].T, dtype=np.float32), first)  # (C, n_times)


def _timestamp_fault(ts: np.ndarray, period: float) -> str:
    """Why the timestamps ``ts`` (n,) are not one unbroken run of samples ('' when they are)."""
    if len(ts) < 2:
        return ""
    steps = np.diff(ts)  # (n-1,)
    if float(np.min(steps)) <= 0:
        return "timestamps not increasing between the marker's sample and the epoch's end"
    if float(np.max(steps)) > 1.5 * period:
        return "samples lost between the marker's sample and the epoch's end (timestamp gap)"
    return ""
