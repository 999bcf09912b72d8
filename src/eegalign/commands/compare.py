"""``eegalign compare RUN_DIR... --out DIR``: several runs' metrics side by side.

Each RUN_DIR is an `eegalign evaluate` output directory (or its metrics.json). Writes
DIR/compare.md, DIR/compare.html, DIR/compare.csv and DIR/compare.png, atomically.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="evaluate output directories (or metrics.json files)")
    parser.add_argument("--out", required=True, help="output directory for the comparison")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from eegalign.errors import ConfigError
    from eegalign.report import write_comparison

    if Path(args.out).exists() and not args.overwrite:
        raise ConfigError(f"output directory {args.out} already exists (pass --overwrite to replace it)")
    out = write_comparison(args.runs, args.out, overwrite=args.overwrite)
    print(f"comparison of {len(args.runs)} runs: {out / 'compare.html'}")
    return 0
