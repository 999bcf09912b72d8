"""Which trials are generated, and the record kept for each (class, subject, seed, original stimulus)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.errors import ConfigError
from eegalign.predictions import Predictions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def select_trials(
    labels: np.ndarray,
    *,
    per_class: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """Seeded selection of trial indices (sorted): ``per_class`` per label, then at most ``limit``,
    then every n-th for shard (i, n). Without options: every trial."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    idx = np.arange(labels.size)
    if per_class is not None:
        if per_class < 1:
            raise ConfigError(f"--per-class must be >= 1, got {per_class}")
        picked = [rng.choice(idx[labels == c], size=min(per_class, int((labels == c).sum())), replace=False)
                  for c in np.unique(labels)]
        idx = np.sort(np.concatenate(picked))
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {limit}")
        if limit < idx.size:
            idx = np.sort(rng.choice(idx, size=limit, replace=False))
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard must be i/n with 0 <= i < n, got {i}/{n}")
    return idx[i::n].astype(np.int64)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), validated."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as e:
        raise ConfigError(f"--shard must look like 0/4, got {text!r}") from e
    select_trials(np.zeros(1), shard=(i, n))  # validates the range
    return i, n


def describe_selection(per_class: int | None, limit: int | None, seed: int, shard: str, n_selected: int) -> dict[str, Any]:
    """The ``selection`` record of ``generation.json``."""
    parts = [f"per_class={per_class}" if per_class else None, f"limit={limit}" if limit else None,
             f"shard={shard}" if shard not in ("0/1", None) else None]
    chosen = [p for p in parts if p]
    return {"per_class": per_class, "limit": limit, "seed": seed, "shard": shard, "n_selected": int(n_selected),
            "description": "seeded selection: " + ", ".join(chosen) if chosen else "all trials"}


def trial_wnids(preds: Predictions) -> list[str | None]:
    """The ImageNet wnid of each trial: from ``preds.classes``, else from the cache's meta.parquet."""
    classes = preds.classes
    if classes is None and preds.cache and (Path(preds.cache) / "meta.parquet").is_file():
        import pandas as pd

        meta = pd.read_parquet(Path(preds.cache) / "meta.parquet", columns=["label", "label_folder"])
        table = dict(zip(meta["label"].astype(int), meta["label_folder"].astype(str)))
        return [table.get(int(lab)) for lab in preds.label]
    if classes is None:
        return [None] * preds.n
    return [classes[int(lab)] if 0 <= int(lab) < len(classes) else None for lab in preds.label]


def find_originals(image_ids: list[str], images_dir: str | os.PathLike | None) -> dict[str, Path]:
    """Map image_id -> stimulus file in ``images_dir`` (``<image_id>.png|.jpg|...``); missing ids are absent."""
    if images_dir is None or not Path(images_dir).is_dir():
        return {}
    wanted = set(image_ids)
    found: dict[str, Path] = {}
    for p in sorted(Path(images_dir).iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in wanted and p.stem not in found:
            found[p.stem] = p
    return found


def locate_originals(preds: Predictions, indices: np.ndarray, images_dir: str | os.PathLike | None) -> tuple[dict[str, Path], Path | None]:
    """The original stimuli of the selected trials (``--images DIR``, else the cache's images/), warning about missing ones.

    Returns:
        ({image_id: file}, the directory searched or None).
    """
    from eegalign.errors import DataError

    if images_dir is not None and not Path(images_dir).is_dir():
        raise DataError(f"--images {images_dir} is not a directory")
    if images_dir is None and preds.cache:
        images_dir = Path(preds.cache) / "images"
    wanted = sorted({preds.image_ids[i] for i in indices})
    originals = find_originals(wanted, images_dir)
    if len(originals) < len(wanted):
        where = f"in {images_dir}" if images_dir else "(no --images DIR and no cache recorded in the predictions)"
        print(f"eegalign: warning: {len(wanted) - len(originals)} of {len(wanted)} original stimuli not found "
              f"{where}; their grid cells stay empty and the original-image, gwit N-way and reconstruction "
              f"rows leave them out", file=sys.stderr)
    return originals, Path(images_dir) if images_dir else None


def trial_records(preds: Predictions, indices: np.ndarray, seed: int) -> list[dict[str, Any]]:
    """One record per selected trial: index (row of the predictions file), image_id, label, wnid,
    class_name, subject, seed (= seed + index) and the image paths, still None."""
    from eegalign.data.classes import wnid_to_name

    wnids, names = trial_wnids(preds), wnid_to_name()
    records = []
    for i in (int(i) for i in indices):
        wnid = wnids[i]
        records.append({
            "index": i, "image_id": preds.image_ids[i], "label": int(preds.label[i]), "wnid": wnid,
            "class_name": names.get(wnid) if wnid else None, "subject": int(preds.subject[i]),
            "seed": seed + i, "original": None, "true": None, "eeg": None,
        })
    return records


def copy_originals(trials: list[dict[str, Any]], originals: dict[str, Path], out: Path) -> None:
    """Save each trial's original stimulus once as ``out/originals/<image_id>.png`` and record its path."""
    from PIL import Image

    (out / "originals").mkdir(exist_ok=True)
    for rec in trials:
        source = originals.get(rec["image_id"])
        if source is None:
            continue
        rel = f"originals/{rec['image_id']}.png"
        if not (out / rel).exists():
            with Image.open(source) as im:
                im.convert("RGB").save(out / rel)
        rec["original"] = rel
