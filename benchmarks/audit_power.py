"""Detection power and false-alarm rate of `eegalign audit` on synthetic block-design data.

For each drift strength A (noise-SD units) and seed: `data synth --blocked --drift A` ->
`data prepare` -> `audit`, all in-process through the public functions. Prints a Markdown table:
the fraction of seeds with leakage_detected (with a Wilson 95% interval), and per probe the
fraction with raw permutation p <= 0.05 (under A = 0 both should sit near their nominal 1% / 5%).

    python benchmarks/audit_power.py --seeds 20 --drifts 0 0.1 0.2 0.3 0.5

Time: about 4-6 s per (A, seed) on 2 busy CPU cores with the defaults below.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score 95% interval of a binomial proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def one_run(root: Path, drift: float, seed: int, size: dict, n_perm: int) -> dict:
    """synth -> prepare -> audit for one (drift, seed); returns the decision and raw p-values."""
    from eegalign.audit.run import AuditSettings, run_audit
    from eegalign.data.cache import prepare_cache
    from eegalign.data.synthetic import write_synthetic_dataset

    synth, cache = root / f"s{drift}_{seed}", root / f"c{drift}_{seed}"
    write_synthetic_dataset(synth, seed=seed, drift=drift, blocked=True, progress=False, **size)
    prepare_cache(synth, cache, progress=False)
    result = run_audit(cache, AuditSettings(n_permutations=n_perm, n_bootstrap=200, seed=seed))
    return {"detected": result.leakage_detected, **{k: p.p for k, p in result.probes.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--drifts", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5])
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--images-per-class", type=int, default=10)
    ap.add_argument("--permutations", type=int, default=200)
    args = ap.parse_args()
    size = dict(subjects=args.subjects, classes=args.classes, images_per_class=args.images_per_class)
    rows = []
    t0 = time.time()
    for drift in args.drifts:
        runs = []
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(one_run(Path(tmp), drift, seed, size, args.permutations))
        rows.append((drift, runs))
    probes = [k for k in rows[0][1][0] if k != "detected"]
    print(f"{args.seeds} seeds per drift, {size}, {args.permutations} permutations, {time.time() - t0:.0f} s\n")
    print("| drift A | leakage_detected [95% CI] | " + " | ".join(f"{p}: p <= 0.05" for p in probes) + " |")
    print("|---|---|" + "---|" * len(probes))
    for drift, runs in rows:
        k = sum(r["detected"] for r in runs)
        lo, hi = wilson(k, len(runs))
        cells = [f"{sum(r[p] <= 0.05 for r in runs)}/{len(runs)}" for p in probes]
        print(f"| {drift:g} | {k}/{len(runs)} = {k / len(runs):.2f} [{lo:.2f}, {hi:.2f}] | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
