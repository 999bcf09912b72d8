"""``eegalign convert-seed``: a checkpoint of the seed project -> an eegalign model directory.

    eegalign convert-seed --ckpt FILE --model NAME --out DIR [--cache CACHE]

The file is read with ``torch.load(..., weights_only=True)`` (nothing is unpickled as code),
converted with :func:`eegalign.models.from_seed_state_dict` and written with
:func:`eegalign.pretrained.save_pretrained`. ``--cache`` supplies preprocess.json (the cache's
train-split statistics); without it preprocess.json says the preprocessing is unknown.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="the seed's checkpoint (.ckpt / .pth with a state_dict)")
    parser.add_argument("--model", required=True, help="nervformer, eegnet_transformer or eegformer (or the seed's class names)")
    parser.add_argument("--out", required=True, help="model directory to write (must not exist unless --overwrite)")
    parser.add_argument("--cache", help="the cache whose preprocessing the model expects (goes into preprocess.json)")
    parser.add_argument("--n-heads", type=int, help="attention heads, if the seed run changed them (default: the seed's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")


def unknown_preprocess() -> dict:
    """preprocess.json when no cache is given: nothing applied, and said so."""
    return {"sfreq": 1000.0, "bandpass": None, "normalisation": {"norm": "none"},
            "epoch": {"start_samples": 20, "n_times": 440, "start_ms": 20.0, "start_source": "assumed: the CVPR40 crop"},
            "note": "unknown: converted without --cache (the seed z-scored each split with its own global statistics); "
                    "rerun convert-seed with --cache CACHE to record the statistics the model expects"}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from eegalign.checkpoints import read_checkpoint
    from eegalign.errors import WeightsError
    from eegalign.models import from_seed_state_dict
    from eegalign.outputs import check_out
    from eegalign.pretrained import channel_names_of, preprocess_from_cache, save_pretrained

    check_out(args.out, "model", inputs=[args.ckpt, args.cache], overwrite=args.overwrite)
    try:
        ckpt = read_checkpoint(args.ckpt)
    except WeightsError:  # a bare state dict (torch.save(model.state_dict())) is fine too
        import torch

        ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict):
            raise
    encoder = from_seed_state_dict(args.model, ckpt, n_heads=args.n_heads)
    pre = preprocess_from_cache(args.cache) if args.cache else unknown_preprocess()
    save_pretrained(encoder, args.out, preprocess=pre, channel_names=channel_names_of(args.cache) if args.cache else None,
                    source={"seed_checkpoint": str(Path(args.ckpt).resolve()), "seed_model": args.model},
                    overwrite=args.overwrite)
    print(f"wrote {args.out} ({type(encoder).__name__} from the seed checkpoint {args.ckpt})")
    return 0
