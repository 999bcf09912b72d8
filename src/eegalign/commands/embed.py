"""``eegalign embed``: CLIP image / text targets for every image of a cache."""

from __future__ import annotations

import argparse

from eegalign.data.targets import DEFAULT_IMAGE_MODEL as _IMAGE_DEFAULT  # cheap: numpy only
from eegalign.data.targets import DEFAULT_TEXT_MODEL as _TEXT_DEFAULT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", required=True, help="cache directory (from `eegalign data prepare`)")
    parser.add_argument("--image-model", default=_IMAGE_DEFAULT,
                        help="CLIPVisionModelWithProjection: local dir or hub id[/subfolder] (default: %(default)s)")
    parser.add_argument("--text-model", default=_TEXT_DEFAULT,
                        help="SD pipeline (text_encoder/ + tokenizer/) or CLIP text model dir / hub id (default: %(default)s)")
    parser.add_argument("--route", choices=("image", "text", "both"), default="both")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default="auto",
                        help="model dtype (auto: float16 on GPU, float32 on CPU); targets are stored as float32")


def run(args: argparse.Namespace) -> int:
    from eegalign.data.cache import Cache
    from eegalign.data.targets import embed_images, embed_texts

    from pathlib import Path

    from eegalign.outputs import check_writable

    cache = Cache.open(args.cache)
    # before loading models and embedding every image
    check_writable(Path(cache.path) / "targets", option="cache directory (embed writes its targets/ there)")
    routes = ("image", "text") if args.route == "both" else (args.route,)
    for route in routes:
        fn, model = (embed_images, args.image_model) if route == "image" else (embed_texts, args.text_model)
        path = fn(cache, model, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
        print(f"{route} targets written to {path}")
    return 0
