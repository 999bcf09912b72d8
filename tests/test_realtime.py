"""Live decoding over LSL on loopback: replay + stream end to end, sample-exact against offline predictions.

Every LSL test runs `eegalign replay` and `eegalign stream` as subprocesses with --local (conftest
also sets LSLAPICFG to the loopback-only config), a unique stream name, and bounded timeouts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pylsl")
pytest.importorskip("onnxruntime")

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "eegalign", *args]


def _name() -> str:
    return f"eegalign-test-{uuid.uuid4().hex[:10]}"


def _replay(cache: Path, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_cli("replay", "--cache", str(cache), "--stream-name", name, "--local", "--wait", "25", *extra),
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _stream_cmd(model: Path, name: str, out: Path, *extra: str) -> list[str]:
    return _cli("stream", "--model", str(model), "--eeg-stream", name, "--out", str(out), "--local", *extra)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _model_dir(cache: Path, out: Path) -> Path:
    """A tiny encoder exported with ONNX, with ``cache``'s preprocessing."""
    import torch

    from eegalign.models import build_model
    from eegalign.onnx_export import export_onnx
    from eegalign.pretrained import preprocess_from_cache, save_pretrained

    torch.manual_seed(0)
    enc = build_model("mlp", n_chans=128, n_times=440, hidden=8)
    return save_pretrained(enc, out, preprocess=preprocess_from_cache(cache), route="image",
                           extra_files=lambda e, tmp: export_onnx(e, tmp / "model.onnx"))


@pytest.fixture(scope="module")
def model_dir(small_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _model_dir(small_cache, tmp_path_factory.mktemp("rt") / "model")


@pytest.fixture(scope="module")
def bandpass_setup(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A cache band-passed and z-scored per channel, and a model directory trained on it."""
    from eegalign.data.cache import prepare_cache

    root = tmp_path_factory.mktemp("rtbp")
    cache = prepare_cache(synthetic_dir, root / "cache", bandpass=(1.0, 40.0), norm="channel")
    return cache, _model_dir(cache, root / "model")


# ---------------------------------------------------------------------------------------------- pure parts


def test_schedule_places_each_marker_on_its_onset_sample() -> None:
    from eegalign.errors import ConfigError
    from eegalign.realtime.epoching import READY, cut_epoch
    from eegalign.realtime.schedule import Schedule, chunks

    eeg = np.random.default_rng(0).standard_normal((5, 3, 40)).astype(np.float32)  # (N, C, T)
    sched = Schedule((4, 0, 2), n_times=40, gap=7, start_samples=5)
    pieces = list(chunks(sched.blocks(eeg), 6))
    signal_ = np.concatenate([p for _, p in pieces])  # (total, C)
    assert [s for s, _ in pieces] == sorted(s for s, _ in pieces) and len(signal_) == sched.total
    ts = 10.0 + np.arange(len(signal_)) / 1000.0
    for k, row in enumerate(sched.rows):
        cut = cut_epoch(signal_, ts, ts[sched.marker_index(k)], start_samples=5, n_times=40, period=1e-3)
        assert cut.status == READY
        np.testing.assert_array_equal(cut.epoch, eeg[row])
    with pytest.raises(ConfigError):
        Schedule((0,), n_times=40, gap=4, start_samples=5)  # the onset would fall inside the previous trial


@pytest.mark.parametrize("norm", ["global", "channel"])
def test_epoch_preprocessing_equals_the_cache_pipeline(norm: str) -> None:
    """A raw epoch through preprocess.json gives the cache's trial; undoing the z-score round-trips."""
    from eegalign.data.preprocess import preprocess
    from eegalign.realtime.preprocessing import EpochPreprocessor, undo_zscore

    raw = 20 * np.random.default_rng(1).standard_normal((6, 4, 300)).astype(np.float32) + 3  # (N, C, T)
    cache = raw.copy()
    stats = preprocess(cache, np.arange(4), bandpass_hz=(1.0, 40.0), sfreq=250.0, norm=norm)
    record = {"sfreq": 250.0, "bandpass": stats["bandpass"], "normalisation": stats["normalisation"]}
    live = EpochPreprocessor(record)(raw[5:6])
    np.testing.assert_allclose(live[0], cache[5], rtol=0, atol=1e-4)
    back = undo_zscore(cache, stats["normalisation"])  # what replay publishes (band-passed, recorded units)
    again = EpochPreprocessor(record, skip=frozenset({"nonfinite", "bandpass"}))(back)
    np.testing.assert_allclose(again, cache, rtol=0, atol=1e-5)


def test_sample_buffer_keeps_the_newest_samples_contiguous() -> None:
    from eegalign.realtime.buffer import SampleBuffer

    buf = SampleBuffer(2, capacity=10)
    for i in range(0, 57, 3):
        block = np.arange(i, i + 3, dtype=np.float32)
        buf.append(np.stack([block, -block], axis=1), block.astype(np.float64))
    assert 10 <= len(buf) <= 20 and buf.timestamps[-1] == 56
    np.testing.assert_array_equal(buf.timestamps, np.arange(57 - len(buf), 57))
    np.testing.assert_array_equal(buf.data[:, 1], -buf.timestamps)


def test_gallery_scores_equal_the_evaluation_cosine() -> None:
    from eegalign.metrics import similarity_matrix
    from eegalign.realtime.gallery import _centred

    rng = np.random.default_rng(2)
    for shape in ((9, 16), (9, 4, 8)):  # image route, text route (centred on the gallery mean)
        items = rng.standard_normal(shape).astype(np.float32)
        gallery = _centred([f"i{j}" for j in range(9)], items, "test")
        pred = rng.standard_normal(shape[1:]).astype(np.float32)
        want = similarity_matrix(pred[None], items, gallery.center)[0]
        np.testing.assert_allclose(gallery.scores(pred), want, rtol=0, atol=1e-6)
        assert [n for n, _ in gallery.top(pred, 5)] == [f"i{j}" for j in np.argsort(-want, kind="stable")[:5]]


def test_gallery_from_an_image_target_file(small_cache: Path) -> None:
    from eegalign.data.cache import Cache
    from eegalign.errors import DataError
    from eegalign.realtime.gallery import load_gallery

    path = small_cache / "targets" / "image.safetensors"
    gallery = load_gallery(str(path), {}, "image", (1024,))
    targets = Cache.open(small_cache).targets("image")
    assert gallery.names == targets.image_ids
    best, score = gallery.top(targets.embeddings[3], 5)[0]
    assert best == targets.image_ids[3] and score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(DataError, match="model predicts"):
        load_gallery(str(path), {}, "text", (77, 768))
    with pytest.raises(DataError, match="needs the training cache"):
        load_gallery("prototypes", {"source_cache": {"path": "/nowhere"}}, "image", (1024,))


# ---------------------------------------------------------------------------------------------- over LSL


@pytest.mark.parametrize("backend,bandpass", [("onnx", False), ("torch", True)])
def test_live_equals_offline_for_every_trial(small_cache: Path, model_dir: Path, tmp_path: Path, backend: str,
                                             bandpass: bool, request: pytest.FixtureRequest) -> None:
    """Every replayed trial is decoded, and its live embedding and top-5 equal the offline ones.

    With a band-passed cache, replay declares the band-pass done and stream must not filter again.
    """
    if bandpass:
        small_cache, model_dir = request.getfixturevalue("bandpass_setup")
    from eegalign.data.cache import Cache
    from eegalign.evaluate import predict_checkpoint
    from eegalign.pretrained import read_preprocess
    from eegalign.realtime.gallery import load_gallery

    name, out = _name(), tmp_path / "live.jsonl"
    stream = subprocess.Popen(_stream_cmd(model_dir, name, out, "--backend", backend, "--with-embedding", "--timeout", "30"),
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    replay = None
    try:
        results = _subscribe(f"{name}-decoded", stream)  # connected before the source starts: sees every result
        replay = _replay(small_cache, name, "--split", "train", "--rate", "8")
        published = _drain(results, stream)
        _, err = stream.communicate(timeout=90)
        assert replay.wait(timeout=30) == 0, replay.stderr.read()
    finally:
        if replay is not None:
            replay.kill()
        stream.kill()
    assert stream.returncode == 0, err
    rows = Cache.open(small_cache).split_indices("train")
    lines = _lines(out)
    assert [r["trial"] for r in lines] == list(range(len(rows))) and all(r["status"] == "ok" for r in lines)
    offline, _, cache = predict_checkpoint(model_dir, small_cache, "train", progress=False)
    assert [r["image_id"] for r in lines] == offline.image_ids
    live = np.array([r["embedding"] for r in lines], dtype=np.float32)
    np.testing.assert_allclose(live, offline.pred, rtol=0, atol=1e-4 * float(np.abs(offline.pred).max()))
    gallery = load_gallery("prototypes", read_preprocess(model_dir), "image", (1024,))
    for r, pred in zip(lines, offline.pred):
        want = gallery.top(pred, 5)
        assert [t["item"] for t in r["top5"]] == [n for n, _ in want]
        np.testing.assert_allclose([t["score"] for t in r["top5"]], [s for _, s in want], atol=1e-4)
        assert r["latency_ms"] > 0 and r["t_done"] > r["t_marker"]
    by_trial = {r["trial"]: r for r in lines}  # the result outlet carries the same lines
    assert [json.loads(p) for p in published] == [by_trial[k] for k in sorted(by_trial)]


def _subscribe(result_stream: str, stream: subprocess.Popen) -> "object":
    """An open inlet on ``stream``'s result outlet (which appears before it resolves its source)."""
    import pylsl

    deadline, found = time.monotonic() + 60, []
    while not found and stream.poll() is None and time.monotonic() < deadline:
        found = pylsl.resolve_byprop("name", result_stream, 1, 0.5)
    assert found, f"no result stream {result_stream!r}"
    inlet = pylsl.StreamInlet(found[0], recover=False)
    inlet.open_stream(timeout=10)
    return inlet


def _drain(inlet: "object", stream: subprocess.Popen) -> list[str]:
    """Every line the result outlet publishes until ``stream`` ends."""
    import pylsl

    got: list[str] = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            samples, _ = inlet.pull_chunk(timeout=0.2)
            got.extend(s[0] for s in samples)
            if stream.poll() is not None and not samples:
                break
    except pylsl.util.LostError:
        pass
    return got


def test_interrupted_replay_is_reported_and_results_kept(small_cache: Path, model_dir: Path, tmp_path: Path) -> None:
    name, out = _name(), tmp_path / "live.jsonl"
    replay = _replay(small_cache, name, "--split", "train", "--rate", "1")
    stream = subprocess.Popen(_stream_cmd(model_dir, name, out, "--timeout", "3", "--stall", "1"),
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_lines(out)) < 2 and time.monotonic() < deadline and stream.poll() is None:
            time.sleep(0.1)
        assert len(_lines(out)) >= 2, "no trial decoded before the kill"
        replay.kill()  # the amplifier vanishes mid-run
        killed_at = time.monotonic()
        _, err = stream.communicate(timeout=30)
        took = time.monotonic() - killed_at
    finally:
        replay.kill()
        stream.kill()
    assert stream.returncode == 2 and "lost" in err and "not back within 3 s" in err, err
    assert took < 15
    lines = _lines(out)  # every line intact
    n_trials = len(_train_rows(small_cache))
    assert 2 <= len(lines) < n_trials
    assert [r["trial"] for r in lines] == list(range(len(lines)))
    assert all(r["status"] == "ok" or "lost" in r["reason"] for r in lines)


def test_stream_resolves_a_restarted_source_and_goes_on(small_cache: Path, model_dir: Path, tmp_path: Path) -> None:
    name, out = _name(), tmp_path / "live.jsonl"
    first = _replay(small_cache, name, "--split", "train", "--rate", "1")
    stream = subprocess.Popen(_stream_cmd(model_dir, name, out, "--timeout", "20", "--stall", "1"),
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    second = None
    try:
        deadline = time.monotonic() + 60
        while len(_lines(out)) < 2 and time.monotonic() < deadline and stream.poll() is None:
            time.sleep(0.1)
        first.kill()  # the amplifier restarts
        first.wait(timeout=10)
        second = _replay(small_cache, name, "--split", "train", "--rate", "4", "--max-trials", "3")
        _, err = stream.communicate(timeout=60)
    finally:
        for p in (first, second, stream):
            if p is not None:
                p.kill()
    assert stream.returncode == 0, err
    assert "lost" in err and "is back" in err
    lines = _lines(out)
    tail = lines[-3:]  # the restarted source's three trials, decoded after the loss
    assert [r["trial"] for r in tail] == [0, 1, 2] and all(r["status"] == "ok" for r in tail)
    before = lines[:-3]  # the first source's: decoded, or missed because it vanished mid-epoch
    assert len(before) >= 2 and [r["trial"] for r in before] == list(range(len(before)))
    assert all(r["status"] == "ok" or "lost" in r["reason"] for r in before)


def _train_rows(cache: Path) -> np.ndarray:
    from eegalign.data.cache import Cache

    return Cache.open(cache).split_indices("train")


def test_ctrl_c_ends_cleanly_with_the_log_intact(small_cache: Path, model_dir: Path, tmp_path: Path) -> None:
    name, out = _name(), tmp_path / "live.jsonl"
    replay = _replay(small_cache, name, "--split", "train", "--rate", "1")
    stream = subprocess.Popen(_stream_cmd(model_dir, name, out, "--timeout", "20"),
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(_lines(out)) < 1 and time.monotonic() < deadline and stream.poll() is None:
            time.sleep(0.1)
        stream.send_signal(signal.SIGINT)
        _, err = stream.communicate(timeout=20)
    finally:
        replay.kill()
        stream.kill()
    assert stream.returncode == 130, err
    lines = _lines(out)
    assert len(lines) >= 1 and all(r["status"] == "ok" for r in lines)


def test_stream_refusals_write_nothing(small_cache: Path, model_dir: Path, tmp_path: Path) -> None:
    existing = tmp_path / "old.jsonl"
    existing.write_text("keep\n")
    res = subprocess.run(_stream_cmd(model_dir, "nobody", existing), env=_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "already exists" in res.stderr and existing.read_text() == "keep\n"
    res = subprocess.run(_stream_cmd(model_dir, "nobody", model_dir / "config.json", "--overwrite"),
                         env=_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "input" in res.stderr and (model_dir / "config.json").read_text().startswith("{")
    out = tmp_path / "new.jsonl"
    t = time.monotonic()
    res = subprocess.run(_stream_cmd(model_dir, _name(), out, "--timeout", "1"), env=_env(), capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "no LSL streams named" in res.stderr and not out.exists()
    assert time.monotonic() - t < 40
    assert res.stderr.strip().splitlines()[-1].startswith("eegalign: error:")


def test_a_source_with_another_epoch_start_is_refused() -> None:
    """Markers placed for another crop would shift every epoch: refused before decoding (no LSL traffic)."""
    from eegalign.errors import DataError
    from eegalign.realtime.replay import eeg_info
    from eegalign.realtime.stream import _skip_steps

    record = {"bandpass": None, "epoch": {"start_samples": 20}}
    same = eeg_info("x", 4, 1000.0, channel_names=None,
                    declared={"applied": "nonfinite", "bandpass": "null", "start_samples": "20", "rate": "1"})
    assert _skip_steps(same, record) == (frozenset({"nonfinite"}), 1.0)
    other = eeg_info("x", 4, 1000.0, channel_names=None,
                     declared={"applied": "nonfinite", "bandpass": "null", "start_samples": "0", "rate": "1"})
    with pytest.raises(DataError, match="shifted"):
        _skip_steps(other, record)


def test_channel_labels_in_another_order_are_refused() -> None:
    """Labels differing from config.json's montage (another order) are refused naming the first difference; none: warned."""
    from eegalign.errors import DataError
    from eegalign.realtime.inlets import channel_labels
    from eegalign.realtime.replay import eeg_info
    from eegalign.realtime.stream import check_channels

    names = ["Fp1", "Fp2", "Cz", "Oz"]
    same = eeg_info("x", 4, 1000.0, channel_names=names, declared={})
    assert channel_labels(same) == names and check_channels(same, names) == ""
    swapped = eeg_info("x", 4, 1000.0, channel_names=["Fp1", "Cz", "Fp2", "Oz"], declared={})
    with pytest.raises(DataError, match=r"channel 2 is 'Cz' but the model expects 'Fp2'") as e:
        check_channels(swapped, names)
    assert "\n" not in str(e.value)
    unlabelled = eeg_info("x", 4, 1000.0, channel_names=None, declared={})  # replay of a cache without names
    assert channel_labels(unlabelled) is None
    assert "no channel labels" in check_channels(unlabelled, names)
    assert "records no channel names" in check_channels(same, None)


def _outlet(name: str, n_chans: int = 2) -> "object":
    import pylsl

    return pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", n_chans, 100.0, pylsl.cf_float32, name))


def test_inlet_timestamps_stay_ascending_and_on_the_local_clock() -> None:
    """A timestamp stepping backwards (e.g. a clock correction) is raised to the previous one: the buffer stays sorted."""
    import pylsl

    from eegalign.realtime.inlets import EEGInlet, resolve

    name = _name()
    outlet = _outlet(name)
    deadline = time.monotonic() + 10
    info = resolve(name, 5.0)
    assert info is not None
    inlet = EEGInlet(info, deadline)
    assert abs(inlet.offset) < 0.01  # same machine: the first clock offset is about zero
    inlet.open(deadline)
    t0 = pylsl.local_clock()
    stamps = [t0, t0 + 0.01, t0 + 0.005, t0 + 0.03]  # the third steps backwards
    outlet.push_chunk(np.zeros((4, 2), dtype=np.float32).tolist(), stamps)
    got: list[float] = []
    while len(got) < 4 and time.monotonic() < deadline:
        got.extend(inlet.pull(0.2)[1].tolist())
    inlet.close()
    assert len(got) == 4 and np.all(np.diff(got) >= 0), got
    np.testing.assert_allclose(got, [t0, t0 + 0.01, t0 + 0.01, t0 + 0.03], atol=1e-3)


def test_no_first_clock_offset_is_a_loss_not_uncorrected_decoding() -> None:
    """A source that stops answering before the first time_correction: LostError within the time given (no offset 0)."""
    import pylsl

    from eegalign.realtime.inlets import EEGInlet, LostError, first_clock_offset, resolve

    name = _name()
    outlet = _outlet(name)
    info = resolve(name, 5.0)
    assert info is not None
    inlet = pylsl.StreamInlet(info, recover=False)
    del outlet  # the source goes before any clock offset was measured
    t = time.monotonic()
    with pytest.raises(LostError):
        first_clock_offset(inlet, 1.0)
    assert time.monotonic() - t < 5
    t = time.monotonic()
    with pytest.raises(LostError):  # the same through the inlet stream uses, within its deadline
        EEGInlet(info, time.monotonic() + 1.0)
    assert time.monotonic() - t < 5


def test_a_silent_source_ends_the_stream_within_the_timeout(model_dir: Path, tmp_path: Path) -> None:
    """Source present but sending nothing: stream reconnects (it still resolves) but --timeout bounds the silence."""
    import pylsl

    from eegalign.pretrained import read_preprocess

    name, out = _name(), tmp_path / "live.jsonl"
    sfreq = float(read_preprocess(model_dir)["sfreq"])
    eeg = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 128, sfreq, pylsl.cf_float32, name))
    mk = pylsl.StreamOutlet(pylsl.StreamInfo(f"{name}-markers", "Markers", 1, 0, pylsl.cf_string, f"{name}-m"))
    stream = subprocess.Popen(_stream_cmd(model_dir, name, out, "--timeout", "3", "--stall", "0.5"),
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = stream.communicate(timeout=60)
    finally:
        stream.kill()
        del eeg, mk
    assert stream.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("eegalign: error:") and "no new EEG sample for 3 s" in last, err
    assert "lost" in err and out.exists() and _lines(out) == []  # the (empty) log is kept


@pytest.mark.parametrize("command,option,value", [
    ("replay", "--gap-ms", "inf"), ("replay", "--chunk-ms", "inf"), ("replay", "--rate", "inf"),
    ("replay", "--rate", "nan"), ("replay", "--rate", "0"), ("replay", "--wait", "inf"), ("replay", "--wait", "-1"),
    ("stream", "--timeout", "inf"), ("stream", "--stall", "nan"), ("stream", "--timeout", "0"),
])
def test_numeric_options_must_be_finite_and_positive(tmp_path: Path, command: str, option: str, value: str) -> None:
    """One `eegalign: error:` line naming the option, before any LSL traffic or file (no traceback, no OverflowError)."""
    if command == "replay":
        argv = ["replay", "--cache", str(tmp_path / "nocache"), "--stream-name", _name(), "--local", option, value]
    else:
        (tmp_path / "model").mkdir()
        argv = ["stream", "--model", str(tmp_path / "model"), "--eeg-stream", _name(), "--out", str(tmp_path / "o.jsonl"),
                "--local", option, value]
    res = subprocess.run(_cli(*argv), env=_env(), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"eegalign: error: {option} must be a finite number"), res.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_prototypes_of_a_zero_shot_cache_are_warned_about(small_cache: Path) -> None:
    """Test classes without training trials (THINGS-EEG2's test concepts): --gallery prototypes cannot contain them."""
    from eegalign.realtime.gallery import load_gallery, zero_shot_note

    assert load_gallery("prototypes", {"source_cache": {"path": str(small_cache)}}, "image", (1024,)).note == ""
    assert zero_shot_note(np.array([0, 1, 2]), np.array([1, 2]), "c") == ""
    note = zero_shot_note(np.array([0, 1, 2]), np.array([3, 4, 1]), "c")
    assert note.startswith("eegalign: warning:") and "2 of its 3 test classes have no training trial" in note
    assert "--gallery FILE" in note and "\n" not in note
    assert "THINGS-EEG2" in zero_shot_note(np.array([0, 1]), np.array([0]), "c", "things-eeg2")


def test_connect_keeps_within_the_timeout(model_dir: Path) -> None:
    """connect() bounds resolution, description, clock offset and opening together by --timeout (about 0.5 s more)."""
    import pylsl

    from eegalign.pretrained import read_preprocess
    from eegalign.realtime.decoder import Decoder
    from eegalign.realtime.stream import Options, connect

    decoder, record = Decoder(model_dir, backend="torch"), read_preprocess(model_dir)
    name = _name()
    t = time.monotonic()
    got = connect(Options(name, f"{name}-markers", "unused"), decoder, record, 1.0)
    assert isinstance(got, str) and name in got and time.monotonic() - t < 2.5  # nothing there
    eeg = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EEG", 128, float(record["sfreq"]), pylsl.cf_float32, name))
    t = time.monotonic()  # the EEG stream is there, its marker stream is not: retried until the time is up
    got = connect(Options(name, f"{name}-markers", "unused"), decoder, record, 1.5)
    assert isinstance(got, str) and "marker" in got and 1.5 <= time.monotonic() - t < 3.5
    del eeg
