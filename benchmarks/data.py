"""Benchmark of the data path on the full-size synthetic set (6 subjects x 40 classes x 50 images).

Measures: synthesis time, prepare time (wall and CPU), peak RSS of each step (each runs in its own
process), cache size, and one epoch of DataModule loading (in RAM and memmap) against forward +
backward passes of a small model over the same epoch (measured on a number of batches and scaled to
the epoch). Prints a markdown table.

    python benchmarks/data.py [--workdir DIR] [--subjects 6 --classes 40 --images-per-class 50]

``--things`` instead generates a full-size THINGS-EEG2 subject in the release layout (16540 x 4 x
63 x 250 float32 training file = 4.2 GB, plus the 200 x 80 test file; random values), adds further
subjects as symbolic links to it (``--things-subjects``), and measures ``prepare`` (streamed, each
run in its own process) for 1 and for N subjects, then DataModule loading of one subject's epoch.
Needs about 5.3 GB (release) + 5.2 GB per subject (cache) of free disk; everything is deleted after.

    python benchmarks/data.py --things [--things-subjects 2] [--fraction 1.0] [--workdir DIR]
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
elif step == "things":
    from data import write_release  # this file, on the child's path
    write_release(args["out"], args["fraction"])
else:
    from eegalign.data.cache import prepare_cache
    prepare_cache(args["src"], args["out"], progress=False, subjects=args.get("subjects"))
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
                  "peak_rss_gib": r1.ru_maxrss / 2**20}))
"""


def _child(step: str, **kw) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), *sys.path])}
    r = subprocess.run([sys.executable, "-c", _CHILD, step, json.dumps(kw)], capture_output=True, text=True, env=env)
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
        del dm
    if not fwd_batches:
        return out
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


def write_release(out: str, fraction: float = 1.0) -> None:
    """A THINGS-EEG2 release with one full-size subject of random EEG (``fraction`` of the images)."""
    import numpy as np

    root = Path(out)
    n_train, n_test = max(20, int(16540 * fraction)), max(10, int(200 * fraction))
    concepts = [f"{i + 1:05d}_concept{i}" for i in range(1654)]
    meta = {"train_img_concepts": [concepts[i // 10 % 1654] for i in range(n_train)],
            "train_img_files": [f"concept{i // 10 % 1654}_{i % 10 + 1:02d}b.jpg" for i in range(n_train)],
            "test_img_concepts": [f"{i + 1:05d}_test{i}" for i in range(n_test)],
            "test_img_files": [f"test{i}_01s.jpg" for i in range(n_test)]}
    (root / "sub-01").mkdir(parents=True)
    np.save(root / "image_metadata.npy", meta, allow_pickle=True)
    from eegalign.data.sources import image_id_from_name
    from eegalign.data.things import image_key
    from eegalign.io import save_tensors

    ids = [image_id_from_name(image_key(part, c, f)) for part in ("train", "test")
           for c, f in zip(meta[f"{part}_img_concepts"], meta[f"{part}_img_files"])]
    emb = np.random.default_rng(1).standard_normal((len(ids), 1024), dtype=np.float32)
    save_tensors(root / "targets" / "image.safetensors", {"embeddings": emb}, {"image_ids": ids, "route": "image", "model": "random"})
    rng = np.random.default_rng(0)
    names, times = [f"E{i}" for i in range(63)], np.arange(250) / 250 - 0.2
    for name, n, reps in (("training", n_train, 4), ("test", n_test, 80)):
        raw = root / f".{name}.raw"
        data = np.lib.format.open_memmap(raw, mode="w+", dtype=np.float32, shape=(n, reps, 63, 250))
        for lo in range(0, n, 512):
            data[lo : lo + 512] = rng.standard_normal((min(512, n - lo), reps, 63, 250), dtype=np.float32)
        np.save(root / "sub-01" / f"preprocessed_eeg_{name}.npy",
                {"preprocessed_eeg_data": data.view(np.ndarray), "ch_names": names, "times": times},
                allow_pickle=True)  # a plain ndarray: a memmap would pickle as numpy.memmap (refused)
        del data
        raw.unlink()


def things(args: argparse.Namespace, work: Path) -> None:
    """The THINGS-EEG2 memory benchmark (see the module docstring)."""
    src = work / "things"
    t = time.perf_counter()
    gen = _child("things", out=str(src), fraction=args.fraction)
    gen_wall, gen_size = time.perf_counter() - t, _du(src)
    for s in range(2, args.things_subjects + 1):  # more subjects: links to subject 1's files
        (src / f"sub-{s:02d}").mkdir()
        for f in (src / "sub-01").iterdir():
            (src / f"sub-{s:02d}" / f.name).symlink_to(f)
    one = _child("prepare", src=str(src), out=str(work / "c1"), subjects=[1])
    size1 = _du(work / "c1")
    many = _child("prepare", src=str(src), out=str(work / "cN"), subjects=list(range(1, args.things_subjects + 1)))
    sizeN = _du(work / "cN")
    shutil.rmtree(work / "cN")
    load = _loading(work / "c1", args.batch_size, 0, None)
    n = json.loads((work / "c1" / "manifest.json").read_text())["n_trials"]
    rows = [
        ("release generated (1 subject)", f"{gen_size:.2f} GiB in {gen_wall:.0f} s (fraction {args.fraction})"),
        ("prepare, 1 subject", f"{one['wall']:.1f} s wall, {one['cpu']:.1f} s CPU, peak RSS {one['peak_rss_gib']:.2f} GiB, cache {size1:.2f} GiB ({n} trials)"),
        (f"prepare, {args.things_subjects} subjects", f"{many['wall']:.1f} s wall, {many['cpu']:.1f} s CPU, peak RSS {many['peak_rss_gib']:.2f} GiB, cache {sizeN:.2f} GiB"),
        ("DataModule setup, in RAM (train+val)", f"{load['ram']['setup']:.2f} s"),
        (f"one train epoch of loading, in RAM (batch {args.batch_size})", f"{load['ram']['epoch']:.2f} s ({load['ram']['trials']} trials)"),
        ("DataModule setup, memmap", f"{load['memmap']['setup']:.2f} s"),
        ("one train epoch of loading, memmap", f"{load['memmap']['epoch']:.2f} s"),
    ]
    print(f"| step | result ({os.cpu_count()} CPU cores) |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", help="where to write the data set and cache (default: a temporary dir, removed)")
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--images-per-class", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--fwd-batches", type=int, default=20, help="batches of forward+backward timed")
    ap.add_argument("--model", default="braindecode_shallow")
    ap.add_argument("--things", action="store_true", help="the THINGS-EEG2 memory benchmark instead")
    ap.add_argument("--things-subjects", type=int, default=2, help="subjects for the second prepare (links)")
    ap.add_argument("--fraction", type=float, default=1.0, help="THINGS: fraction of the images generated")
    args = ap.parse_args()

    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="eegalign-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.things:
            return things(args, work)
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
