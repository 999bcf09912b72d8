"""`data prepare --split-by`: every protocol keeps what it promises out of the test split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eegalign.data.splits import deal_groups, resplit, split_counts
from eegalign.errors import ConfigError, DataError


def _meta(subjects: int = 2, classes: int = 6, images: int = 5) -> pd.DataFrame:
    """Block-design trials: each subject sees every image once, one block per class."""
    rows = []
    for s in range(1, subjects + 1):
        for c in range(classes):
            for i in range(images):
                rows.append(dict(split="train", subject=s, label=c, image_id=f"{c}-{i}", session=1, block=c,
                                 trial_index=c * images + i))
    return pd.DataFrame(rows)


def _sides(meta: pd.DataFrame, split: np.ndarray, column: str) -> set:
    by = meta.assign(split=split)
    return set(by[by.split == "train"][column]) & set(by[by.split == "test"][column])


def test_split_counts_and_dealing() -> None:
    assert split_counts(10, (0.8, 0.1, 0.1)).tolist() == [8, 1, 1]
    assert split_counts(3, (0.98, 0.01, 0.01)).tolist() == [1, 1, 1]
    index = deal_groups(np.repeat(np.arange(4), 10), (0.8, 0.1, 0.1), np.random.default_rng(0))
    assert np.bincount(index).tolist() == [32, 4, 4]


def test_image_split_keeps_every_image_on_one_side() -> None:
    meta = _meta()
    summary = resplit(meta, "image", seed=3)
    assert not _sides(meta, summary.split, "image_id")
    assert set(summary.split) == {"train", "validation", "test"}
    assert summary.info["trials"]["test"] == 2 * 3  # 3 of 30 images, 2 subjects each


def test_block_split_keeps_every_block_on_one_side_within_subject() -> None:
    meta = _meta()
    split = resplit(meta, "block").split
    keys = meta.subject.astype(str) + "/" + meta.block.astype(str)
    assert not _sides(meta.assign(key=keys), split, "key")
    for s in (1, 2):
        assert set(split[meta.subject == s]) == {"train", "validation", "test"}


def test_session_split_needs_sessions() -> None:
    meta = _meta()
    with pytest.raises(DataError, match="1 session"):
        resplit(meta, "session")
    meta["session"] = meta["block"] % 3 + 1
    split = resplit(meta, "session").split
    keys = meta.subject.astype(str) + "/" + meta.session.astype(str)
    assert not _sides(meta.assign(key=keys), split, "key")
    with pytest.raises(DataError, match="no 'block' column"):
        resplit(meta.drop(columns=["block"]), "block")
    with pytest.raises(ConfigError):
        resplit(meta, "trial")


def test_prepare_split_by_image_on_hub_fixture(tmp_path: Path) -> None:
    """The hub fixture repeats images inside each split; image-level re-splitting and its fingerprint."""
    from _hubschema import write_parquet_dir

    from eegalign.data.cache import Cache, prepare_cache

    write_parquet_dir(tmp_path / "hub", sizes=(12, 6, 6))
    source = prepare_cache(tmp_path / "hub", tmp_path / "c0", progress=False)
    cache = prepare_cache(tmp_path / "hub", tmp_path / "c1", split_by="image", split_fractions=(0.5, 0.25, 0.25),
                          progress=False)
    c0, c1 = Cache.open(source), Cache.open(cache)
    assert "split_by" not in c0.manifest["params"]  # the default keeps existing caches' fingerprints
    assert c1.manifest["params"]["split_by"] == "image" and c1.manifest["fingerprint"] != c0.manifest["fingerprint"]
    assert not _sides(c1.meta, c1.meta["split"].to_numpy(), "image_id")
    assert c1.manifest["notes"]["split_protocol"]["protocol"] == "image"
