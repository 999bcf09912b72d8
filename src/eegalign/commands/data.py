"""``eegalign data synth|prepare``: make a synthetic data set, or prepare a source into a cache."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    s = sub.add_parser("synth", help="write a synthetic data set in the hub schema (with ground-truth targets)",
                       description="Write a synthetic data set (train/validation/test parquet in the hub schema, "
                                   "plus targets/{image,text}.safetensors ground truth).")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--subjects", type=int, default=6)
    s.add_argument("--classes", type=int, default=40)
    s.add_argument("--images-per-class", type=int, default=5)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--snr", type=float, default=1.0, help="evoked-signal to noise power ratio")
    s.add_argument("--eeg-layout", choices=("nested", "array"), default="nested",
                   help="store EEG as nested lists or a fixed 2-D array column")
    s.add_argument("--drift", type=float, default=0.0,
                   help="block-design confound: a slow per-channel random walk over each subject's session of this "
                        "many noise SDs, with trials in class blocks (default 0: none; > 0 implies --blocked)")
    s.add_argument("--blocked", action="store_true",
                   help="present each subject's trials in class blocks and write session/block/trial_index columns")
    s.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("prepare", help="read a source and write the canonical cache",
                       description="Read a source (hub id, parquet directory, save_to_disk directory, or the "
                                   "release .pth with --format release) and write the canonical cache.")
    p.add_argument("--source", required=True, help="hub id, local parquet/save_to_disk directory, or release .pth")
    p.add_argument("--out", required=True, help="cache directory to write")
    p.add_argument("--format", choices=("auto", "hf", "release"), default="auto")
    p.add_argument("--splits", help="release format: the splits .pth (splits[fold]['train'|'val'|'test'])")
    p.add_argument("--fold", type=int, default=0, help="release format: which fold of the splits file")
    p.add_argument("--bandpass", nargs=2, type=float, metavar=("LO", "HI"), help="zero-phase band-pass in Hz")
    p.add_argument("--sfreq", type=float, default=1000.0, help="sampling rate in Hz (for --bandpass)")
    p.add_argument("--norm", choices=("global", "channel", "none"), default="global",
                   help="z-score with train-split statistics: one global mean/std, per channel, or none")
    p.add_argument("--n-chans", type=int, help="expected channel count (decides the EEG orientation)")
    p.add_argument("--strict", action="store_true", help="refuse NaN/Inf values instead of replacing them by 0")
    p.add_argument("--split-by", choices=("source", "image", "block", "session"), default="source",
                   help="split protocol: the source's own splits (default), image-level (no image in two splits), "
                        "held-out presentation blocks or sessions within each subject (when the source records them); "
                        "see docs/evaluation.md")
    p.add_argument("--split-fractions", nargs=3, type=float, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                   help="fractions of images/blocks/sessions per split for --split-by other than source")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the --split-by assignment")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cache prepared differently")


def run(args: argparse.Namespace) -> int:
    if args.action == "synth":
        from eegalign.data.synthetic import write_synthetic_dataset

        out = write_synthetic_dataset(
            args.out, subjects=args.subjects, classes=args.classes, images_per_class=args.images_per_class,
            seed=args.seed, snr=args.snr, eeg_layout=args.eeg_layout, drift=args.drift, blocked=args.blocked,
            overwrite=args.overwrite,
        )
        print(f"synthetic data set written to {out}")
        return 0

    from eegalign.data.cache import prepare_cache

    out = prepare_cache(
        args.source, args.out, format=args.format, bandpass=tuple(args.bandpass) if args.bandpass else None,
        norm=args.norm, sfreq=args.sfreq, overwrite=args.overwrite, splits=args.splits, fold=args.fold,
        n_chans=args.n_chans, strict=args.strict, split_by=args.split_by,
        split_fractions=tuple(args.split_fractions), split_seed=args.split_seed,
    )
    print(f"cache ready: {out}")
    return 0
