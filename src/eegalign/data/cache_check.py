"""Consistency of a prepared cache, checked before any work reads it.

A cache is four files written together (``eeg.npy``, ``meta.parquet``, ``stats.json``,
``manifest.json``). If one of them was edited, truncated, replaced or renamed, every trial could
silently be scored against another trial's metadata. :func:`check_cache` compares them with each
other and raises one :class:`~eegalign.errors.DataError` sentence saying what is wrong and what to
do. ``Cache.open`` calls it, so every reader of a cache (training, evaluate, ridge, audit, embed)
is covered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegalign.errors import DataError

SPLITS = ("train", "validation", "test")
REQUIRED_COLUMNS = ("split", "subject", "label", "image_id")
MANIFEST_INTS = ("n_trials", "n_chans", "n_times")


def _redo(path: Path) -> str:
    """The advice that ends every message: the cache cannot be repaired by hand."""
    return f"prepare the cache again with `eegalign data prepare --out {path}` (or restore the original files)"


def check_manifest(path: Path, manifest: Any) -> None:
    """``manifest.json`` must be an object with integer sizes, a list of class names and a dict of counts."""
    if not isinstance(manifest, dict):
        raise DataError(f"{path / 'manifest.json'} is not a JSON object ({type(manifest).__name__}); {_redo(path)}")
    for key in MANIFEST_INTS:
        v = manifest.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise DataError(f"{path / 'manifest.json'}: {key!r} must be a positive integer, got {v!r}; {_redo(path)}")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise DataError(f"{path / 'manifest.json'}: 'classes' must be a list of class names; {_redo(path)}")
    counts = manifest.get("counts")
    if counts is not None and not (isinstance(counts, dict) and all(isinstance(counts.get(s, 0), int) for s in SPLITS)):
        raise DataError(f"{path / 'manifest.json'}: 'counts' must map each split to a number of trials; {_redo(path)}")
    if not isinstance(manifest.get("params", {}), dict):
        raise DataError(f"{path / 'manifest.json'}: 'params' must be a JSON object; {_redo(path)}")


def read_meta(path: Path) -> Any:
    """``meta.parquet`` as a DataFrame, or one line saying it is not a parquet table."""
    import pandas as pd

    try:
        return pd.read_parquet(path / "meta.parquet")
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path / 'meta.parquet'} is not a readable parquet table ({first}); {_redo(path)}") from e


def read_eeg(path: Path) -> np.ndarray:
    """``eeg.npy`` memory-mapped, or one line saying it is not a .npy array."""
    try:
        return np.load(path / "eeg.npy", mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{path / 'eeg.npy'} is not a readable .npy array ({first}); {_redo(path)}") from e


def check_eeg(path: Path, eeg: np.ndarray, manifest: dict[str, Any]) -> None:
    """dtype float32, three dimensions, and the manifest's trials x channels x samples."""
    f = path / "eeg.npy"
    if eeg.dtype != np.float32:
        raise DataError(f"{f} holds {eeg.dtype} values; a cache's EEG is float32: {_redo(path)}")
    if eeg.ndim != 3:
        raise DataError(f"{f} has shape {tuple(eeg.shape)}; a cache's EEG is (trials, channels, samples): {_redo(path)}")
    want = tuple(int(manifest[k]) for k in MANIFEST_INTS)
    for name, got, exp in zip(("trials", "channels", "samples per trial"), eeg.shape, want):
        if got != exp:
            raise DataError(
                f"{f} has {got} {name} but manifest.json says {exp} (shape {tuple(eeg.shape)} vs {want}): the files are "
                f"from different preparations; {_redo(path)}"
            )


def check_meta(path: Path, meta: Any, n: int, manifest: dict[str, Any]) -> None:
    """Columns, one row per EEG trial, known splits, integer subjects and labels in range."""
    f = path / "meta.parquet"
    missing = [c for c in REQUIRED_COLUMNS if c not in meta.columns]
    if missing:
        raise DataError(f"{f} lacks the column(s) {', '.join(missing)}; {_redo(path)}")
    if len(meta) != n:
        raise DataError(
            f"{f} has {len(meta)} rows but eeg.npy holds {n} trials: every trial would be scored with another "
            f"trial's metadata; {_redo(path)}"
        )
    for col in ("subject", "label"):
        if not np.issubdtype(meta[col].dtype, np.integer):
            raise DataError(f"{f}: column {col!r} must hold integers, not {meta[col].dtype}; {_redo(path)}")
    bad_split = sorted(set(meta["split"].astype(str)) - set(SPLITS))
    if bad_split:
        raise DataError(f"{f}: unknown split value(s) {bad_split[:3]} (expected {', '.join(SPLITS)}); {_redo(path)}")
    label = meta["label"].to_numpy()
    n_cls = len(manifest["classes"])
    if len(label) and (label.min() < 0 or label.max() >= n_cls):
        raise DataError(
            f"{f}: labels span {int(label.min())}..{int(label.max())} but manifest.json names {n_cls} classes "
            f"(labels 0..{n_cls - 1}); {_redo(path)}"
        )
    if meta["image_id"].isna().any():
        raise DataError(f"{f}: some rows have no image_id; {_redo(path)}")
    counts = manifest.get("counts")
    if counts:
        have = {s: int((meta["split"] == s).sum()) for s in SPLITS}
        if any(have[s] != int(counts.get(s, 0)) for s in SPLITS):
            raise DataError(f"{f} splits {have} disagree with manifest.json's counts {counts}; {_redo(path)}")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (``meta.parquet``: recorded in the manifest by ``prepare``, checked at every open)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_meta_unchanged(path: Path, manifest: dict[str, Any]) -> None:
    """``meta.parquet`` must be the file ``prepare`` wrote (caches from before the record are not checked).

    Rows reordered or edited with the counts kept pass every other check, yet pair each EEG trial
    with another trial's label, subject or image.
    """
    want = manifest.get("meta_sha256")
    if isinstance(want, str) and file_sha256(path / "meta.parquet") != want:
        raise DataError(f"{path / 'meta.parquet'} was changed after the cache was prepared (its checksum differs from "
                        f"manifest.json's meta_sha256): its rows may no longer match eeg.npy; {_redo(path)}")


def check_stats(path: Path, stats: Any, manifest: dict[str, Any] | None = None) -> None:
    """``stats.json`` must be a JSON object whose z-score record agrees with the manifest.

    ``export`` copies it into a model directory's ``preprocess.json``, which live decoding applies
    to raw EEG: a missing or damaged record would silently skip or distort the normalisation.
    """
    f = path / "stats.json"
    if not isinstance(stats, dict):
        raise DataError(f"{f} is not a JSON object; {_redo(path)}")
    norm = stats.get("normalisation")
    if not isinstance(norm, dict) or norm.get("norm") not in ("global", "channel", "none"):
        raise DataError(f"{f}: 'normalisation' must record norm global, channel or none; {_redo(path)}")
    want = ((manifest or {}).get("params") or {}).get("norm")
    if isinstance(want, str) and norm["norm"] != want:
        raise DataError(f"{f} records norm {norm['norm']!r} but manifest.json says {want!r}; {_redo(path)}")
    if norm["norm"] == "none":
        return
    shape = () if norm["norm"] == "global" else (int((manifest or {}).get("n_chans", -1)),)
    for key in ("mean", "std"):
        try:
            value = np.asarray(norm.get(key), dtype=np.float64)
        except (TypeError, ValueError):
            value = np.asarray([np.nan])
        if value.shape != shape or not np.isfinite(value).all() or (key == "std" and (value <= 0).any()):
            what = "a finite number" if not shape else f"{shape[0]} finite numbers (one per channel)"
            raise DataError(f"{f}: normalisation {key!r} must be {what}{', positive' if key == 'std' else ''}; "
                            f"{_redo(path)}")


def check_cache(cache: Any) -> None:
    """Check an opened ``Cache``'s files against each other; raise :class:`DataError` on the first problem.

    Reads the EEG header (memory map, no data), meta.parquet and stats.json, which the cache keeps.
    """
    import json

    path = Path(cache.path)
    check_manifest(path, cache.manifest)
    try:
        stats = json.loads((path / "stats.json").read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path / 'stats.json'} is not readable JSON; {_redo(path)}") from e
    check_stats(path, stats, cache.manifest)
    eeg = read_eeg(path)
    check_eeg(path, eeg, cache.manifest)
    meta = read_meta(path)
    check_meta(path, meta, int(eeg.shape[0]), cache.manifest)
    check_meta_unchanged(path, cache.manifest)
    cache.__dict__.update(eeg=eeg, meta=meta, stats=stats)  # the Cache's cached properties: read once
