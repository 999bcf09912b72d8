"""Benchmark of the data path on the full-size synthetic set (6 subjects x 40 classes x 50 images).

Measures: synthesis time, prepare time (wall and CPU), peak RSS of each step (each runs in its own
process), cache size, and one epoch of DataModule loading (in RAM and memmap) against forward +
backward passes of a small model over the same epoch (measured on a number of batches and scaled to
the epoch). Prints a markdown table.

    python benchmarks/data.py [--workdir DIR] [--subjects 6 --classes 40 --images-per-class 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter(); r0 = resource.getrusage(resource.RUSAGE_SELF)
step, args = sys.argv[1], json.loads(sys.argv[2])
if step == "synth":
    from eegalign.data.synthetic import write_synthetic_dataset
    write_synthetic_dataset(args["out"], subjects=args["subjects"], classes=args["classes"],
                            images_per_class=args["images_per_class"], seed=0, progress=False)
else:
    from eegalign.data.cache import prepare_cache
    prepare_cache(args["src"], args["out"], progress=False)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
                  "peak_rss_gib": r1.ru_maxrss / 2**20}))
"""


def _child(step: str, **kw) -> dict:
    r = subprocess.run([sys.executable, "-c", _CHILD, step, json.dumps(kw)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"{step} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _du(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**30


def _loading(cache: Path, batch_size: int, fwd_batches: int, model_name: str) -> dict:
    import torch

    from eegalign.data.datamodule import EEGDataModule
    from eegalign.models import build_model

    out: dict = {}
    for mode in (True, False):
        dm = EEGDataModule(str(cache), batch_size=batch_size, in_memory=mode)
        t0 = time.perf_counter()
        dm.setup("fit")
        t_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        n = sum(len(b["index"]) for b in dm.train_dataloader())
        out["ram" if mode else "memmap"] = {"setup": t_setup, "epoch": time.perf_counter() - t0, "trials": n}
    torch.manual_seed(0)
    model = build_model(model_name, n_chans=dm.n_chans, n_times=dm.n_times, out_shape=dm.target_shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    it = iter(dm.train_dataloader())
    steps = 0
    t0 = time.perf_counter()
    for b in it:
        loss = torch.nn.functional.mse_loss(model(b["eeg"]), b["target"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if steps == fwd_batches:
            break
    per_batch = (time.perf_counter() - t0) / steps
    out["compute"] = {"model": model_name, "params": sum(p.numel() for p in model.parameters()),
                      "per_batch": per_batch, "epoch_est": per_batch * len(dm.train_dataloader()),
                      "batches": len(dm.train_dataloader())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="where to write the data set and cache (default: a temporary dir, removed)")
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--images-per-class", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--fwd-batches", type=int, default=20, help="batches of forward+backward timed")
    ap.add_argument("--model", default="braindecode_shallow")
    args = ap.parse_args()

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="eegalign-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ds, cache = work / "synth", work / "cache"
        for p in (ds, cache):
            shutil.rmtree(p, ignore_errors=True)
        synth = _child("synth", out=str(ds), subjects=args.subjects, classes=args.classes,
                       images_per_class=args.images_per_class)
        prep = _child("prepare", src=str(ds), out=str(cache))
        n = json.loads((cache / "manifest.json").read_text())["n_trials"]
        load = _loading(cache, args.batch_size, args.fwd_batches, args.model)
        c = load["compute"]
        rows = [
            ("trials", f"{n} ({args.subjects} subjects x {args.classes} classes x {args.images_per_class} images)"),
            ("synthesise (write_synthetic_dataset)", f"{synth['wall']:.1f} s wall, peak RSS {synth['peak_rss_gib']:.2f} GiB"),
            ("source parquet size", f"{_du(ds):.2f} GiB"),
            ("prepare (parquet -> cache)", f"{prep['wall']:.1f} s wall, {prep['cpu']:.1f} s CPU, peak RSS {prep['peak_rss_gib']:.2f} GiB"),
            ("cache size", f"{_du(cache):.2f} GiB"),
            ("DataModule setup, in RAM (train+val)", f"{load['ram']['setup']:.2f} s"),
            (f"one train epoch of loading, in RAM (batch {args.batch_size})", f"{load['ram']['epoch']:.2f} s ({load['ram']['trials']} trials)"),
            ("one train epoch of loading, memmap", f"{load['memmap']['epoch']:.2f} s"),
            (f"forward+backward, {c['model']} ({c['params'] / 1e6:.2f} M params)",
             f"{c['per_batch'] * 1000:.0f} ms/batch -> {c['epoch_est']:.0f} s per epoch ({c['batches']} batches, est. from {args.fwd_batches})"),
            ("loading / compute (in RAM)", f"{100 * load['ram']['epoch'] / c['epoch_est']:.1f} %"),
        ]
        print(f"| step | result ({os.cpu_count()} CPU cores) |\n|---|---|")
        for k, v in rows:
            print(f"| {k} | {v} |")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
