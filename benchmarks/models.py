"""Benchmark eegalign's encoders against straightforward implementations of the same networks.

For each reference network (and the small presets) prints: parameters, forward GFLOP/sample
(torch.utils.flop_counter), inference and training-step (forward + backward + AdamW) samples/s,
peak RSS of the training process, batch-1 latency, and the speed-up over the naive twin
(benchmarks/naive_reference.py) holding the same weights, after checking both compute the
same function. Also measures this machine's dense fp32 matmul rate in the same run, to
express the achieved FLOP/s as a fraction of it.

Each (model, implementation) runs in its own subprocess so peak memory is its own.

Two comparisons per reference network, from the same alternating rounds (each implementation
in its own process, the processes alternated over ``--rounds``, the best round kept):

1. the encoders alone: ours vs naive, same weights, the reference's optimiser (default
   ``AdamW``) for both, default memory allocation (the strict, same-function comparison);
2. the training step as ``eegalign fit`` runs it (our encoder with fused AdamW, eegalign's
   default) against the naive step as the reference runs it (default AdamW).

``--thp`` runs everything once more with ``THP_MEM_ALLOC_ENABLE=1`` (PyTorch backs tensors of
2 MiB and more with transparent huge pages) for both, to measure that setting.

    python benchmarks/models.py --batch 32      # reference networks + small presets, ~25 min on 2 cores
    python benchmarks/models.py --batch 8 --steps 2 --models eegnet_transformer --no-small
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def matmul_gflops(n: int = 2048, reps: int = 10) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def fwd_gflop(model, n_chans: int, n_times: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, n_chans, n_times)
    model.train()  # the eval fast path of nn.TransformerEncoder runs fused kernels the counter misses
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x)
    model.eval()
    return fc.get_total_flops() / 2 / 1e9


def _build(name: str, preset: str, impl: str):
    import torch

    sys.path.insert(0, str(HERE))
    from naive_reference import naive_from

    from eegalign.models import build_model

    torch.manual_seed(0)
    ours = build_model(name, preset=preset)
    return (naive_from(ours) if impl == "naive" else ours), ours.out_shape


def _autocast(impl: str):
    import contextlib

    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16) if impl.endswith("bf16") else contextlib.nullcontext()


def _adamw(model, impl: str):
    """The reference's optimiser (default AdamW) for every implementation but ``ours-fused`` (eegalign's default)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-4, fused=True if impl == "ours-fused" else None)


def _train_step(model, opt, x, y, impl: str = "ours") -> None:
    import torch

    opt.zero_grad(set_to_none=True)
    with _autocast(impl):
        loss = torch.nn.functional.mse_loss(model(x).float(), y)
    loss.backward()
    opt.step()


def run_one(name: str, preset: str, impl: str, batch: int, steps: int, threads: int) -> dict:
    """Parameters, FLOPs, batch-1 latency and peak RSS of one (model, implementation), in this process."""
    import torch

    from eegalign.models import count_parameters

    torch.set_num_threads(threads)
    model, out_shape = _build(name, preset, impl)
    res = {"model": name, "preset": preset, "impl": impl, "params": count_parameters(model)}
    res["gflop"] = fwd_gflop(model, 128, 440)
    x, y = torch.randn(batch, 128, 440), torch.randn(batch, *out_shape)
    model.eval()
    with torch.no_grad():
        x1 = x[:1]
        model(x1)
        lat = []
        for _ in range(3):
            t0 = time.perf_counter()
            model(x1)
            lat.append(time.perf_counter() - t0)
        res["latency_ms"] = 1000 * min(lat)
    model.train()
    _train_step(model, _adamw(model, impl), x, y)  # one training step at the benchmark batch size: the peak
    res["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return res


def run_pair(name: str, preset: str, impls: list[str], batch: int, steps: int, threads: int) -> dict:
    """Inference and training-step samples/s of the given implementations, timed in alternation in this process.

    The best of ``steps`` timed repetitions after one warm-up is kept for each. The main
    script calls it with one implementation per process (so no implementation runs on a heap
    shaped by another's allocations) and alternates the processes over ``--rounds``.
    """
    import torch

    torch.set_num_threads(threads)
    models = {impl: _build(name, preset, impl) for impl in impls}
    out_shape = next(iter(models.values()))[1]
    x, y = torch.randn(batch, 128, 440), torch.randn(batch, *out_shape)
    res: dict[str, dict] = {impl: {} for impl in impls}
    with torch.no_grad():
        for impl, (m, _) in models.items():
            m.eval()
            with _autocast(impl):
                m(x)
        times = {impl: [] for impl in impls}
        cpu = {impl: [] for impl in impls}
        for _ in range(steps):
            for impl, (m, _) in models.items():
                t0, c0 = time.perf_counter(), time.process_time()
                with _autocast(impl):
                    m(x)
                times[impl].append(time.perf_counter() - t0)
                cpu[impl].append(time.process_time() - c0)
    for impl in impls:
        res[impl]["infer_sps"] = batch / min(times[impl])
        res[impl]["infer_cpu_s_per_sample"] = min(cpu[impl]) / batch
    opts = {}
    for impl, (m, _) in models.items():
        m.train()
        opts[impl] = _adamw(m, impl)
        _train_step(m, opts[impl], x, y, impl)  # warm-up
    times = {impl: [] for impl in impls}
    cpu = {impl: [] for impl in impls}
    for _ in range(steps):
        for impl, (m, _) in models.items():
            t0, c0 = time.perf_counter(), time.process_time()
            _train_step(m, opts[impl], x, y, impl)
            times[impl].append(time.perf_counter() - t0)
            cpu[impl].append(time.process_time() - c0)
    for impl in impls:
        res[impl]["train_sps"] = batch / min(times[impl])
        res[impl]["train_cpu_s_per_sample"] = min(cpu[impl]) / batch
    return res


def check_equivalence(name: str) -> float:
    """Max |ours - naive| / max |naive| in eval mode, same weights, batch 2."""
    import torch

    sys.path.insert(0, str(HERE))
    from naive_reference import naive_from

    from eegalign.models import build_model

    torch.manual_seed(0)
    ours = build_model(name).eval()
    naive = naive_from(ours).eval()
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        a, b = ours(x), naive(x)
    return float((a - b).abs().max() / b.abs().max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["eegformer", "nervformer", "eegnet_transformer"])
    p.add_argument("--batch", type=int, default=32, help="batch size for the reference networks (the reference trains at 32)")
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step (the best is kept)")
    p.add_argument("--rounds", type=int, default=2, help="processes per implementation for comparison (1), run in alternation")
    p.add_argument("--small-batch", type=int, default=32)
    p.add_argument("--small-steps", type=int, default=5)
    p.add_argument("--no-small", action="store_true", help="skip the small presets")
    p.add_argument("--thp", action="store_true", help="also time every implementation with THP_MEM_ALLOC_ENABLE=1")
    p.add_argument("--bf16", action="store_true", help="only: time eegalign fp32 vs bf16 autocast (a flag, not the same function)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--one", nargs=4, metavar=("NAME", "PRESET", "IMPL", "BATCH"), help=argparse.SUPPRESS)
    p.add_argument("--pair", nargs=4, metavar=("NAME", "PRESET", "IMPLS", "BATCH"), help=argparse.SUPPRESS)
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    args = p.parse_args()

    if args.one:
        name, preset, impl, batch = args.one
        print(json.dumps(run_one(name, preset, impl, int(batch), args.steps, args.threads)))
        return
    if args.pair:
        name, preset, impls, batch = args.pair
        print(json.dumps(run_pair(name, preset, impls.split(","), int(batch), args.steps, args.threads)))
        return

    import torch

    torch.set_num_threads(args.threads)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor())
    peak = matmul_gflops()
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    print(f"# machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, {platform.python_version()}")
    print(f"# dense fp32 matmul (2048^3): {peak:.1f} GFLOP/s")
    print(f"# load average at start: {os.getloadavg()[0]:.1f} (other processes share these cores: see the CPU-time columns)")
    print(f"# transparent huge pages: {thp.read_text().strip() if thp.exists() else 'unavailable'}")

    base_env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}

    def sub(mode, name, preset, impl, batch, steps, huge_pages=False):
        cmd = [sys.executable, __file__, mode, name, preset, impl, str(batch), "--steps", str(steps), "--threads", str(args.threads)]
        env = {**base_env, **({"THP_MEM_ALLOC_ENABLE": "1"} if huge_pages else {})}
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        return json.loads(out.strip().splitlines()[-1])

    def timed(name, preset, impls, batch, steps, rounds, huge_pages=False):
        """Each implementation in its own process, alternating over ``rounds``; the best round of each is kept."""
        best: dict[str, dict] = {}
        for _ in range(rounds):
            for impl in impls:
                r = sub("--pair", name, preset, impl, batch, steps, huge_pages)[impl]
                b = best.setdefault(impl, r)
                for key in r:
                    b[key] = max(b[key], r[key]) if key.endswith("_sps") else min(b[key], r[key])
        return best

    if args.bf16:
        for name in args.models:
            r = sub("--pair", name, "reference", "ours,ours-bf16", args.batch, args.steps)
            a, b = r["ours"], r["ours-bf16"]
            print(
                f"| {name} | batch {args.batch} | fp32 train {a['train_sps']:.2f} / infer {a['infer_sps']:.1f} samples/s "
                f"| bf16 autocast train {b['train_sps']:.2f} / infer {b['infer_sps']:.1f} samples/s "
                f"| x{b['train_sps'] / a['train_sps']:.2f} / x{b['infer_sps'] / a['infer_sps']:.2f} |",
                flush=True,
            )
        return
    rows, env_rows = [], []
    for name in args.models:
        rel = check_equivalence(name)
        print(f"# {name}: max |ours - naive| / max |naive| = {rel:.1e} (eval, same weights)", flush=True)
        naive = sub("--one", name, "reference", "naive", args.batch, args.steps)
        ours = sub("--one", name, "reference", "ours", args.batch, args.steps)
        speed = timed(name, "reference", ["naive", "ours", "ours-fused"], args.batch, args.steps, args.rounds)
        naive.update(speed["naive"])
        ours.update(speed["ours"])
        ours["equiv_rel_err"] = rel
        for r in (naive, ours):
            r["batch"] = args.batch
        ours["speedup_train"] = ours["train_sps"] / naive["train_sps"]
        ours["speedup_infer"] = ours["infer_sps"] / naive["infer_sps"]
        ours["speedup_train_cpu"] = naive["train_cpu_s_per_sample"] / ours["train_cpu_s_per_sample"]
        ours["speedup_infer_cpu"] = naive["infer_cpu_s_per_sample"] / ours["infer_cpu_s_per_sample"]
        rows += [naive, ours]
        fused = speed["ours-fused"]["train_sps"] / naive["train_sps"]
        print(
            f"# {name}: (1) training x{ours['speedup_train']:.2f} wall / x{ours['speedup_train_cpu']:.2f} CPU time, "
            f"inference x{ours['speedup_infer']:.2f} wall / x{ours['speedup_infer_cpu']:.2f} CPU time; "
            f"(2) eegalign's step (fused AdamW) x{fused:.2f}",
            flush=True,
        )
        env_row = {"model": name, "batch": args.batch, "default": speed}
        if args.thp:
            env_row["huge_pages"] = timed(name, "reference", ["naive", "ours", "ours-fused"], args.batch, args.steps, 1, huge_pages=True)
        env_rows.append(env_row)
    if not args.no_small:
        for name in args.models:
            r = sub("--one", name, "small", "ours", args.small_batch, args.small_steps)
            r.update(sub("--pair", name, "small", "ours", args.small_batch, args.small_steps)["ours"])
            r["batch"] = args.small_batch
            rows.append(r)

    # achieved FLOP/s: the function's forward FLOPs (the naive count, i.e. without our algebraic
    # savings) x samples/s; training counted as 3x forward.
    fn_gflop = {(r["model"], r["preset"]): r["gflop"] for r in rows if r["impl"] == "naive"}
    print(f"\n(1) encoders alone: same weights, same default AdamW, default allocation; one process per "
          f"implementation, {args.rounds} alternating rounds, best kept\n")
    hdr = (
        "| model | preset | impl | params | fwd GFLOP/sample | batch | infer samples/s | train samples/s "
        "| train speed-up (wall / CPU time) | infer speed-up (wall / CPU time) | train CPU-s/sample | peak RSS (GiB) "
        "| batch-1 latency (ms) | effective train GFLOP/s (% of matmul) |"
    )
    print(hdr)
    print("|---" * (hdr.count("|") - 1) + "|")
    for r in rows:
        g = fn_gflop.get((r["model"], r["preset"]), r["gflop"])
        eff = 3 * g * r["train_sps"]
        sp = f"x{r['speedup_train']:.2f} / x{r['speedup_train_cpu']:.2f}" if "speedup_train" in r else ""
        si = f"x{r['speedup_infer']:.2f} / x{r['speedup_infer_cpu']:.2f}" if "speedup_infer" in r else ""
        print(
            f"| {r['model']} | {r['preset']} | {r['impl']} | {r['params']:,} | {r['gflop']:.2f} | {r['batch']} "
            f"| {r['infer_sps']:.1f} | {r['train_sps']:.2f} | {sp} | {si} | {r['train_cpu_s_per_sample']:.3f} "
            f"| {r['peak_rss_gib']:.2f} | {r['latency_ms']:.0f} "
            f"| {eff:.1f} ({100 * eff / peak:.0f}%) |"
        )
    if env_rows:
        print("\n(2) eegalign's training step (ours, fused AdamW) vs the reference's (naive, default AdamW), same rounds as (1)"
              + ("; with --thp: every implementation also with THP_MEM_ALLOC_ENABLE=1, one round" if args.thp else "") + "\n")
        hdr = "| model | batch | naive train samples/s | ours | ours + fused AdamW | (2) eegalign step vs reference step |"
        if args.thp:
            hdr += " naive / ours / ours + fused, huge pages |"
        print(hdr)
        print("|---" * (hdr.count("|") - 1) + "|")
        for e in env_rows:
            d = e["default"]
            line = (
                f"| {e['model']} | {e['batch']} | {d['naive']['train_sps']:.2f} | {d['ours']['train_sps']:.2f} "
                f"| {d['ours-fused']['train_sps']:.2f} | x{d['ours-fused']['train_sps'] / d['naive']['train_sps']:.2f} |"
            )
            if "huge_pages" in e:
                h = e["huge_pages"]
                line += f" {h['naive']['train_sps']:.2f} / {h['ours']['train_sps']:.2f} / {h['ours-fused']['train_sps']:.2f} |"
            print(line)
    if args.json:
        args.json.write_text(json.dumps({"matmul_gflops": peak, "cpu": cpu, "rows": rows, "environments": env_rows}, indent=2))


if __name__ == "__main__":
    main()
