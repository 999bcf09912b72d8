"""``eegalign replay``: a cache's trials as live LSL EEG + marker streams (the lab's amplifier and stimulus PC, simulated).

    eegalign replay --cache CACHE [--split test] [--rate 1.0] [--stream-name NAME] [--gap-ms 100] [--local]

See :mod:`eegalign.realtime.replay` and docs/deployment.md.
"""

from __future__ import annotations

import argparse

DEFAULT_NAME = "eegalign-replay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from eegalign.realtime.lslconfig import add_local_option

    parser.add_argument("--cache", required=True, help="cache directory (from `eegalign data prepare`)")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"], help="split to replay (default test)")
    parser.add_argument("--rate", type=float, default=1.0, help="speed relative to real time (default 1.0)")
    parser.add_argument("--stream-name", default=DEFAULT_NAME,
                        help="LSL name of the EEG stream; the markers go to NAME-markers (default %(default)s)")
    parser.add_argument("--gap-ms", type=float, default=100.0, help="gap between trials in ms (default 100)")
    parser.add_argument("--chunk-ms", type=float, default=10.0, help="samples pushed per chunk, in ms (default 10)")
    parser.add_argument("--max-trials", type=int, help="replay only the first N trials (of the split, repeated)")
    parser.add_argument("--repeat", type=int, default=1, help="play the split this many times in a row (default 1)")
    parser.add_argument("--wait", type=float, default=30.0,
                        help="seconds to wait for a consumer of both streams before replaying anyway (default 30)")
    add_local_option(parser, without="LSL discovers and serves the whole network")


def run(args: argparse.Namespace) -> int:
    import sys

    from eegalign.errors import ConfigError
    from eegalign.realtime.options import check_positive

    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError("--max-trials must be >= 1")
    if args.repeat < 1:
        raise ConfigError("--repeat must be >= 1")
    check_positive({"--rate": args.rate, "--gap-ms": args.gap_ms, "--chunk-ms": args.chunk_ms})
    check_positive({"--wait": args.wait}, zero_ok=True)
    from eegalign.realtime.lslconfig import load_pylsl

    load_pylsl(args.local)
    from eegalign.realtime.replay import replay

    replay(args.cache, args.split, name=args.stream_name, rate=args.rate, gap_ms=args.gap_ms, max_trials=args.max_trials,
           repeat=args.repeat,
           chunk_ms=args.chunk_ms, wait_s=args.wait, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    return 0
