"""``eegalign data synth|prepare``: make a synthetic data set, or prepare a source into a cache."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    s = sub.add_parser("synth", help="write a synthetic data set in the hub schema (with ground-truth targets)",
                       description="Write a synthetic data set (train/validation/test parquet in the hub schema, "
                                   "plus targets/{image,text}.safetensors ground truth).")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--layout", choices=("cvpr40", "things-eeg2"), default="cvpr40",
                   help="cvpr40: the hub data set's parquet schema (default); things-eeg2: the THINGS-EEG2 release layout")
    s.add_argument("--subjects", type=int, default=6)
    s.add_argument("--classes", type=int, default=40, help="cvpr40: classes; things-eeg2: training concepts")
    s.add_argument("--test-concepts", type=int, default=8, help="things-eeg2: held-out test concepts (one image each)")
    s.add_argument("--repetitions", type=int, nargs=2, default=(4, 8), metavar=("TRAIN", "TEST"),
                   help="things-eeg2: repetitions per training and per test image (the release: 4 80)")
    s.add_argument("--montage", choices=("17x100", "63x250"), default="17x100",
                   help="things-eeg2: the official 17 channels at 100 Hz or the 63-channel 250 Hz re-preprocessing")
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
    p.add_argument("--format", choices=("auto", "hf", "release", "things-eeg2"), default="auto",
                   help="auto (default) recognises hub ids, parquet/save_to_disk directories, the CVPR40 .pth and the "
                        "THINGS-EEG2 release directory")
    p.add_argument("--subjects", type=int, nargs="+", metavar="N", help="THINGS-EEG2: subjects to read (default: all sub-XX)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="THINGS-EEG2: fraction of the training concepts held out (whole concepts) for validation")
    p.add_argument("--val-seed", type=int, default=0, help="THINGS-EEG2: seed of the validation concepts")
    p.add_argument("--splits", help="release format: the splits .pth (splits[fold]['train'|'val'|'test'])")
    p.add_argument("--fold", type=int, default=0, help="release format: which fold of the splits file")
    p.add_argument("--bandpass", nargs=2, type=float, metavar=("LO", "HI"), help="zero-phase band-pass in Hz")
    p.add_argument("--sfreq", type=float, default=None,
                   help="sampling rate in Hz (for --bandpass; default 1000, THINGS-EEG2: from the files' times)")
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


def _synth_eeg_bytes(args: argparse.Namespace) -> int:
    """A lower bound of the size of a synthetic data set (its float32 EEG), for the free-space check.

    cvpr40 layout: subjects x classes x images-per-class trials of 128 x 440 samples (its fixed montage);
    0 (no estimate) for the things-eeg2 layout or nonsensical counts, which the writer refuses itself.
    """
    if args.layout != "cvpr40" or min(args.subjects, args.classes, args.images_per_class) < 1:
        return 0
    return args.subjects * args.classes * args.images_per_class * 128 * 440 * 4


def run(args: argparse.Namespace) -> int:
    from eegalign.outputs import check_not_input, check_out, check_writable

    if args.action == "synth":
        check_out(args.out, "synthetic", overwrite=args.overwrite, need_bytes=_synth_eeg_bytes(args))
    else:
        check_not_input(args.out, [args.source, args.splits])
        check_writable(args.out)
    if args.action == "synth" and args.layout == "things-eeg2":
        from eegalign.data.synthetic_things import write_synthetic_things

        chans, times = (int(v) for v in args.montage.split("x"))
        out = write_synthetic_things(
            args.out, subjects=args.subjects, train_concepts=args.classes, test_concepts=args.test_concepts,
            images_per_concept=args.images_per_class, repetitions=tuple(args.repetitions), n_chans=chans, n_times=times,
            seed=args.seed, snr=args.snr, overwrite=args.overwrite,
        )
        print(f"synthetic THINGS-EEG2 release written to {out}")
        return 0
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
        n_chans=args.n_chans, strict=args.strict, subjects=args.subjects, val_fraction=args.val_fraction,
        val_seed=args.val_seed, split_by=args.split_by,
        split_fractions=tuple(args.split_fractions), split_seed=args.split_seed,
    )
    print(f"cache ready: {out}")
    return 0
