"""Epoching at marker timestamps (pure functions, no LSL): sample-exact, waits, misses."""

from __future__ import annotations

import numpy as np

from eegalign.realtime.epoching import MISSED, READY, WAIT, cut_epoch, onset_index

FS = 1000.0
P = 1 / FS


def _stream(n: int = 3000, c: int = 4, t0: float = 100.0, jitter: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, c)).astype(np.float32)  # (N, C)
    ts = t0 + np.arange(n) / FS + rng.uniform(-jitter, jitter, n)
    return data, ts


def test_epoch_is_sample_exact_with_jitter_and_offsets() -> None:
    data, ts = _stream(jitter=0.2 * P)
    for onset in (0, 17, 500, 1234):
        for start in (0, 20, -5):
            if onset + start < 0:
                continue
            t_marker = 100.0 + onset / FS + 0.3 * P  # within half a sample of the onset sample
            cut = cut_epoch(data, ts, t_marker, start_samples=start, n_times=440, period=P)
            assert cut.status == READY and cut.first_index == onset + start
            np.testing.assert_array_equal(cut.epoch, data[onset + start : onset + start + 440].T)


def test_wait_and_missed() -> None:
    data, ts = _stream(n=1000)
    assert cut_epoch(data, ts, 100.0 + 800 / FS, start_samples=0, n_times=440, period=P).status == WAIT
    assert cut_epoch(data, ts, 100.0 + 2.0, start_samples=0, n_times=440, period=P).status == WAIT
    assert cut_epoch(data, ts, 99.0, start_samples=0, n_times=440, period=P).status == MISSED
    assert cut_epoch(data, ts, 100.0, start_samples=-3, n_times=440, period=P).status == MISSED
    assert cut_epoch(data[:0], ts[:0], 100.0, start_samples=0, n_times=10, period=P).status == WAIT


def test_gap_inside_epoch_is_missed() -> None:
    data, ts = _stream(n=2000)
    ts[300:] += 0.05  # 50 samples lost after sample 300
    cut = cut_epoch(data, ts, 100.0 + 100 / FS, start_samples=0, n_times=440, period=P)
    assert cut.status == MISSED and "lost" in cut.reason
    assert onset_index(ts, 100.0 + 100.4 / FS, P) == 100


def test_samples_lost_between_marker_and_epoch_are_missed_not_shifted() -> None:
    """Samples 15-19 dropped, marker at 10, start 20: counting would start at 35 instead of 30 -> missed."""
    data, ts = _stream(n=200)
    keep = np.r_[0:15, 20:200]
    data, ts = data[keep], ts[keep]
    cut = cut_epoch(data, ts, 100.0 + 10 / FS, start_samples=20, n_times=40, period=P)
    assert cut.status == MISSED and "lost" in cut.reason
    # an epoch before the onset (negative start) with the loss between it and the marker: missed too
    cut = cut_epoch(data, ts, 100.0 + 60 / FS, start_samples=-50, n_times=20, period=P)
    assert cut.status == MISSED and "lost" in cut.reason
    # the same cut without a loss is ready and starts where counting by time says
    full, ts_full = _stream(n=200)
    cut = cut_epoch(full, ts_full, 100.0 + 10 / FS, start_samples=20, n_times=40, period=P)
    assert cut.status == READY and cut.first_index == 30


def test_non_increasing_timestamps_are_missed() -> None:
    data, ts = _stream(n=1000)
    back = ts.copy()
    back[150] = back[149] - 0.5 * P  # a step backwards (no gap above 1.5 periods anywhere)
    cut = cut_epoch(data, back, 100.0 + 100 / FS, start_samples=0, n_times=440, period=P)
    assert cut.status == MISSED and "not increasing" in cut.reason
    same = ts.copy()
    same[120] = same[119]  # a repeated timestamp
    cut = cut_epoch(data, same, 100.0 + 100 / FS, start_samples=0, n_times=440, period=P)
    assert cut.status == MISSED and "not increasing" in cut.reason
