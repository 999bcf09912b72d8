"""``eegalign audit``: confound probes and split hygiene for a prepared cache.

    eegalign audit --cache CACHE --out DIR [--window-ms LO HI] [--epoch-start-ms MS] [--permutations N]

Writes DIR/audit.json, DIR/audit.md and DIR/audit.html atomically.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", required=True, help="cache directory (from `eegalign data prepare`)")
    parser.add_argument("--out", required=True, help="output directory (must not exist unless --overwrite)")
    parser.add_argument(
        "--window-ms", nargs=2, metavar=("LO", "HI"), default=None,
        help="pre-response window in ms after stimulus onset; LO may be 'start' (the epoch start). Default: start 60",
    )
    parser.add_argument(
        "--epoch-start-ms", type=float, default=None,
        help="time of the epoch's first sample after onset (default: from the cache manifest, else CVPR40's 20 ms)",
    )
    parser.add_argument("--bin-ms", type=float, default=10.0, help="pre-response samples are averaged in bins this long")
    parser.add_argument("--permutations", type=int, default=500, help="label permutations per probe (default 500)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs (default 1000)")
    parser.add_argument("--alpha", type=float, default=0.01, help="family-wise level of the Holm-Bonferroni decision")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations and bootstrap (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def _window(values: list[str] | None) -> tuple[float | None, float]:
    from eegalign.audit.features import DEFAULT_WINDOW_END_MS
    from eegalign.errors import ConfigError

    if values is None:
        return (None, DEFAULT_WINDOW_END_MS)
    try:
        lo = None if values[0] == "start" else float(values[0])
        hi = float(values[1])
    except ValueError as e:
        raise ConfigError(f"--window-ms takes two numbers in ms (LO may be 'start'), got {' '.join(values)}") from e
    if lo is not None and hi <= lo:
        raise ConfigError(f"--window-ms: the end ({hi:g}) must be after the start ({lo:g})")
    return (lo, hi)


def run(args: argparse.Namespace) -> int:
    from eegalign.audit.run import AuditSettings, run_audit, write_audit
    from eegalign.outputs import check_out

    check_out(args.out, "audit", inputs=[args.cache], overwrite=args.overwrite)
    settings = AuditSettings(
        window_ms=_window(args.window_ms), epoch_start_ms=args.epoch_start_ms, bin_ms=args.bin_ms,
        n_permutations=args.permutations, n_bootstrap=args.bootstrap, alpha=args.alpha, seed=args.seed,
    )
    result = run_audit(args.cache, settings)
    out = write_audit(result, args.out, overwrite=args.overwrite)
    for probe in result.probes.values():
        if probe.value is None:
            print(f"{probe.name}: not run ({probe.skipped})")
            continue
        print(
            f"{probe.name}: accuracy {100 * probe.value:.1f}% (95% CI {100 * probe.ci95[0]:.1f}-{100 * probe.ci95[1]:.1f}%), "
            f"chance {100 * probe.chance:.1f}%, permutation p = {probe.p:.3g} "
            + (f"(Holm {probe.p_holm:.3g})" if probe.in_decision else "(descriptive, not in the decision)")
        )
    shared = result.split_hygiene.shared_images[0]
    print(f"split hygiene: {shared.images} image(s) shared by train and test ({shared.trials_in_second} test trials)")
    print(f"leakage detected: {'YES' if result.leakage_detected else 'no'}")
    print(f"report: {out / 'audit.html'}")
    return 0
