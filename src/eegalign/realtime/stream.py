"""``eegalign stream``: decode live EEG at each marker and write one result per trial.

Loop (one thread): pull whatever EEG arrived (returning as soon as one sample is there, or after
``pull_timeout``), pull the markers, and cut every pending marker's epoch as soon as its last
sample is buffered (:func:`~eegalign.realtime.epoching.cut_epoch` on LSL timestamps corrected
onto the local clock). A ready epoch is preprocessed (:mod:`.preprocessing`), encoded
(:mod:`.decoder`) and ranked against the gallery (:mod:`.gallery`); the result goes to the JSON
lines log and the result outlet (:mod:`.results`).

Stream loss (the source vanished, or no EEG sample for ``stall`` seconds) is reported; pending
trials are logged as missed, and both streams are resolved again. ``timeout`` bounds the time since
the last new EEG sample across reconnections (a source that is still there but silent ends the
session as lost too).
An ``{"event": "end"}`` marker (sent by ``eegalign replay``) ends the session once every
earlier marker is handled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

from eegalign.errors import DataError
from eegalign.realtime.buffer import SampleBuffer
from eegalign.realtime.decoder import Decoder
from eegalign.realtime.epoching import MISSED, READY, cut_epoch
from eegalign.realtime.gallery import Gallery
from eegalign.realtime.inlets import EEGInlet, LostError, Marker, MarkerInlet, channel_labels, declared, resolve
from eegalign.realtime.preprocessing import EpochPreprocessor
from eegalign.realtime.results import ResultLog, ResultOutlet


class StreamLost(DataError):
    """The streams vanished and did not come back within the timeout."""


@dataclass
class Options:
    """What ``eegalign stream`` was asked to do (see its ``--help``)."""

    eeg_name: str
    marker_name: str
    result_name: str
    timeout: float = 10.0
    stall: float = 2.0
    max_trials: int | None = None
    pull_timeout: float = 0.005
    top_k: int = 5
    with_embedding: bool = False
    buffer_s: float = 10.0


@dataclass
class Connection:
    """The resolved streams: inlets, the preprocessing they still need and the sample period."""

    eeg: EEGInlet
    markers: MarkerInlet
    prep: EpochPreprocessor
    period: float
    note: str = ""  # a warning about the connection (channel order unchecked), said once per session

    def close(self) -> None:
        _close([self.eeg, self.markers])


def _skip_steps(info: pylsl.StreamInfo, record: dict[str, Any]) -> tuple[frozenset[str], float]:
    """Steps the source declares applied (checked against preprocess.json) and its replay rate (1 otherwise)."""
    import json

    block = declared(info)
    applied = frozenset(s for s in block.get("applied", "").split(",") if s)
    if "bandpass" in applied and json.loads(block.get("bandpass", "null")) != record.get("bandpass"):
        raise DataError(f"stream {info.name()!r} was band-passed with {block.get('bandpass')} but the model expects "
                        f"{record.get('bandpass')}: replay the cache the model was trained on")
    expected = int((record.get("epoch") or {}).get("start_samples", 0))
    if "start_samples" in block and int(block["start_samples"]) != expected:
        raise DataError(f"stream {info.name()!r} places its markers {block['start_samples']} samples before each epoch "
                        f"but the model's epochs start {expected} samples after the marker: every epoch would be "
                        "shifted; replay a cache prepared like the model's training cache")
    return applied, float(block.get("rate", "1") or 1)


def check_channels(info: pylsl.StreamInfo, model_names: list[str] | None) -> str:
    """Refuse a stream whose channel labels differ from the model's montage; return a warning when unchecked ('' if fine).

    Raises :class:`DataError` naming the first position where the labels differ (another order or montage).
    """
    labels = channel_labels(info)
    if labels is None or not model_names:
        side = "the stream has no channel labels" if labels is None else "the model directory records no channel names"
        return f"eegalign: warning: {side}: channel order of stream {info.name()!r} not checked"
    for i, (got, want) in enumerate(zip(labels, model_names)):
        if got.casefold() != want.casefold():
            raise DataError(f"stream {info.name()!r} channel {i + 1} is {got!r} but the model expects {want!r} there "
                            "(another montage or channel order): send the channels in the model's order")
    return ""


def connect(opts: Options, decoder: Decoder, record: dict[str, Any], timeout: float) -> Connection | str:
    """Resolve and open both streams within ``timeout`` seconds (about 0.5 s more at most); check the montage.

    Returns the connection, or why there is none (a phrase): a source that is found but does not answer
    (no description, no first clock offset) is closed and resolved again until the time is up.
    """
    end = time.monotonic() + timeout
    while True:
        got = _connect_once(opts, decoder, record, end)
        if isinstance(got, Connection) or time.monotonic() >= end:
            return got
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))


def _connect_once(opts: Options, decoder: Decoder, record: dict[str, Any], end: float) -> Connection | str:
    """One attempt at :func:`connect`, every wait bounded by the deadline ``end`` (``time.monotonic()``)."""
    info = resolve(opts.eeg_name, max(0.1, end - time.monotonic()))
    if info is None:
        return f"no stream named {opts.eeg_name!r}"
    mk_info = resolve(opts.marker_name, max(0.1, end - time.monotonic()))
    if mk_info is None:
        return f"no marker stream named {opts.marker_name!r}"
    sfreq = float(record["sfreq"])
    if info.channel_count() != decoder.n_chans or abs(info.nominal_srate() - sfreq) > 1e-6 * sfreq:
        raise DataError(f"stream {opts.eeg_name!r} has {info.channel_count()} channels at {info.nominal_srate():g} Hz "
                        f"but the model takes {decoder.n_chans} channels at {sfreq:g} Hz")
    inlets: list[Any] = []
    try:
        inlets.append(EEGInlet(info, end))
        inlets.append(MarkerInlet(mk_info, end))
        eeg, markers = inlets
        skip, rate = _skip_steps(eeg.info, record)
        note = check_channels(eeg.info, (decoder.config.get("montage") or {}).get("channel_names"))
        conn = Connection(eeg, markers, EpochPreprocessor(record, skip=skip), 1.0 / (sfreq * rate), note)
        for inlet in inlets:
            inlet.open(end)
        return conn
    except (LostError, pylsl.util.TimeoutError) as e:  # found but not answering, or gone between resolution and opening
        _close(inlets)
        return str(e) or "the source did not answer"
    except BaseException:  # a refused source (DataError, ConfigError) or Ctrl-C: no inlet left open
        _close(inlets)
        raise


def _close(inlets: list[Any]) -> None:
    for inlet in inlets:
        try:
            inlet.close()
        except Exception:  # noqa: BLE001 - closing a lost inlet may fail; nothing left to do
            pass


class Session:
    """One ``eegalign stream`` run: state across reconnections, counts, and the output sinks."""

    def __init__(self, opts: Options, decoder: Decoder, gallery: Gallery, record: dict[str, Any],
                 log: ResultLog, outlet: ResultOutlet | None, say: Callable[[str], None]):
        self.opts, self.decoder, self.gallery, self.record = opts, decoder, gallery, record
        self.log, self.outlet, self.say = log, outlet, say
        self.buffer = SampleBuffer(decoder.n_chans, int(opts.buffer_s * float(record["sfreq"])))
        self.pending: list[Marker] = []
        self.decoded = self.missed = 0
        self.ended = False
        self.losses = 0
        self.last_sample = time.monotonic()  # of the last new EEG sample (or the session's start)
        self._noted: set[str] = set()

    def note(self, conn: Connection) -> None:
        """Say the connection's warning, once per session (not again after each reconnection)."""
        if conn.note and conn.note not in self._noted:
            self._noted.add(conn.note)
            self.say(conn.note)

    @property
    def handled(self) -> int:
        return self.decoded + self.missed

    def done(self) -> bool:
        if self.opts.max_trials is not None and self.handled >= self.opts.max_trials:
            return True
        return self.ended and not self.pending

    def run(self, conn: Connection) -> None:
        """Decode until done; on a loss, reconnect within the timeout or raise :class:`StreamLost`."""
        self.note(conn)
        while not self.done():
            reason = self._pump(conn)
            if reason is None:
                continue
            conn.close()
            if self.ended:  # the source said it was done: what is still pending can no longer come
                self._drop_pending(f"stream ended ({reason})")
                return
            conn = self._recover(reason)
            self.note(conn)
        conn.close()

    def _pump(self, conn: Connection) -> str | None:
        """Pull and decode until done or a loss; return the loss's reason (None when done)."""
        last_data = time.monotonic()  # stall: counted per connection; --timeout: since the session's last sample
        while not self.done():
            try:
                data, ts = conn.eeg.pull(self.opts.pull_timeout)
                markers = conn.markers.pull()
            except LostError:
                return "the source closed the stream"
            except pylsl.util.TimeoutError:  # liblsl's clock correction could not be refreshed
                return "the source stopped answering clock queries"
            now = time.monotonic()
            if len(ts):
                self.buffer.append(data, ts)
                last_data = self.last_sample = now
            elif now - self.last_sample > self.opts.timeout:
                return f"no EEG sample for {self.opts.timeout:g} s"
            elif now - last_data > self.opts.stall:
                return f"no EEG sample for {self.opts.stall:g} s"
            for m in markers:
                if m.is_end:
                    self.ended = True
                else:
                    self.pending.append(m)
            self._cut_pending(conn)
        return None

    def _cut_pending(self, conn: Connection) -> None:
        """Decode every pending marker whose epoch is complete; log the missed ones."""
        keep = []
        for m in self.pending:
            if self.opts.max_trials is not None and self.handled >= self.opts.max_trials:
                break
            cut = cut_epoch(self.buffer.data, self.buffer.timestamps, m.t, start_samples=conn.prep.start_samples,
                            n_times=self.decoder.n_times, period=conn.period)
            if cut.status == READY:
                t_last = float(self.buffer.timestamps[cut.first_index + self.decoder.n_times - 1])
                self._decode(m, cut.epoch, conn.prep, t_last)
            elif cut.status == MISSED:
                self._missed(m, cut.reason)
            else:
                keep.append(m)
        self.pending = keep

    def _decode(self, m: Marker, epoch: np.ndarray, prep: EpochPreprocessor, t_last: float) -> None:
        """Preprocess, encode, rank; write and publish the trial's result (with the time of each stage)."""
        clock = pylsl.local_clock
        t_cut = clock()
        x = prep(epoch[None])  # (C, T) -> (1, C, T)
        t_prep = clock()
        emb = self.decoder(x)[0]  # (*output_shape)
        t_enc = clock()
        top = self.gallery.top(emb, self.opts.top_k)
        t_done = clock()
        record = self._base(m) | {
            "status": "ok", "t_done": t_done, "latency_ms": 1000.0 * (t_done - m.t),
            "after_epoch_ms": 1000.0 * (t_done - t_last),
            "stages_ms": {"wait": 1000.0 * (t_cut - t_last), "preprocess": 1000.0 * (t_prep - t_cut),
                          "encode": 1000.0 * (t_enc - t_prep), "rank": 1000.0 * (t_done - t_enc)},
            "top5": [{"item": name, "score": score} for name, score in top],
        }
        if self.opts.with_embedding:
            record["embedding"] = emb.astype(np.float64).tolist()
        self._emit(record, t_done)
        self.decoded += 1

    def _missed(self, m: Marker, reason: str) -> None:
        t_done = pylsl.local_clock()
        self._emit(self._base(m) | {"status": "missed", "reason": reason, "t_done": t_done}, t_done)
        self.missed += 1

    def _base(self, m: Marker) -> dict[str, Any]:
        trial = m.fields.get("trial")
        return {"trial": trial if isinstance(trial, int) else self.handled, "marker": m.raw, "image_id": m.image_id,
                "t_marker": m.t}

    def _emit(self, record: dict[str, Any], t_done: float) -> None:
        line = self.log.write(record)
        if self.outlet is not None:
            self.outlet.push(line, t_done)

    def _drop_pending(self, reason: str) -> None:
        for m in self.pending:
            self._missed(m, reason)
        self.pending = []
        self.buffer.clear()

    def _recover(self, reason: str) -> Connection:
        """Report a loss, log pending trials as missed, and resolve the streams again.

        ``--timeout`` bounds the time since the last new EEG sample, across reconnections: a source that
        is still there but sends nothing ends the session instead of being reconnected forever.
        """
        self.losses += 1
        self._drop_pending(f"stream lost ({reason})")
        left = self.opts.timeout - (time.monotonic() - self.last_sample)
        if left <= 0:
            raise StreamLost(f"stream {self.opts.eeg_name!r} lost ({reason}): no new EEG sample for "
                             f"{self.opts.timeout:g} s (the source may still be there, sending nothing); "
                             f"{self.decoded} trials decoded, {self.missed} missed, results in {self.log.path}")
        self.say(f"eegalign: warning: stream {self.opts.eeg_name!r} lost ({reason}) after {self.handled} trials; "
                 f"results so far are in {self.log.path}; waiting up to {left:.3g} s for it to come back")
        conn = connect(self.opts, self.decoder, self.record, left)
        if isinstance(conn, str):
            raise StreamLost(f"stream {self.opts.eeg_name!r} lost ({reason}) and not back within {self.opts.timeout:g} s "
                             f"({conn}); {self.decoded} trials decoded, {self.missed} missed, results in {self.log.path}")
        self.say(f"eegalign: stream {self.opts.eeg_name!r} is back; decoding again")
        return conn


def run_stream(model_dir: str | Path, out: str | Path, opts: Options, *, gallery: str = "prototypes",
               cache: str | None = None, backend: str = "auto", threads: int = 1, overwrite: bool = False,
               result_outlet: bool = True, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Decode the live streams ``opts`` names with the model directory's encoder into the log ``out``; return counts.

    Raises :class:`StreamLost` when the streams vanish for longer than ``opts.timeout``, and
    :class:`DataError` when they cannot be found within it (nothing is written then).
    """
    from eegalign.pretrained import read_preprocess
    from eegalign.realtime.gallery import load_gallery
    from eegalign.realtime.preprocessing import check_record

    decoder = Decoder(model_dir, backend=backend, threads=threads)
    record = read_preprocess(model_dir)
    check_record(record)
    items = load_gallery(gallery, record, decoder.config.get("route") or "image", decoder.output_shape, cache)
    if items.note:
        say(items.note)
    decoder.warm_up()
    say(f"stream: {decoder.config['encoder'].get('name')} via {decoder.backend}; gallery: {len(items.names)} items "
        f"({items.source}); waiting up to {opts.timeout:g} s for streams {opts.eeg_name!r} and {opts.marker_name!r}")
    # the result outlet exists before the source is resolved, so the experiment software can connect first
    outlet = ResultOutlet(opts.result_name, f"eegalign-stream:{opts.result_name}") if result_outlet else None
    conn = connect(opts, decoder, record, opts.timeout)
    if isinstance(conn, str):
        raise DataError(f"no LSL streams named {opts.eeg_name!r} and {opts.marker_name!r} usable within {opts.timeout:g} s "
                        f"({conn}; is the source running, and on the same network settings: --local on both sides?)")
    say(f"stream: connected ({', '.join(conn.prep.steps()) or 'no'} preprocessing per epoch); results to {out}"
        + (f" and LSL stream {opts.result_name!r}" if outlet else ""))
    with ResultLog(out, overwrite=overwrite) as log:
        session = Session(opts, decoder, items, record, log, outlet, say)
        try:
            session.run(conn)
        finally:
            if outlet is not None:
                outlet.linger()
            say(f"stream: {session.decoded} trials decoded, {session.missed} missed, {session.losses} stream losses; "
                f"results in {out}")
    return {"decoded": session.decoded, "missed": session.missed, "losses": session.losses}
