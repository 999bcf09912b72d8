"""Train-step speed of eegalign's reference networks against a straightforward implementation, idle and contended.

Per reference network, three implementations holding the same weights, in one process:

- ``seed``: the network written the straightforward way the seed writes it (tests/seed_reference.py:
  ``nn.MultiheadAttention`` with ``need_weights=True``, ``nn.TransformerEncoder``, a Python loop
  over the 77 text heads), its weights converted to eegalign's with ``from_seed_state_dict``;
- ``plain``: eegalign's encoder as built (the default, also what runs on GPUs);
- ``kernels``: the same encoder after ``eegalign.models.use_cpu_kernels``.

A train step is forward + backward + ``torch.optim.AdamW`` (default implementation for all three),
fp32, MSE to random targets. Rounds alternate the implementations and two conditions: idle (as
idle as the machine is) and with one competing busy process that this script starts and stops
(a Python busy loop). The speed-up of each round is seed time / our time; the table reports the
median and the range over rounds, and the range of the 1-minute load average before the rounds
(what else was running on the machine).

Also per network, of the plain path (device-independent, GPU-relevant): forward GFLOP per sample
(``torch.utils.flop_counter``), forward+backward GFLOP per sample, and activation memory per
sample (bytes of the tensors autograd saves for backward, counted once per storage).

    python benchmarks/models.py                         # all three networks, 3 rounds (~30 min on 2 cores)
    python benchmarks/models.py --models nervformer --rounds 3 --steps 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from seed_reference import EEGEncoder, EEGNetTransformerToText, NervFormerV2  # noqa: E402

from eegalign.models import from_seed_state_dict, use_cpu_kernels  # noqa: E402

SEED_CLASSES = {"nervformer": NervFormerV2, "eegnet_transformer": EEGNetTransformerToText, "eegformer": EEGEncoder}
#: default batch per network (EEGformer: 23 GFLOP per sample forward)
BATCH = {"nervformer": 16, "eegnet_transformer": 16, "eegformer": 4}


def build(name: str) -> dict[str, torch.nn.Module]:
    """The three implementations of ``name`` with the same weights."""
    import copy

    torch.manual_seed(0)
    seed = SEED_CLASSES[name]()
    plain = from_seed_state_dict(name, seed.state_dict())
    kernels = use_cpu_kernels(copy.deepcopy(plain))
    x = torch.randn(2, plain.n_chans, plain.n_times)
    with torch.no_grad():  # the same function first
        ref = seed.eval()(x)
        for impl in (plain, kernels):
            assert float((impl.eval()(x) - ref).abs().max() / ref.abs().max()) <= 1e-4
    return {"seed": seed, "plain": plain, "kernels": kernels}


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Best time of ``steps`` train steps (after one warm-up step), forward + backward + AdamW."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    return min(times)


def plain_costs(model: torch.nn.Module, n_chans: int, n_times: int) -> dict[str, float]:
    """Forward and forward+backward GFLOP per sample and activation MiB per sample of the plain path."""
    from torch.utils.flop_counter import FlopCounterMode

    b = 2
    x = torch.randn(b, n_chans, n_times)
    model.train()
    with FlopCounterMode(display=False) as fc:
        out = model(x)
    fwd = fc.get_total_flops() / b / 1e9
    with FlopCounterMode(display=False) as fc:
        out.square().mean().backward()
    bwd = fc.get_total_flops() / b / 1e9
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter) and t.device.type == "cpu":
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    act = sum(n for ptr, n in seen.items() if ptr not in params) / b / 2**20
    model.zero_grad(set_to_none=True)
    del out
    return {"fwd_gflop": fwd, "fwd_bwd_gflop": fwd + bwd, "activation_mib": act}


def busy_process() -> subprocess.Popen:
    """One competing process keeping a core busy (stopped by the caller; it also ends after 2 hours)."""
    code = "import time\nend = time.time() + 7200\nwhile time.time() < end: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def run(name: str, rounds: int, steps: int, batch: int) -> dict:
    impls = build(name)
    ours = impls["plain"]
    x = torch.randn(batch, ours.n_chans, ours.n_times)
    y = torch.randn(batch, *ours.out_shape)
    result = {"model": name, "batch": batch, "threads": torch.get_num_threads(), "rounds": []}
    result.update(plain_costs(ours, ours.n_chans, ours.n_times))
    for r in range(rounds):
        for cond in ("idle", "busy"):
            load = os.getloadavg()[0]  # 1-minute load average before the round (other users of the machine)
            hog = busy_process() if cond == "busy" else None
            try:
                order = ["seed", "plain", "kernels"] if r % 2 == 0 else ["kernels", "plain", "seed"]
                times = {impl: step_seconds(impls[impl], x, y, steps) for impl in order}
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
            result["rounds"].append({"round": r, "condition": cond, "seconds": times, "load": load})
            print(json.dumps({"model": name, "round": r, "condition": cond, "load": round(load, 2),
                              **{k: round(v, 3) for k, v in times.items()}}), flush=True)
    return result


def summarise(res: dict) -> list[str]:
    rows = []
    for cond in ("idle", "busy"):
        rs = [r["seconds"] for r in res["rounds"] if r["condition"] == cond]
        cells = []
        for impl in ("plain", "kernels"):
            sp = [r["seed"] / r[impl] for r in rs]
            cells.append(f"x{statistics.median(sp):.2f} ({min(sp):.2f}-{max(sp):.2f})")
        seed_s = statistics.median(r["seed"] for r in rs)
        loads = [r["load"] for r in res["rounds"] if r["condition"] == cond]
        load = f"{min(loads):.1f}-{max(loads):.1f}"
        rows.append(f"| {res['model']} | {res['batch']} | {cond} | {load} | {seed_s:.2f} s | {cells[0]} | {cells[1]} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["nervformer", "eegnet_transformer", "eegformer"], choices=list(SEED_CLASSES))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2, help="timed steps per implementation and round (best kept)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: 16; EEGformer 4)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    results = [run(m, args.rounds, args.steps, args.batch or BATCH[m]) for m in args.models]
    print("\n| network | batch | condition | load before rounds | seed step (median) | plain (default) speed-up "
          "| use_cpu_kernels speed-up |")
    print("|---|---|---|---|---|---|---|")
    for res in results:
        print("\n".join(summarise(res)))
    print("\n| network | fwd GFLOP/sample | fwd+bwd GFLOP/sample | activation MiB/sample (saved for backward) |")
    print("|---|---|---|---|")
    for res in results:
        print(f"| {res['model']} | {res['fwd_gflop']:.2f} | {res['fwd_bwd_gflop']:.2f} | {res['activation_mib']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
