"""Writers of tiny data sets in the exact hub schema (used by the data-layer tests).

Columns as on the hub: ``conditioning_image`` (nested lists or a datasets Array2D), ``image``
(datasets Image: JPEG bytes), ``caption``, ``label_folder``, ``label``, ``subject``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

WNIDS = ["n02106662", "n02124075", "n02281787"]


def jpeg(seed: int, size: int = 16) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_split(n: int, *, seed: int, c: int = 128, t: int = 440, time_first: bool = True, n_images: int = 3) -> dict:
    """Rows of one split; ``eeg_ct`` (n, C, T) is the channels-first truth for assertions."""
    rng = np.random.default_rng(seed)
    eeg_ct = rng.standard_normal((n, c, t)).astype(np.float32)
    img = [jpeg(seed * 100 + k) for k in range(n_images)]
    which = np.arange(n) % n_images
    labels = which % len(WNIDS)
    return {
        "eeg_ct": eeg_ct,
        "conditioning_image": eeg_ct.transpose(0, 2, 1) if time_first else eeg_ct,
        "image": [{"bytes": img[k], "path": None} for k in which],
        "caption": [f"an image of a thing {k}" for k in which],
        "label_folder": [WNIDS[k] for k in labels],
        "label": labels.astype(np.int64),
        "subject": (np.arange(n) % 2 + 1).astype(np.int64),
    }


def to_dataset(rows: dict, layout: str = "nested"):
    import datasets

    x = rows["conditioning_image"]
    eeg_feature = (
        datasets.Array2D(shape=tuple(x.shape[1:]), dtype="float32")
        if layout == "array"
        else datasets.Sequence(datasets.Sequence(datasets.Value("float32")))
    )
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "conditioning_image": eeg_feature,
            "caption": datasets.Value("string"),
            "label_folder": datasets.Value("string"),
            "label": datasets.Value("int64"),
            "subject": datasets.Value("int64"),
        }
    )
    data = {k: v for k, v in rows.items() if k != "eeg_ct"}
    data["conditioning_image"] = list(x) if layout == "array" else x.tolist()
    return datasets.Dataset.from_dict(data, features=features)


def write_parquet_dir(
    root: Path, *, layout: str = "nested", hub_layout: bool = False, time_first: bool = True,
    sizes=(6, 3, 3), c: int = 128, t: int = 440,
) -> dict[str, dict]:
    """``root/<split>.parquet`` (or ``root/data/<split>-00000-of-00001.parquet``); returns the rows."""
    out = {}
    for k, (split, n) in enumerate(zip(("train", "validation", "test"), sizes)):
        rows = make_split(n, seed=k + 1, c=c, t=t, time_first=time_first)
        ds = to_dataset(rows, layout)
        f = root / "data" / f"{split}-00000-of-00001.parquet" if hub_layout else root / f"{split}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        ds.to_parquet(str(f))
        out[split] = rows
    return out


def write_arrow_table(path: Path, table) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
