"""Checkpoint -> predictions -> metrics -> report.

Two entry points share one pipeline:

* :func:`predict_checkpoint` runs a trained encoder (``eegalign.checkpoints.load_encoder``) over one
  split of a cache and returns a :class:`~eegalign.predictions.Predictions`;
* :func:`evaluate_to_dir` computes every metric of ``docs/evaluation.md`` for a Predictions
  object (with the train-split targets for baselines and class prototypes, when known) and
  writes ``predictions.safetensors``, ``metrics.json``, ``report.md``, ``report.html`` and
  ``figures/*.png`` into an output directory, atomically.

Train targets (:class:`TrainTargets`) come from a cache (:func:`train_targets_from_cache`) or
from a safetensors file with tensors ``embeddings`` (M, ...) and ``label`` (M,) for the M
distinct train-split images (:func:`load_train_targets`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.devices import resolve_device
from eegalign.errors import ConfigError, DataError
from eegalign.predictions import Predictions


@dataclass
class TrainTargets:
    """Targets of the distinct train-split images: ``embeddings`` (M, ...), ``labels`` (M,), and where from."""

    embeddings: np.ndarray
    labels: np.ndarray
    source: str


def train_targets_from_cache(cache: Any, route: str) -> TrainTargets:
    """Targets and classes of the distinct train-split images of a cache (an opened ``Cache``)."""
    rows = cache.split_indices("train")
    if len(rows) == 0:
        raise DataError(f"cache {cache.path} has no train split: cannot build the train-mean baseline")
    meta = cache.meta.iloc[rows]
    first = ~meta["image_id"].duplicated().to_numpy()  # one row per distinct image
    img_rows = rows[first]
    emb = cache.trial_targets(route, img_rows)
    labels = cache.meta["label"].to_numpy()[img_rows].astype(np.int64)
    return TrainTargets(np.asarray(emb, dtype=np.float32), labels, f"train split of cache {cache.path}")


def load_train_targets(path: str | os.PathLike, route: str) -> TrainTargets:
    """Read train targets from a cache directory or a safetensors file (``embeddings``, ``label``)."""
    path = Path(path)
    if path.is_dir():
        from eegalign.data.cache import Cache

        return train_targets_from_cache(Cache.open(path), route)
    from eegalign.io import load_tensors

    arrays, _ = load_tensors(path)
    if "embeddings" not in arrays or "label" not in arrays:
        raise DataError(f"{path}: a train-targets file needs tensors 'embeddings' (M, ...) and 'label' (M,)")
    if not np.issubdtype(arrays["embeddings"].dtype, np.floating) or not np.issubdtype(arrays["label"].dtype, np.integer):
        raise DataError(f"{path}: 'embeddings' must hold floating-point values and 'label' integers "
                        f"(got {arrays['embeddings'].dtype} and {arrays['label'].dtype})")
    emb, lab = np.asarray(arrays["embeddings"], dtype=np.float32), np.asarray(arrays["label"]).astype(np.int64)
    if not np.isfinite(emb).all():
        raise DataError(f"{path}: 'embeddings' contain NaN or Inf values")
    if lab.shape != (len(emb),):
        raise DataError(f"{path}: 'label' has shape {lab.shape}, expected ({len(emb)},)")
    return TrainTargets(emb, lab, str(path))


def _check_encoder_fits_cache(encoder: Any, cache: Any, route: str, ckpt: str | os.PathLike) -> None:
    """Raise :class:`DataError` unless the cache has the route's targets in the encoder's output shape
    and EEG of the encoder's input size."""
    if not cache.has_targets(route):
        raise DataError(f"cache {cache.path} has no {route} targets, which checkpoint {ckpt} was trained on")
    target_shape = cache.target_shape(route)
    out_shape = tuple(int(d) for d in encoder.out_shape)
    if out_shape != target_shape:
        raise DataError(
            f"checkpoint {ckpt} predicts {out_shape} but the cache's {route} targets are {target_shape}: wrong route or cache"
        )
    if (encoder.n_chans, encoder.n_times) != (cache.n_chans, cache.n_times):
        raise DataError(
            f"checkpoint {ckpt} expects EEG of {encoder.n_chans} x {encoder.n_times} but the cache holds "
            f"{cache.n_chans} x {cache.n_times}"
        )


def evaluated_subjects(record: dict[str, Any] | None, requested: list[int] | str | None, split: str,
                       cache: Any) -> dict[str, Any] | None:
    """The subjects a checkpoint is evaluated on, and why; None means every subject of the cache.

    By default the training run's own subjects of ``split`` (a leave-one-subject-out run is tested
    on its left-out subject only, an intra-subject run on its subject): evaluating on the other
    subjects would silently change the protocol. ``requested`` (``--subjects``) overrides it.
    """
    present = sorted(int(s) for s in np.unique(cache.meta["subject"].to_numpy()))
    if requested == "all":
        return None
    if requested is not None:
        unknown = sorted(set(requested) - set(present))
        if unknown:
            raise ConfigError(f"--subjects {unknown} not in the cache (subjects: {present})")
        return {"subjects": list(requested), "source": "--subjects"}
    key = "test" if split == "test" else "train"  # validation trials come from the training subjects
    if not isinstance(record, dict) or not record.get(key) or record.get("protocol") == "all":
        return None
    wanted = [int(s) for s in record[key]]
    if sorted(wanted) == present:
        return None
    missing = sorted(set(wanted) - set(present))
    if missing:
        raise ConfigError(f"the checkpoint was trained with {key} subject(s) {wanted} ({record.get('protocol')}), but "
                          f"subject(s) {missing} are not in this cache (subjects: {present}); pass --subjects")
    return {"subjects": wanted, "source": f"checkpoint ({record.get('protocol')})"}


def predict_checkpoint(
    ckpt: str | os.PathLike,
    cache_dir: str | os.PathLike,
    split: str = "test",
    batch_size: int = 64,
    device: str = "cpu",
    progress: bool = True,
    allow_preprocessing_mismatch: bool = False,
    subjects: list[int] | str | None = None,
) -> tuple[Predictions, dict[str, Any], Any]:
    """Run a checkpoint's encoder (or a model directory's) over one split of a cache.

    Returns ``(predictions, info, cache)``: ``info`` is ``load_encoder``'s record; the cache is
    opened once and handed back for the train targets. Raises :class:`DataError` when the
    encoder's output shape or input size does not match the cache, or when the cache was prepared
    differently from the checkpoint's training cache (unless ``allow_preprocessing_mismatch``).
    ``subjects``: the subjects to predict, ``"all"``, or None for the training run's own subjects
    of ``split`` (recorded in the checkpoint; see :func:`evaluated_subjects`); ``info`` then gets
    ``evaluated_subjects``.
    """
    import torch
    from tqdm.auto import tqdm

    from eegalign.data.cache import Cache
    from eegalign.pretrained import load_any

    cache = Cache.open(cache_dir)
    encoder, info = load_any(ckpt)  # a checkpoint file or an `eegalign export` model directory
    route = info.get("route") or ("text" if len(tuple(encoder.out_shape)) == 2 else "image")
    _check_encoder_fits_cache(encoder, cache, route, ckpt)
    chosen = evaluated_subjects(info.get("subjects"), subjects, split, cache)
    rows = cache.split_indices(split, None if chosen is None else chosen["subjects"])
    if len(rows) == 0:
        raise DataError(f"cache {cache.path} has no trials in split {split!r}"
                        + ("" if chosen is None else f" for subject(s) {chosen['subjects']}"))
    info["evaluated_subjects"] = chosen
    from eegalign.data.preprocessing_record import check_preprocessing

    check_preprocessing(info.get("preprocessing"), cache.manifest, f"checkpoint {ckpt}", allow_preprocessing_mismatch)
    device = resolve_device(device)
    encoder = encoder.to(device).eval()
    preds = []
    with torch.inference_mode():
        for s in tqdm(range(0, len(rows), batch_size), desc=f"predict {split}", unit="batch", disable=not progress):
            eeg = torch.from_numpy(np.ascontiguousarray(cache.eeg[rows[s : s + batch_size]])).to(device)  # (B, C, T)
            preds.append(encoder(eeg).float().cpu().numpy())  # (B, *out_shape)
    meta = cache.meta.iloc[rows]
    pred = Predictions(
        pred=np.concatenate(preds).astype(np.float32),
        true=np.asarray(cache.trial_targets(route, rows), dtype=np.float32),
        label=meta["label"].to_numpy().astype(np.int64),
        subject=meta["subject"].to_numpy().astype(np.int64),
        image_ids=[str(i) for i in meta["image_id"]],
        route=route,
        model=str(info["encoder"].get("name", "unknown")),
        split=split,
        classes=list(cache.classes),
        cache=str(cache.path),
        extra={"checkpoint": str(ckpt), **({"loss": json.dumps(info["loss"])} if info.get("loss") else {})},
    )
    return pred, info, cache


def _run_context(preds: Predictions, train: TrainTargets | None, context: dict[str, Any] | None) -> dict[str, Any]:
    """The report's provenance: ``context`` with the model, split and cache of ``preds`` and the train targets' source."""
    ctx = dict(context or {})
    ctx.setdefault("model", preds.model)
    ctx.setdefault("split", preds.split)
    ctx.setdefault("cache", preds.cache)
    ctx["train_targets"] = train.source if train is not None else None
    return ctx


def evaluate_to_dir(
    preds: Predictions,
    out: str | os.PathLike,
    *,
    train: TrainTargets | None = None,
    context: dict[str, Any] | None = None,
    overwrite: bool = False,
    n_boot: int = 1000,
    n_perm: int = 1000,
    kway_draws: int = 10,
    seed: int = 0,
    average_trials: bool | str = False,
    kway: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Compute all metrics for ``preds`` and write the output directory atomically; returns metrics.

    ``kway``: the k of k-way retrieval (default ``metrics.KWAY``; THINGS-EEG2 uses ``metrics.KWAY_THINGS``)."""
    from eegalign.io import atomic_dir, write_json
    from eegalign.metrics import compute_metrics
    from eegalign.report import write_report

    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"output directory {out} already exists (pass --overwrite to replace it)")
    if train is not None and train.embeddings.shape[1:] != preds.pred.shape[1:]:
        raise DataError(
            f"train targets ({train.source}) have shape {train.embeddings.shape[1:]} but the predictions "
            f"{preds.pred.shape[1:]}: wrong route?"
        )
    import sys

    print(
        f"computing metrics for {preds.n} trials ({preds.route} route; {n_boot} bootstrap resamples, "
        f"{n_perm} permutations)...",
        file=sys.stderr,
        flush=True,
    )
    metrics, arrays = compute_metrics(
        preds.pred, preds.true, preds.image_ids, preds.label, preds.subject,
        train_targets=None if train is None else train.embeddings,
        train_labels=None if train is None else train.labels,
        n_boot=n_boot, n_perm=n_perm, kway_draws=kway_draws, seed=seed, average_trials=average_trials,
        **({"kway": tuple(kway)} if kway else {}),
    )
    ctx = _run_context(preds, train, context)
    metrics["run"] = {k: v for k, v in ctx.items() if isinstance(v, (str, int, float, bool, type(None), list, dict))}
    print("writing predictions, metrics.json and the report...", file=sys.stderr, flush=True)
    if train is not None:  # generate rescales norm-free predictions (InfoNCE, cosine) to it
        preds.record_train_norm(train.embeddings)
    with atomic_dir(out, overwrite=overwrite, kind="evaluation", command="eegalign evaluate") as tmp:
        preds.save(tmp / "predictions.safetensors")
        write_json(tmp / "metrics.json", metrics)
        write_report(tmp, metrics, arrays, preds, ctx)
    return metrics
