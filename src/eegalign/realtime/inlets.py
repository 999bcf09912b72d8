"""LSL inlets for ``eegalign stream``: bounded resolution, and pulling EEG and markers onto the local clock.

Timestamps are the sender's LSL timestamps plus the inlet's ``time_correction()`` (refreshed every
few seconds), never arrival times. Inlets are opened with ``recover=False`` so that a vanished
source raises :class:`pylsl.util.LostError` at once instead of being waited for silently. The
full stream description (``desc``, which resolution leaves out) and the first clock offset are
fetched before the inlet opens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import pylsl
from pylsl.util import LostError

from eegalign.errors import DataError

__all__ = ["LostError", "EEGInlet", "MarkerInlet", "resolve", "declared", "channel_labels"]

CORRECTION_EVERY_S = 5.0


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


@dataclass
class _Clock:
    """The inlet's time correction (sender clock -> local clock), refreshed every :data:`CORRECTION_EVERY_S` seconds.

    The first estimate (:meth:`prime`) takes a few hundred ms; later ones return liblsl's current value.
    """

    inlet: pylsl.StreamInlet
    value: float = 0.0
    at: float = field(default=-1e9)

    def prime(self, timeout: float) -> None:
        try:
            self.value = float(self.inlet.time_correction(timeout=timeout))
            self.at = time.monotonic()
        except pylsl.util.TimeoutError:
            pass  # retried by get()

    def get(self) -> float:
        now = time.monotonic()
        if now - self.at >= CORRECTION_EVERY_S:
            try:
                self.value = float(self.inlet.time_correction(timeout=0.05))
                self.at = now
            except pylsl.util.TimeoutError:
                pass  # keep the last value; retried on the next call
        return self.value


class _Inlet:
    """A ``recover=False`` inlet whose full stream description and clock offset are fetched before it opens.

    Opening is a separate step (:meth:`open`), so that a source waiting for its consumers (``eegalign replay``)
    starts only when both inlets are ready.
    """

    def __init__(self, info: pylsl.StreamInfo, max_buflen: int, timeout: float):
        self.inlet = pylsl.StreamInlet(info, max_buflen=max_buflen, recover=False)
        try:
            self.info = self.inlet.info(timeout=timeout)  # with desc(), which resolution leaves out
        except pylsl.util.TimeoutError:
            raise LostError(f"stream {info.name()!r} did not answer within {timeout:g} s") from None
        self.clock = _Clock(self.inlet)
        self.clock.prime(timeout)

    def open(self, timeout: float = 5.0) -> None:
        self.inlet.open_stream(timeout=timeout)

    def close(self) -> None:
        self.inlet.close_stream()


class EEGInlet(_Inlet):
    """Pull EEG chunks ``(m, C)`` with corrected timestamps ``(m,)`` from a resolved stream."""

    def __init__(self, info: pylsl.StreamInfo, timeout: float = 5.0, max_chunk: int = 4096):
        super().__init__(info, max_buflen=30, timeout=timeout)
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
        return self._dest[:m], np.asarray(ts, dtype=np.float64) + self.clock.get()


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

    def __init__(self, info: pylsl.StreamInfo, timeout: float = 5.0):
        if info.channel_format() != pylsl.cf_string:
            raise DataError(f"marker stream {info.name()!r} does not carry strings")
        super().__init__(info, max_buflen=360, timeout=timeout)

    def pull(self) -> list[Marker]:
        samples, ts = self.inlet.pull_chunk(timeout=0.0)
        if not ts:
            return []
        corr = self.clock.get()
        return [parse_marker(str(s[0]), float(t) + corr) for s, t in zip(samples, ts)]
