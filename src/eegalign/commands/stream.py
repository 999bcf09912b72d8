"""``eegalign stream``: decode live LSL EEG at each marker with a model directory; one JSON line per trial.

    eegalign stream --model DIR --eeg-stream NAME [--marker-stream NAME] [--gallery prototypes|FILE]
                    --out FILE.jsonl [--max-trials N] [--local] [--timeout S]

See :mod:`eegalign.realtime.stream` and docs/deployment.md.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from eegalign.realtime.lslconfig import add_local_option

    parser.add_argument("--model", required=True, metavar="DIR", help="model directory written by `eegalign export`")
    parser.add_argument("--eeg-stream", required=True, metavar="NAME", help="LSL name of the EEG stream")
    parser.add_argument("--marker-stream", metavar="NAME", help="LSL name of the marker stream (default: EEG name + '-markers')")
    parser.add_argument("--result-stream", metavar="NAME",
                        help="LSL name of the result outlet (default: EEG name + '-decoded')")
    parser.add_argument("--no-result-stream", action="store_true", help="do not publish results over LSL")
    parser.add_argument("--gallery", default="prototypes",
                        help="what predictions are ranked against: `prototypes` (class prototypes of the training "
                             "cache's train split; warned about on a zero-shot cache such as THINGS-EEG2, whose test "
                             "classes have no prototype) or an image-target safetensors file (default prototypes)")
    parser.add_argument("--cache", help="with --gallery prototypes: the training cache, if it moved")
    parser.add_argument("--out", required=True, metavar="FILE.jsonl", help="results, one JSON line per trial")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument("--max-trials", type=int, help="stop after N trials")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the streams at start (resolution, description, first clock "
                             "offset and opening together, at most about 0.5 s more), and the longest time without a "
                             "new EEG sample, across reconnections, before giving up (default 10)")
    parser.add_argument("--stall", type=float, default=2.0, help="no EEG sample for this many seconds is a loss (default 2)")
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto",
                        help="auto: ONNX Runtime when DIR has model.onnx, else torch")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of the backend (default 1)")
    parser.add_argument("--with-embedding", action="store_true", help="also write each trial's predicted embedding")
    add_local_option(parser, without="LSL discovers streams on the whole network")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from eegalign.errors import ConfigError
    from eegalign.realtime.options import check_positive
    from eegalign.realtime.results import check_log_path

    if args.max_trials is not None and args.max_trials < 1:
        raise ConfigError("--max-trials must be >= 1")
    check_positive({"--timeout": args.timeout, "--stall": args.stall})
    if not Path(args.model).is_dir():
        raise ConfigError(f"--model {args.model} is not a directory (a model directory written by `eegalign export`)")
    gallery_file = None if args.gallery == "prototypes" else args.gallery
    check_log_path(args.out, [args.model, gallery_file, args.cache, _recorded_cache(args.model)], args.overwrite)
    from eegalign.realtime.lslconfig import load_pylsl

    load_pylsl(args.local)
    from eegalign.realtime.stream import Options, run_stream

    opts = Options(eeg_name=args.eeg_stream, marker_name=args.marker_stream or f"{args.eeg_stream}-markers",
                   result_name=args.result_stream or f"{args.eeg_stream}-decoded", timeout=args.timeout,
                   stall=args.stall, max_trials=args.max_trials, with_embedding=args.with_embedding)
    run_stream(args.model, args.out, opts, gallery=args.gallery, cache=args.cache, backend=args.backend,
               threads=args.threads, overwrite=args.overwrite, result_outlet=not args.no_result_stream,
               say=lambda msg: print(msg, file=sys.stderr, flush=True))
    return 0


def _recorded_cache(model_dir: str) -> str | None:
    """The training cache preprocess.json names (read for the prototypes), if readable."""
    import json
    from pathlib import Path

    try:
        return (json.loads((Path(model_dir) / "preprocess.json").read_text()).get("source_cache") or {}).get("path")
    except (OSError, ValueError, AttributeError):
        return None
