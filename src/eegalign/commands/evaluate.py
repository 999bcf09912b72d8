"""``eegalign evaluate``: predictions + metrics + report, for a checkpoint or a predictions file.

    eegalign evaluate --ckpt CKPT --cache CACHE --split test --out DIR
    eegalign evaluate --predictions FILE --out DIR [--train-targets FILE|CACHE]

Writes DIR/predictions.safetensors, DIR/metrics.json, DIR/report.md, DIR/report.html and
DIR/figures/*.png, atomically (DIR appears only when everything is written).
"""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("what to evaluate (one of)")
    src.add_argument("--ckpt", help="checkpoint written by `eegalign fit` (needs --cache)")
    src.add_argument("--model", metavar="DIR", help="a model directory written by `eegalign export` (needs --cache)")
    src.add_argument("--predictions", help="a predictions.safetensors file from any model")
    parser.add_argument("--cache", help="cache directory the checkpoint is evaluated on (with --ckpt)")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"], help="split to evaluate (with --ckpt; default test)")
    parser.add_argument("--out", required=True, help="output directory (must not exist unless --overwrite)")
    parser.add_argument(
        "--train-targets",
        help="train-split targets for the train-mean baseline and class prototypes: a cache directory, or a safetensors "
        "file with tensors 'embeddings' (M, ...) and 'label' (M,) of the M distinct train images. Default: the cache "
        "recorded in the predictions file if it exists, else the evaluated split's own images (labelled optimistic)",
    )
    parser.add_argument(
        "--subjects", nargs="+", metavar="S",
        help="subjects to evaluate (with --ckpt/--model): numbers, or `all`. Default: the subjects the training run "
        "held for this split (the left-out subject of a leave-one-subject-out run, the chosen subjects of an "
        "intra-subject run), as recorded in the checkpoint; every subject when nothing is recorded",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="prediction batch size (with --ckpt)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (with --ckpt)")
    parser.add_argument(
        "--average-trials", nargs="?", const="image-subject", choices=["image-subject", "image"], default=None,
        help="also report retrieval on predictions averaged per image and subject (default when given without a value; "
        "on CVPR40 each subject saw each image once, so use `image` to average across subjects)",
    )
    parser.add_argument(
        "--average-repetitions", action=argparse.BooleanOptionalAction, default=None,
        help="average the predictions of each image's repetitions per subject before retrieval (THINGS-EEG2's "
        "protocol; the default for a cache with a repetition column, i.e. THINGS-EEG2 test trials)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs (default 1000)")
    parser.add_argument("--permutations", type=int, default=1000, help="permutations for the p-values (default 1000)")
    parser.add_argument("--kway-draws", type=int, default=10, help="distractor draws per trial for k-way retrieval (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    parser.add_argument("--audit", help="an `eegalign audit` output directory: adds its leakage section to the report")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    parser.add_argument(
        "--allow-preprocessing-mismatch", action="store_true",
        help="evaluate a checkpoint on a cache prepared differently from its training cache (other norm, band-pass, "
        "sampling rate, channels or length); refused by default",
    )


def _from_checkpoint(args: argparse.Namespace, context: dict) -> tuple[Any, Any]:
    """``--ckpt``: predictions of the checkpoint on ``--cache`` and the train targets; fills ``context``."""
    from pathlib import Path

    from eegalign.errors import ConfigError
    from eegalign.evaluate import load_train_targets, predict_checkpoint, train_targets_from_cache

    if not args.cache:
        raise ConfigError(f"{'--model' if getattr(args, 'model', None) else '--ckpt'} needs --cache CACHE (the cache to predict)")
    preds, info, cache = predict_checkpoint(args.ckpt, args.cache, args.split, args.batch_size, args.device,
                                            allow_preprocessing_mismatch=args.allow_preprocessing_mismatch,
                                            subjects=_subjects_option(args.subjects))
    if info.get("evaluated_subjects"):
        chosen = info["evaluated_subjects"]
        context["subjects"] = chosen
        print(f"evaluating subject(s) {chosen['subjects']} of the {args.split} split (from the {chosen['source']}; "
              "--subjects all for every subject)")
    train = load_train_targets(args.train_targets, preds.route) if args.train_targets else train_targets_from_cache(cache, preds.route)
    context.update(
        checkpoint=str(args.ckpt), epoch=info.get("epoch"), loss=info.get("loss"), encoder=info.get("encoder"),
        config=_find_config(Path(args.ckpt)),
    )
    return preds, train


def _subjects_option(values: list[str] | None) -> list[int] | str | None:
    """``--subjects``: None (the checkpoint's record), ``"all"``, or a list of subject numbers."""
    from eegalign.errors import ConfigError

    if not values:
        return None
    if [v.lower() for v in values] == ["all"]:
        return "all"
    try:
        return sorted({int(v) for v in values})
    except ValueError:
        raise ConfigError(f"--subjects takes subject numbers or `all`, not {' '.join(values)!r}") from None


def _from_predictions(args: argparse.Namespace, context: dict) -> tuple[Any, Any]:
    """``--predictions``: the predictions file and train targets (given, else from its recorded cache); fills ``context``."""
    import sys
    from pathlib import Path

    from eegalign.errors import DataError
    from eegalign.evaluate import load_train_targets
    from eegalign.outputs import check_not_input
    from eegalign.predictions import Predictions

    preds = Predictions.load(args.predictions)
    check_not_input(args.out, [preds.cache, preds.extra.get("checkpoint")])  # read for train targets / config
    context["predictions"] = str(args.predictions)
    if "checkpoint" in preds.extra:
        context["checkpoint"] = preds.extra["checkpoint"]
        context["config"] = _find_config(Path(preds.extra["checkpoint"]))
    train = None
    if args.train_targets:
        train = load_train_targets(args.train_targets, preds.route)
    elif preds.cache and Path(preds.cache).is_dir():
        try:
            train = load_train_targets(preds.cache, preds.route)
        except DataError as e:  # the recorded cache is not usable: fall back, and say so
            print(f"eegalign: warning: no train targets from the recorded cache ({e}); using the split mean", file=sys.stderr)
    return preds, train


def _print_summary(metrics: dict, out: str) -> None:
    """The headline numbers with chance, p-value and baseline, and where the report is."""
    from pathlib import Path

    if "retrieval_averaged" in metrics:
        averaged = metrics["retrieval_averaged"]
        top1, top5 = averaged["all_top1"], averaged["all_top5"]
        print(
            f"repetition-averaged ({averaged['n']} queries, {round(1 / top1['chance'])}-way): "
            f"top-1 {100 * top1['value']:.1f}% (chance {100 * top1['chance']:.1f}%), "
            f"top-5 {100 * top5['value']:.1f}% (chance {100 * top5['chance']:.1f}%)"
        )
    top1 = metrics["retrieval"]["all_top1"]
    print(
        f"all-way top-1 {100 * top1['value']:.1f}% (chance {100 * top1['chance']:.1f}%, permutation p = "
        f"{metrics['baselines']['permutation_p']:.3g}); cosine {metrics['similarity']['cosine']['mean']:.4f} vs baseline "
        f"{metrics['baselines']['train_mean']['similarity']['cosine']['mean']:.4f}"
    )
    print(f"report: {Path(out) / 'report.html'}")


def run(args: argparse.Namespace) -> int:
    from eegalign.errors import ConfigError
    from eegalign.evaluate import evaluate_to_dir
    from eegalign.metrics import KWAY_THINGS
    from eegalign.outputs import check_out

    if sum(bool(x) for x in (args.ckpt, args.model, args.predictions)) != 1:
        raise ConfigError("give exactly one of --ckpt CKPT or --model DIR (with --cache) or --predictions FILE")
    if args.predictions and args.subjects:
        raise ConfigError("--subjects selects the trials a --ckpt/--model is run on; a --predictions file is scored whole")
    if args.model:
        from pathlib import Path

        if not Path(args.model).is_dir():
            raise ConfigError(f"--model {args.model} is not a directory (a model directory written by `eegalign export`)")
        args.ckpt = args.model
    for name in ("bootstrap", "permutations", "kway_draws", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    inputs = [args.ckpt, args.cache, args.predictions, args.train_targets, args.audit]
    check_out(args.out, "evaluation", inputs=inputs, overwrite=args.overwrite)
    context: dict = {}
    if args.audit:
        context["audit"] = _checked_audit(args.audit, args.cache)
    preds, train = _from_checkpoint(args, context) if args.ckpt else _from_predictions(args, context)
    average = args.average_trials
    if average is None and args.average_repetitions is not False:
        if args.average_repetitions or _has_repetitions(args.cache or preds.cache):
            average = "image-subject"
    dataset = _dataset(args.cache or preds.cache)
    if dataset:
        context["dataset"] = dataset
    metrics = evaluate_to_dir(
        preds, args.out, train=train, context=context, overwrite=args.overwrite, n_boot=args.bootstrap,
        n_perm=args.permutations, kway_draws=args.kway_draws, seed=args.seed, average_trials=average or False,
        kway=KWAY_THINGS if dataset == "things-eeg2" else None,
    )
    _print_summary(metrics, args.out)
    return 0


def _manifest(cache: str | None) -> dict:
    import json
    from pathlib import Path

    try:
        return json.loads((Path(cache) / "manifest.json").read_text()) if cache else {}
    except (OSError, ValueError):
        return {}


def _dataset(cache: str | None) -> str | None:
    """``things-eeg2`` for a THINGS-EEG2 cache, else None (decides which published figures the report shows)."""
    return "things-eeg2" if _manifest(cache).get("format") == "things-eeg2" else None


def _has_repetitions(cache: str | None) -> bool:
    """True if the cache was prepared with one row per repetition (THINGS-EEG2)."""
    return _dataset(cache) == "things-eeg2"
def _checked_audit(audit_dir: str, cache_dir: str | None) -> str:
    """The audit directory, after checking it is readable; warns when it audited another cache."""
    import json
    import sys
    from pathlib import Path

    from eegalign.audit.run import load_audit

    audit = load_audit(audit_dir)
    manifest = Path(cache_dir or "") / "manifest.json"
    if cache_dir and manifest.is_file():
        fingerprint = json.loads(manifest.read_text()).get("fingerprint")
        if fingerprint != audit.get("cache", {}).get("fingerprint"):
            print(f"eegalign: warning: the audit in {audit_dir} was run on another cache (fingerprint "
                  f"{audit.get('cache', {}).get('fingerprint')}, evaluated cache {fingerprint})", file=sys.stderr)
    return str(audit_dir)


def _find_config(ckpt: "Path") -> str | None:
    """The resolved ``config.yaml`` LightningCLI wrote near a checkpoint (up to 3 levels up), if any."""
    for d in list(ckpt.parents)[:3]:
        if (d / "config.yaml").is_file():
            return str(d / "config.yaml")
    return None
