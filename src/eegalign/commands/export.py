"""``eegalign export``: a checkpoint -> a self-contained model directory (optionally ONNX, optionally on the hub).

    eegalign export --ckpt CKPT --out DIR [--format onnx] [--cache CACHE] [--push-to-hub OWNER/NAME]

DIR gets config.json, model.safetensors, preprocess.json (the training cache's train-split
statistics, band-pass and epoch timing) and, with ``--format onnx``, model.onnx checked against
ONNX Runtime. See docs/deployment.md.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `eegalign fit`")
    parser.add_argument("--out", required=True, help="model directory to write (must not exist unless --overwrite)")
    parser.add_argument("--format", choices=["safetensors", "onnx"], default="safetensors",
                        help="onnx: also write model.onnx (dynamic batch axis), checked against ONNX Runtime")
    parser.add_argument("--cache", help="the cache whose preprocessing the model expects (default: the one the checkpoint records)")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max relative ONNX Runtime vs torch difference (default 1e-4)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    parser.add_argument("--allow-preprocessing-mismatch", action="store_true",
                        help="export with the preprocessing of a --cache that is not the checkpoint's training cache "
                        "(its z-score statistics go into preprocess.json); refused by default")
    parser.add_argument("--push-to-hub", metavar="REPO",
                        help="after writing DIR, upload it to the Hugging Face model repo REPO (needs `huggingface-cli login`)")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo as private")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from eegalign.checkpoints import load_encoder
    from eegalign.errors import ConfigError
    from eegalign.pretrained import channel_names_of, preprocess_from_cache, save_pretrained

    from eegalign.outputs import check_out

    out = Path(args.out)
    check_out(out, "model", inputs=[args.ckpt, args.cache], overwrite=args.overwrite)
    if not args.tolerance > 0:
        raise ConfigError("--tolerance must be > 0")
    encoder, info = load_encoder(args.ckpt)
    cache = args.cache or info.get("cache")
    if not cache or not Path(cache).is_dir():
        raise ConfigError(f"the checkpoint's cache {cache!r} is not here: pass --cache CACHE (the cache it was trained on), "
                          "whose preprocessing goes into preprocess.json")
    _check_cache_is_the_training_cache(info, cache, args.ckpt, args.allow_preprocessing_mismatch)
    preprocess = preprocess_from_cache(cache)
    if (preprocess["n_chans"], preprocess["n_times"]) != (encoder.n_chans, encoder.n_times):
        raise ConfigError(f"cache {cache} holds {preprocess['n_chans']} x {preprocess['n_times']} EEG but the encoder "
                          f"takes {encoder.n_chans} x {encoder.n_times}: wrong --cache")
    extra = None
    if args.format == "onnx":
        from eegalign.onnx_export import export_onnx

        def extra(enc, tmp):  # noqa: ANN001, ANN202 - the ONNX file goes into the same atomic directory
            return export_onnx(enc, tmp / "model.onnx", tolerance=args.tolerance)

    source = {"checkpoint": str(Path(args.ckpt).resolve()), "epoch": info.get("epoch"),
              "global_step": info.get("global_step"), "loss": info.get("loss"), "subjects": info.get("subjects")}
    save_pretrained(encoder, out, preprocess=preprocess, route=info.get("route"), channel_names=channel_names_of(cache),
                    source=source, overwrite=args.overwrite, extra_files=extra)
    print(f"wrote {out} ({'config.json, model.safetensors, preprocess.json' + (', model.onnx' if extra else '')})")
    if args.push_to_hub:
        url = push_to_hub(out, args.push_to_hub, private=args.private)
        print(f"uploaded to {url}")
    return 0


def _check_cache_is_the_training_cache(info: dict, cache: str, ckpt: str, allow: bool) -> None:
    """preprocess.json copies the cache's train-split statistics: they must be the training cache's.

    The preprocessing settings must match (as for evaluation), and, when the checkpoint records its
    training cache's fingerprint, so must the fingerprint (a cache re-prepared with other subjects or
    splits has other statistics under the same settings).
    """
    import sys

    from eegalign.data.cache import Cache
    from eegalign.data.preprocessing_record import ALLOW_FLAG, check_preprocessing
    from eegalign.errors import DataError

    manifest = Cache.open(cache).manifest
    check_preprocessing(info.get("preprocessing"), manifest, f"checkpoint {ckpt}", allow, doing="export")
    trained, here = info.get("cache_fingerprint"), manifest.get("fingerprint")
    if trained and trained != here:
        text = (f"checkpoint {ckpt} was trained on a cache with fingerprint {trained}, but {cache} has {here}: "
                "preprocess.json would carry another cache's z-score statistics")
        if not allow:
            raise DataError(f"{text}; pass the training cache with --cache, or {ALLOW_FLAG} to export anyway")
        print(f"eegalign: warning: {text}", file=sys.stderr)


def push_to_hub(model_dir, repo_id: str, private: bool = False) -> str:  # noqa: ANN001
    """Upload a model directory to the Hugging Face Hub model repo ``repo_id``; return its URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(model_dir), repo_id=repo_id, repo_type="model",
                      commit_message="eegalign export")
    return f"https://huggingface.co/{repo_id}"
