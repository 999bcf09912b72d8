"""``eegalign compare RUN_DIR... --out DIR``: several runs side by side.

Each RUN_DIR is an `eegalign evaluate` output directory (or its metrics.json) or an `eegalign generate`
output directory; the kind is recognised from the directory. Writes DIR/compare.md, DIR/compare.html and
DIR/compare.json (+ compare.csv / compare.png for evaluate runs; for generation runs, paired statistics on
their shared trials and, for an image-route and a text-route run, the five-column grid), atomically.
``--routes IMAGE_GEN_DIR TEXT_GEN_DIR`` names the seed's headline comparison explicitly.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN_DIR",
                        help="evaluate or generate output directories (or metrics.json files)")
    parser.add_argument("--routes", nargs=2, metavar=("IMAGE_GEN_DIR", "TEXT_GEN_DIR"),
                        help="an image-route and a text-route generate output of the same trials: paired statistics "
                             "and the original | image true | image EEG | text true | text EEG grid")
    parser.add_argument("--grid-trials", type=int, default=16, help="shared trials shown in the route grid (default 16)")
    parser.add_argument("--out", required=True, help="output directory for the comparison")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def _check_routes(routes: list[str]) -> tuple[str, str]:
    """``--routes``: two generate outputs, the first on the image route, the second on the text route."""
    from eegalign.errors import ConfigError
    from eegalign.generation.compare import is_generation_dir, load_generation_run

    for path, want in zip(routes, ("image", "text")):
        if not is_generation_dir(path):
            raise ConfigError(f"--routes {path}: not an `eegalign generate` output (no generation.json)")
        got = load_generation_run(path).route
        if got != want:
            raise ConfigError(f"--routes takes the {want}-route run {'first' if want == 'image' else 'second'}, "
                              f"but {path} is on the {got} route")
    return routes[0], routes[1]


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from eegalign.errors import ConfigError
    from eegalign.report import write_comparison

    routes = _check_routes(args.routes) if args.routes else None
    runs = list(args.runs)
    for p in routes or ():
        if all(Path(p).resolve() != Path(r).resolve() for r in runs):
            runs.append(p)
    if not runs:
        raise ConfigError("nothing to compare: give RUN_DIR arguments or --routes IMAGE_GEN_DIR TEXT_GEN_DIR")
    if args.grid_trials < 0:
        raise ConfigError(f"--grid-trials must be >= 0, got {args.grid_trials}")
    from eegalign.outputs import check_out

    check_out(args.out, "comparison", inputs=runs, overwrite=args.overwrite)
    out = write_comparison(runs, args.out, overwrite=args.overwrite, routes=routes, grid_trials=args.grid_trials)
    print(f"comparison of {len(runs)} runs: {out / 'compare.html'}")
    return 0
