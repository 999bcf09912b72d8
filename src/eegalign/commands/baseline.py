"""``eegalign baseline ridge``: closed-form ridge regression from time-binned EEG to CLIP targets.

Fits on the training split, chooses the regularisation on the validation split from a log grid
(one SVD for all alphas), predicts ``--split`` and writes ``DIR/predictions.safetensors``
(evaluate it with ``eegalign evaluate --predictions``) and ``DIR/ridge.json`` (the chosen alpha
and the validation curve).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method", choices=["ridge"], help="the baseline to fit (ridge)")
    parser.add_argument("--cache", required=True, help="prepared cache directory (with targets)")
    parser.add_argument("--route", choices=["image", "text"], default="image", help="target route (default image)")
    parser.add_argument("--split", choices=["test", "validation", "train"], default="test", help="split to predict")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--alphas", type=float, nargs="+", default=None, help="ridge penalties to try (default 1e-1 .. 1e6)")
    parser.add_argument("--bins", type=int, default=11, help="time bins per channel for the features (default 11)")
    parser.add_argument("--subjects", type=int, nargs="+", default=None, help="restrict to these subjects")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    import numpy as np

    from eegalign.data.cache import Cache
    from eegalign.errors import DataError, EEGAlignError
    from eegalign.io import atomic_dir, write_json
    from eegalign.models.baselines import DEFAULT_ALPHAS, fit_ridge, ridge_features
    from eegalign.predictions import Predictions

    from eegalign.outputs import check_out

    if args.bins < 1:
        raise EEGAlignError(f"--bins must be a positive number of time bins, got {args.bins}")
    if args.alphas is not None and not all(np.isfinite(a) and a > 0 for a in args.alphas):
        raise EEGAlignError(f"--alphas must be positive, finite numbers, got {' '.join(f'{a:g}' for a in args.alphas)}")
    out = Path(args.out)
    check_out(out, "ridge", inputs=[args.cache], overwrite=args.overwrite)
    cache = Cache.open(args.cache)
    idx = {s: cache.split_indices(s, args.subjects) for s in ("train", "validation", args.split)}
    for s, ix in idx.items():
        if len(ix) == 0:
            raise DataError(f"cache {cache.path} has no {s} trials" + (f" for subjects {args.subjects}" if args.subjects else ""))
    bins = min(args.bins, cache.n_times)  # what ridge_features uses: a bin holds at least one sample
    if bins != args.bins:
        print(f"eegalign: warning: --bins {args.bins} is more than the {cache.n_times} samples per trial; using {bins}",
              file=sys.stderr)
    feats = {s: ridge_features(cache.eeg[ix], bins) for s, ix in idx.items()}
    targets = {s: cache.trial_targets(args.route, ix) for s, ix in idx.items()}
    alphas = tuple(args.alphas) if args.alphas else DEFAULT_ALPHAS
    print(f"ridge: {len(idx['train'])} train / {len(idx['validation'])} validation trials, "
          f"{feats['train'].shape[1]} features -> {targets['train'].shape[1:]} targets, {len(alphas)} alphas")
    model = fit_ridge(feats["train"], targets["train"], feats["validation"], targets["validation"], alphas)
    pred = model.predict(feats[args.split])
    meta = cache.meta.iloc[idx[args.split]]
    preds = Predictions(
        pred=pred,
        true=targets[args.split].astype(np.float32),
        label=meta["label"].to_numpy().astype(np.int64),
        subject=meta["subject"].to_numpy().astype(np.int64),
        image_ids=[str(i) for i in meta["image_id"]],
        route=args.route,
        model=f"ridge(alpha={model.alpha:g})",
        split=args.split,
        classes=cache.classes,
        cache=str(cache.path),
    )
    with atomic_dir(out, overwrite=args.overwrite, kind="ridge", command="eegalign baseline ridge") as tmp:
        preds.save(tmp / "predictions.safetensors")
        write_json(tmp / "ridge.json", {
            "alpha": model.alpha, "bins": bins, "route": args.route, "split": args.split,
            **({"bins_requested": args.bins} if bins != args.bins else {}),
            "n_train": len(idx["train"]), "n_validation": len(idx["validation"]),
            "selection": "lowest validation MSE", "validation_curve": model.curve,
        })
    best = next(c for c in model.curve if c["alpha"] == model.alpha)
    print(f"ridge: alpha={model.alpha:g} (validation MSE {best['val_mse']:.4g}, cosine {best['val_cosine']:.3f}); wrote {out}")
    return 0
