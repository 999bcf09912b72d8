"""LSL inlets for ``eegalign stream``: bounded resolution, and pulling EEG and markers onto the local clock.

Timestamps are the sender's LSL timestamps plus the inlet's ``time_correction()``, added by liblsl
(``proc_clocksync``, refreshed in the background) and kept ascending (``proc_monotonize``), never
arrival times. Inlets are opened with ``recover=False`` so that a vanished source raises
:class:`pylsl.util.LostError` at once instead of being waited for silently. The full stream
description (``desc``, which resolution leaves out) and a first successful clock offset are fetched
before the inlet opens: without one, no sample or marker is decoded (the source is treated as lost).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pylsl
from pylsl.util import LostError

from eegalign.errors import DataError

__all__ = ["LostError", "EEGInlet", "MarkerInlet", "resolve", "declared", "channel_labels"]

def resolve(name: str, timeout: float) -> pylsl.StreamInfo | None:
    """The stream called ``name`` (the first found within ``timeout`` seconds), or None."""
    found = pylsl.resolve_byprop("name", name, minimum=1, timeout=max(0.0, timeout))
    return found[0] if found else None


def declared(info: pylsl.StreamInfo) -> dict[str, str]:
    """The ``desc/eegalign`` block of a stream written by ``eegalign replay`` ({} for other sources)."""
    block = info.desc().child("eegalign")
    out, child = {}, block.first_child()
    while not child.empty():
        out[child.name()] = child.child_value()
        child = child.next_sibling()
    return out


def channel_labels(info: pylsl.StreamInfo) -> list[str] | None:
    """The channel labels of ``desc/channels/channel/label`` (the XDF convention), or None unless every channel has one."""
    labels, ch = [], info.desc().child("channels").child("channel")
    while not ch.empty():
        labels.append(ch.child_value("label").strip())
        ch = ch.next_sibling("channel")
    if len(labels) != info.channel_count() or not all(labels):
        return None
    return labels


def first_clock_offset(inlet: pylsl.StreamInlet, timeout: float) -> float:
    """The inlet's first time correction (sender clock -> local clock), retried until ``timeout`` seconds pass.

    Raises :class:`LostError` when none arrives in time: decoding never starts on uncorrected timestamps.
    """
    end = time.monotonic() + max(0.0, timeout)
    while True:
        left = end - time.monotonic()
        try:
            return float(inlet.time_correction(timeout=max(0.05, min(2.0, left))))
        except pylsl.util.TimeoutError:
            if end - time.monotonic() <= 0:
                raise LostError(f"no clock offset from the source within {timeout:g} s") from None


def _remaining(end: float) -> float:
    return max(0.05, end - time.monotonic())


class _Inlet:
    """A ``recover=False`` inlet whose full stream description and first clock offset are fetched before it opens.

    liblsl itself maps the timestamps onto the local clock (``proc_clocksync``: the sender's timestamp
    plus the inlet's current ``time_correction()``, refreshed in the background) and keeps them
    ascending (``proc_monotonize``: a timestamp below the previous one is raised to it, so a clock
    correction stepping backwards never puts the buffer out of order). No dejittering: timestamps stay
    the sender's, so an epoch is cut at exactly the sample the marker names.
    Opening is a separate step (:meth:`open`), so that a source waiting for its consumers (``eegalign replay``)
    starts only when both inlets are ready. ``deadline`` (a ``time.monotonic()`` value) bounds every wait here.
    """

    def __init__(self, info: pylsl.StreamInfo, max_buflen: int, deadline: float):
        flags = pylsl.proc_clocksync | pylsl.proc_monotonize
        self.inlet = pylsl.StreamInlet(info, max_buflen=max_buflen, recover=False, processing_flags=flags)
        try:
            self.info = self.inlet.info(timeout=_remaining(deadline))  # with desc(), which resolution leaves out
        except pylsl.util.TimeoutError:
            raise LostError(f"stream {info.name()!r} did not send its description in time") from None
        self.offset = first_clock_offset(self.inlet, deadline - time.monotonic())

    def open(self, deadline: float) -> None:
        self.inlet.open_stream(timeout=_remaining(deadline))

    def close(self) -> None:
        self.inlet.close_stream()


class EEGInlet(_Inlet):
    """Pull EEG chunks ``(m, C)`` with corrected timestamps ``(m,)`` from a resolved stream."""

    def __init__(self, info: pylsl.StreamInfo, deadline: float, max_chunk: int = 4096):
        super().__init__(info, max_buflen=30, deadline=deadline)
        self.n_chans = info.channel_count()
        self._dest = np.zeros((max_chunk, self.n_chans), dtype=np.float32)  # (max_chunk, C)
        self._max = max_chunk

    def pull(self, timeout: float) -> tuple[np.ndarray, np.ndarray]:
        """Samples that arrived (waiting up to ``timeout`` s): ``(m, C)`` view and ``(m,)`` corrected timestamps."""
        # min_samples=1: return as soon as the first sample is there (no waiting for a full chunk)
        _, ts = self.inlet.pull_chunk(timeout=timeout, max_samples=self._max, dest_obj=self._dest, min_samples=1)
        m = len(ts)
        if m == 0:
            return self._dest[:0], np.zeros(0)
        return self._dest[:m], np.asarray(ts, dtype=np.float64)  # already on the local clock (proc_clocksync)


@dataclass
class Marker:
    """One marker: its raw string, corrected timestamp, and what it says (JSON object, else the string is the image id)."""

    raw: str
    t: float
    fields: dict

    @property
    def is_end(self) -> bool:
        return self.fields.get("event") == "end"

    @property
    def image_id(self) -> str | None:
        v = self.fields.get("image_id")
        return None if v is None else str(v)


def parse_marker(raw: str, t: float) -> Marker:
    """A marker from ``eegalign replay`` (JSON) or any stimulus software (a plain string: the image id)."""
    try:
        fields = json.loads(raw)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        fields = {"image_id": raw}
    return Marker(raw, t, fields)


class MarkerInlet(_Inlet):
    """Pull string markers from a resolved marker stream."""

    def __init__(self, info: pylsl.StreamInfo, deadline: float):
        if info.channel_format() != pylsl.cf_string:
            raise DataError(f"marker stream {info.name()!r} does not carry strings")
        super().__init__(info, max_buflen=360, deadline=deadline)

    def pull(self) -> list[Marker]:
        samples, ts = self.inlet.pull_chunk(timeout=0.0)
        if not ts:
            return []
        return [parse_marker(str(s[0]), float(t)) for s, t in zip(samples, ts)]  # t on the local clock
