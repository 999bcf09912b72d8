"""Live decoding latency over LSL (loopback): `eegalign replay` -> `eegalign stream`, per model and backend.

For each encoder (NervFormer reference and small, EEGNetTransformer reference; random weights, exported
with ONNX) and each backend (torch, ONNX Runtime), the script replays the synthetic test split
(1 kHz, 128 channels, 440 samples per trial, 100 ms gaps, repeated to fill ``--minutes``) at real-time
pace with `eegalign replay --local`, decodes it with `eegalign stream --local` (1 intra-op thread),
both as separate processes, and reads the stream's JSON lines:

- marker-to-result latency (``latency_ms``: marker timestamp -> result, LSL clock), p50 / p99; it
  includes the 440 ms epoch itself, which must be recorded before it can be decoded;
- after-epoch latency (``after_epoch_ms``: the epoch's last sample timestamp -> result), p50 / p99:
  what the decoder adds, the figure the issue's goal (p99 <= 50 ms) is about;
- the stages of the after-epoch latency (median / p99): ``wait`` (last sample -> its epoch cut: LSL
  transport, the pull loop, a previous trial still decoding), ``preprocess``, ``encode``, ``rank``;
- dropped trials: replayed trials without an ``ok`` result (missed epochs and lost markers);
- the 1-minute load average (``os.getloadavg``) sampled every 5 s during the run, mean and max:
  the machine is shared, so latency figures are only comparable at similar load.

    python benchmarks/realtime.py --minutes 10                 # the table in docs/performance.md (6 runs of 10 min)
    python benchmarks/realtime.py --minutes 1 --no-write --json /tmp/rt.json
    python benchmarks/realtime.py --minutes 3 --models nervformer:small --include /tmp/rt.json   # rows of both runs

The table replaces the section between the ``realtime-benchmark`` markers of docs/performance.md
(appended when absent), written atomically.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))

MODELS = (("nervformer", "reference"), ("nervformer", "small"), ("eegnet_transformer", "reference"))
BACKENDS = ("torch", "onnx")
BEGIN, END = "<!-- realtime-benchmark:begin -->", "<!-- realtime-benchmark:end -->"
GAP_MS, N_TIMES, SFREQ = 100.0, 440, 1000.0
NAMES = {"nervformer": "NervFormer", "eegnet_transformer": "EEGNetTransformer"}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "eegalign", *args]


def prepare_cache(work: Path) -> Path:
    """The default synthetic data set (6 subjects x 40 classes x 5 images, 128 x 440 at 1 kHz) and its cache."""
    ds, cache = work / "ds", work / "cache"
    subprocess.run(_cli("data", "synth", "--out", str(ds)), env=_env(), check=True, capture_output=True)
    subprocess.run(_cli("data", "prepare", "--source", str(ds), "--out", str(cache)), env=_env(), check=True,
                   capture_output=True)
    return cache


def export_model(name: str, preset: str, cache: Path, work: Path) -> Path:
    """A model directory (random weights, ONNX checked against torch) of ``name`` at ``preset``."""
    import torch

    from eegalign.models import build_model
    from eegalign.onnx_export import export_onnx
    from eegalign.pretrained import preprocess_from_cache, save_pretrained

    torch.manual_seed(0)
    enc = build_model(name, preset=preset, n_chans=128, n_times=N_TIMES)
    route = "text" if len(tuple(enc.out_shape)) == 2 else "image"
    return save_pretrained(enc, work / f"{name}-{preset}", preprocess=preprocess_from_cache(cache), route=route,
                           extra_files=lambda e, tmp: export_onnx(e, tmp / "model.onnx"))


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else float("nan")


def summarise(lines: list[dict], expected: int) -> dict:
    """Latency percentiles, stage times and dropped trials from a stream's JSON lines."""
    ok = [r for r in lines if r.get("status") == "ok"]
    lat, after = [r["latency_ms"] for r in ok], [r["after_epoch_ms"] for r in ok]
    stages = {k: [r["stages_ms"][k] for r in ok] for k in ("wait", "preprocess", "encode", "rank")} if ok else {}
    return {
        "trials": expected, "decoded": len(ok), "missed": sum(r.get("status") == "missed" for r in lines),
        "dropped": expected - len(ok),
        "latency_p50": _pct(lat, 50), "latency_p99": _pct(lat, 99),
        "after_epoch_p50": _pct(after, 50), "after_epoch_p99": _pct(after, 99), "after_epoch_max": max(after, default=math.nan),
        "stages": {k: {"p50": _pct(v, 50), "p99": _pct(v, 99)} for k, v in stages.items()},
    }


def run_one(model_dir: Path, backend: str, cache: Path, minutes: float, work: Path, threads: int) -> dict:
    """Replay ``minutes`` of the test split into `eegalign stream`; return its summary with the load average."""
    from eegalign.data.cache import Cache

    n_split = len(Cache.open(cache).split_indices("test"))
    expected = max(1, int(minutes * 60 / ((N_TIMES + GAP_MS) / SFREQ)))
    name, out = f"eegalign-bench-{uuid.uuid4().hex[:8]}", work / f"{model_dir.name}-{backend}-{uuid.uuid4().hex[:6]}.jsonl"
    replay = subprocess.Popen(_cli("replay", "--cache", str(cache), "--split", "test", "--stream-name", name, "--local",
                                   "--repeat", str(math.ceil(expected / n_split)), "--max-trials", str(expected),
                                   "--gap-ms", str(GAP_MS), "--wait", "120"),
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stream = subprocess.Popen(_cli("stream", "--model", str(model_dir), "--eeg-stream", name, "--out", str(out), "--local",
                                   "--backend", backend, "--threads", str(threads), "--timeout", "60"),
                              env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    loads, t0 = [], time.monotonic()
    try:
        while stream.poll() is None and time.monotonic() - t0 < minutes * 60 + 300:
            loads.append(os.getloadavg()[0])
            time.sleep(5)
    finally:
        for p in (stream, replay):
            if p.poll() is None:
                p.kill()
    err = stream.stderr.read()
    if stream.returncode != 0:
        print(f"  stream exited {stream.returncode}: {err.strip().splitlines()[-1:]}", file=sys.stderr)
    lines = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return {**summarise(lines, expected), "load_mean": statistics.fmean(loads) if loads else os.getloadavg()[0],
            "load_max": max(loads, default=os.getloadavg()[0]), "wall_s": time.monotonic() - t0,
            "exit": stream.returncode}


def table(results: list[dict], minutes: float, when: str, threads: int) -> str:
    """The markdown section for docs/performance.md."""
    head = (f"{BEGIN}\n## Live decoding latency (LSL)\n\n"
            f"`python benchmarks/realtime.py` ({when}; {os.cpu_count()} CPU cores, load average per row; "
            f"each run replays the synthetic test split (minutes per row in the table) at 1 kHz, 128 channels, 440 samples, "
            f"100 ms gaps, real-time pace, over loopback LSL; stream with {threads} intra-op thread; random weights). "
            "Marker->result includes the 440 ms epoch; after-epoch is the epoch's last sample -> result "
            "(the goal: p99 <= 50 ms for NervFormer reference via ONNX Runtime, no trial dropped). "
            "Stages are medians / p99 of the after-epoch latency's parts.\n\n"
            "| encoder | backend | minutes | trials | dropped | marker->result p50 / p99 (ms) | after-epoch p50 / p99 / max (ms) "
            "| wait | preprocess | encode | rank | load avg mean / max |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for r in results:
        st = r["stages"]
        cell = lambda k: f"{st[k]['p50']:.1f} / {st[k]['p99']:.1f}" if k in st else "-"  # noqa: E731
        rows.append(f"| {NAMES[r['model']]} {r['preset']} | {r['backend']} | {r.get('minutes', minutes):g} | {r['trials']} | {r['dropped']} | "
                    f"{r['latency_p50']:.0f} / {r['latency_p99']:.0f} | {r['after_epoch_p50']:.1f} / "
                    f"{r['after_epoch_p99']:.1f} / {r['after_epoch_max']:.0f} | {cell('wait')} | {cell('preprocess')} | "
                    f"{cell('encode')} | {cell('rank')} | {r['load_mean']:.1f} / {r['load_max']:.1f} |")
    return head + "\n".join(rows) + f"\n\n{END}\n"


def write_section(doc: Path, section: str) -> None:
    """Replace the delimited section of ``doc`` (or append it), atomically."""
    from eegalign.io import atomic_file

    text = doc.read_text()
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with atomic_file(doc) as tmp:
        tmp.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="replay length per model and backend (default 10)")
    p.add_argument("--models", nargs="+", default=[f"{m}:{s}" for m, s in MODELS], help="NAME:PRESET (default: the three)")
    p.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of the stream's backend (default 1)")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--no-write", action="store_true", help="do not touch docs/performance.md")
    p.add_argument("--include", nargs="+", default=[], metavar="JSON",
                   help="earlier runs' --json files whose rows go into the table first (runs of different lengths)")
    args = p.parse_args()
    os.environ.setdefault("LSLAPICFG", str(SRC / "eegalign" / "realtime" / "lsl_local.cfg"))  # loopback only
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    earlier = [r for f in args.include for r in json.loads(Path(f).read_text())]
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="eegalign-rt-") as tmp:
        work = Path(tmp)
        cache = prepare_cache(work)
        for spec in args.models:
            name, preset = spec.split(":")
            model_dir = export_model(name, preset, cache, work)
            for backend in args.backends:
                print(f"{name} {preset} {backend}: {args.minutes:g} min ...", file=sys.stderr, flush=True)
                r = {"model": name, "preset": preset, "backend": backend, "minutes": args.minutes,
                     **run_one(model_dir, backend, cache, args.minutes, work, args.threads)}
                print(f"  after-epoch p50 {r['after_epoch_p50']:.1f} ms, p99 {r['after_epoch_p99']:.1f} ms, "
                      f"dropped {r['dropped']}/{r['trials']}, load {r['load_mean']:.1f}", file=sys.stderr, flush=True)
                results.append(r)
    section = table(earlier + results, args.minutes, when, args.threads)
    print(section)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.no_write:
        write_section(ROOT / "docs" / "performance.md", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
