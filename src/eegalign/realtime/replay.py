"""``eegalign replay``: a cache's trials as a live LSL EEG stream plus a marker stream.

This simulates the lab's amplifier and stimulus PC. What is published:

* EEG stream ``NAME`` (type ``EEG``, float32, the cache's channel count and sampling rate): the
  trials end to end with ``gap_ms`` between them (:mod:`.schedule`), pushed in chunks of
  ``chunk_ms`` at real-time pace (``rate`` times faster when ``rate`` > 1). Sample ``i`` carries
  the LSL timestamp ``t0 + i / (sfreq * rate)``: the time it is "acquired", on the LSL clock.
* Marker stream ``NAME-markers`` (type ``Markers``, one string channel): one JSON marker per trial,
  ``{"trial": k, "image_id": ..., "row": cache row}``, timestamped with its onset sample's exact
  timestamp and pushed with the chunk that holds that sample; after the last trial one
  ``{"event": "end", "trials": n}`` marker.

The cache holds preprocessed EEG, not the recording. The replay undoes the z-score (exactly
invertible: ``x * std + mean`` with the train-split statistics), so the published signal is the
band-passed recording in its recorded units, and declares in the stream's description
(``desc/eegalign/applied``) the steps already done (``nonfinite`` and, when the cache had one,
``bandpass``: a zero-phase per-epoch filter that cannot be undone). ``eegalign stream`` skips
exactly those and z-scores each epoch as for a real amplifier, which gives back the cache's
trials up to float32 rounding, so live predictions equal offline ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

from eegalign.errors import DataError
from eegalign.realtime.options import check_positive
from eegalign.realtime.preprocessing import undo_zscore
from eegalign.realtime.schedule import Schedule, chunks

END_EVENT = "end"


def eeg_info(name: str, n_chans: int, sfreq: float, *, channel_names: list[str] | None,
             declared: dict[str, str]) -> pylsl.StreamInfo:
    """The EEG stream's description: channels, and the ``eegalign`` block (rate, steps applied, provenance)."""
    info = pylsl.StreamInfo(name, "EEG", n_chans, sfreq, pylsl.cf_float32, f"eegalign-replay:{name}")
    chans = info.desc().append_child("channels")
    for i in range(n_chans):
        ch = chans.append_child("channel")
        if channel_names:  # no invented labels: a cache without names publishes none, and stream says so
            ch.append_child_value("label", channel_names[i])
        ch.append_child_value("type", "EEG")
    block = info.desc().append_child("eegalign")
    for key, value in declared.items():
        block.append_child_value(key, value)
    return info


def marker_info(name: str) -> pylsl.StreamInfo:
    return pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, f"eegalign-replay:{name}")


def _declared(pre: dict[str, Any], cache_dir: Path, split: str, rate: float) -> dict[str, str]:
    applied = ["nonfinite"] + (["bandpass"] if pre.get("bandpass") else [])
    return {"source": "eegalign replay", "cache": str(cache_dir), "fingerprint": str(pre["source_cache"]["fingerprint"]),
            "split": split, "rate": repr(float(rate)), "applied": ",".join(applied),
            "bandpass": json.dumps(pre.get("bandpass")), "start_samples": str(pre["epoch"]["start_samples"])}


def _wait_for_consumers(outlets: list[pylsl.StreamOutlet], timeout: float, log: Callable[[str], None]) -> None:
    end = time.monotonic() + timeout
    for outlet in outlets:
        if not outlet.wait_for_consumers(max(0.0, end - time.monotonic())):
            log(f"no consumer after {timeout:g} s; replaying anyway")
            return


def replay(cache_dir: str | Path, split: str = "test", *, name: str, rate: float = 1.0, gap_ms: float = 100.0,
           max_trials: int | None = None, repeat: int = 1, rows: list[int] | None = None, chunk_ms: float = 10.0,
           wait_s: float = 30.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Publish ``split`` of the cache at ``cache_dir`` (or the given cache ``rows``), ``repeat`` times; return a summary.

    Waits up to ``wait_s`` for a consumer of both streams, then ends by itself after the last trial.
    """
    from eegalign.data.cache import Cache
    from eegalign.pretrained import channel_names_of, preprocess_from_cache

    check_positive({"--rate": rate, "--gap-ms": gap_ms, "--chunk-ms": chunk_ms})
    check_positive({"--wait": wait_s}, zero_ok=True)
    cache = Cache.open(cache_dir)
    pre = preprocess_from_cache(cache_dir)
    if rows is None:
        rows = [int(r) for r in cache.split_indices(split)]
        if not rows:
            raise DataError(f"cache {cache.path} has no trials in split {split!r}")
    rows = list(rows) * max(1, int(repeat))
    rows = rows[:max_trials] if max_trials else rows
    sfreq = float(pre["sfreq"])
    schedule = Schedule(tuple(rows), cache.n_times, gap=max(1, round(gap_ms * sfreq / 1000)),
                        start_samples=int(pre["epoch"]["start_samples"]))
    eeg_out = pylsl.StreamOutlet(eeg_info(name, cache.n_chans, sfreq, channel_names=channel_names_of(cache_dir),
                                          declared=_declared(pre, Path(cache.path), split, rate)))
    mk_out = pylsl.StreamOutlet(marker_info(f"{name}-markers"))
    log(f"replay: {len(rows)} trials of {cache.path} ({split}) as LSL streams {name!r} and {name + '-markers'!r}, "
        f"{cache.n_chans} channels at {sfreq:g} Hz x{rate:g} ({schedule.total / sfreq / rate:.1f} s)")
    _wait_for_consumers([eeg_out, mk_out], wait_s, log)
    image_ids = cache.meta["image_id"].to_numpy()
    t0 = _publish(schedule, cache.eeg, eeg_out, mk_out, pre["normalisation"], image_ids,
                  period=1.0 / (sfreq * rate), chunk=max(1, round(chunk_ms * sfreq / 1000)))
    end_ts = t0 + (schedule.total - 1) / (sfreq * rate)
    mk_out.push_sample([json.dumps({"event": END_EVENT, "trials": len(rows)})], end_ts)
    time.sleep(0.3)  # let the end marker reach the consumers before the outlets go
    log(f"replay: done, {len(rows)} trials")
    return {"trials": len(rows), "samples": schedule.total, "t0": t0}


def _publish(schedule: Schedule, eeg: np.ndarray, eeg_out: pylsl.StreamOutlet, mk_out: pylsl.StreamOutlet,
             normalisation: dict[str, Any], image_ids: np.ndarray, *, period: float, chunk: int) -> float:
    """Push every sample at its time and each marker with the chunk holding its onset; return t0."""
    t0 = pylsl.local_clock() + 0.05
    k, n = 0, len(schedule.rows)
    for first, piece in chunks(schedule.blocks(eeg), chunk):  # piece: (m, C) z-scored
        stamps = t0 + (first + np.arange(len(piece))) * period  # (m,)
        delay = stamps[-1] - pylsl.local_clock()
        if delay > 0:
            time.sleep(delay)
        eeg_out.push_chunk(undo_zscore(piece.T, normalisation).T, stamps.tolist())
        while k < n and schedule.marker_index(k) < first + len(piece):
            row = schedule.rows[k]
            marker = {"trial": k, "image_id": str(image_ids[row]), "row": int(row)}
            mk_out.push_sample([json.dumps(marker)], t0 + schedule.marker_index(k) * period)
            k += 1
    return t0
