"""The cache: contents, train-only normalisation, atomicity, reuse by fingerprint, reader API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _hubschema import make_split, to_dataset

from eegalign.data.cache import Cache, prepare_cache
from eegalign.errors import DataError
from eegalign.io import load_tensors


def test_cache_contents(small_cache: Path, synthetic_dir: Path) -> None:
    c = Cache.open(small_cache)
    eeg = np.load(small_cache / "eeg.npy", mmap_mode="r")
    assert isinstance(c.eeg, np.memmap) and eeg.dtype == np.float32
    n = len(c.meta)
    assert eeg.shape == (n, 128, 440) and (c.n_chans, c.n_times) == (128, 440)
    assert list(c.meta.columns) == ["split", "subject", "label", "label_folder", "caption", "image_id"]
    assert set(c.meta["split"]) == {"train", "validation", "test"}
    # each distinct stimulus once in images/
    files = sorted(p.stem for p in (small_cache / "images").iterdir())
    assert files == sorted(c.meta["image_id"].unique())
    assert c.image_path(files[0]).suffix == ".jpg"
    # z-score fitted on train only: train is exactly standardised, the other splits are not forced to be
    tr = c.split_indices("train")
    x = np.asarray(c.eeg[tr], dtype=np.float64)
    assert abs(x.mean()) < 1e-4 and abs(x.std() - 1) < 1e-4
    stats = json.loads((small_cache / "stats.json").read_text())
    assert stats["normalisation"]["norm"] == "global" and stats["normalisation"]["fitted_on"] == "train"
    man = json.loads((small_cache / "manifest.json").read_text())
    assert man["counts"]["train"] == len(tr) and sum(man["counts"].values()) == n
    assert man["fingerprint"] and man["eegalign_version"]
    assert c.classes[int(c.meta["label"][0])] == c.meta["label_folder"][0]


def test_targets_copied_by_image_id(small_cache: Path, synthetic_dir: Path) -> None:
    c = Cache.open(small_cache)
    for route, shape in (("image", (1024,)), ("text", (77, 768))):
        assert c.has_targets(route) and c.target_shape(route) == shape
        arrays, meta = load_tensors(synthetic_dir / "targets" / f"{route}.safetensors")
        src = dict(zip(json.loads(meta["image_ids"]), arrays["embeddings"]))
        idx = np.array([0, 5, len(c.meta) - 1])
        got = c.trial_targets(route, idx)
        for k, i in enumerate(idx):
            np.testing.assert_array_equal(got[k], src[c.meta["image_id"][i]])


def test_split_and_subject_selection(small_cache: Path) -> None:
    c = Cache.open(small_cache)
    all_idx = np.concatenate([c.split_indices(s) for s in ("train", "validation", "test")])
    assert sorted(all_idx.tolist()) == list(range(len(c.meta)))
    s1 = c.split_indices("train", subjects=[1])
    assert set(c.meta["subject"][s1]) == {1} and 0 < len(s1) < len(c.split_indices("train"))


def test_reuse_and_parameter_change(synthetic_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c"
    prepare_cache(synthetic_dir, out, progress=False)
    mtime = (out / "eeg.npy").stat().st_mtime_ns
    capsys.readouterr()
    prepare_cache(synthetic_dir, out, progress=False)
    assert "reusing cache" in capsys.readouterr().err
    assert (out / "eeg.npy").stat().st_mtime_ns == mtime
    fp = json.loads((out / "manifest.json").read_text())["fingerprint"]
    with pytest.raises(DataError, match="--overwrite"):
        prepare_cache(synthetic_dir, out, norm="channel", progress=False)
    prepare_cache(synthetic_dir, out, norm="channel", overwrite=True, progress=False)
    man = json.loads((out / "manifest.json").read_text())
    assert man["fingerprint"] != fp and man["params"]["norm"] == "channel"
    assert len(json.loads((out / "stats.json").read_text())["normalisation"]["mean"]) == 128


def test_interrupted_prepare_leaves_nothing(synthetic_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import eegalign.data.cache as cache_mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cache_mod, "_write_images", boom)
    out = tmp_path / "c"
    with pytest.raises(RuntimeError, match="disk full"):
        prepare_cache(synthetic_dir, out, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the cache nor a temporary directory
    monkeypatch.undo()
    prepare_cache(synthetic_dir, out, progress=False)
    assert Cache.open(out).eeg.shape[1:] == (128, 440)


def test_not_a_cache_and_missing_targets(tmp_path: Path, synthetic_dir: Path) -> None:
    with pytest.raises(DataError, match="cache not found"):
        Cache.open(tmp_path / "none")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "eeg.npy").write_bytes(b"")
    with pytest.raises(DataError, match="not a complete eegalign cache"):
        Cache.open(tmp_path / "junk")
    with pytest.raises(DataError, match="not an eegalign cache"):
        prepare_cache(synthetic_dir, tmp_path / "junk", overwrite=True, progress=False)


def _nan_source(root: Path) -> None:
    for k, split in enumerate(("train", "validation", "test")):
        rows = make_split(3, seed=k)
        if split == "validation":
            rows["conditioning_image"][1, 5, 7] = np.nan
            rows["conditioning_image"][2, 0, 0] = np.inf
        to_dataset(rows).to_parquet(str(root / f"{split}.parquet"))


def test_nan_trials_counted_or_refused(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _nan_source(src)
    with pytest.raises(DataError, match="NaN/Inf"):
        prepare_cache(src, tmp_path / "strict", strict=True, progress=False)
    assert not (tmp_path / "strict").exists()
    capsys.readouterr()
    out = prepare_cache(src, tmp_path / "c", progress=False)
    assert "warning: replaced 2 NaN/Inf values by 0 in 2 trials" in capsys.readouterr().err
    stats = json.loads((out / "stats.json").read_text())
    assert stats["nonfinite"]["trials"] == 2 and stats["nonfinite"]["values"] == 2
    c = Cache.open(out)
    assert np.isfinite(c.eeg).all() and not c.has_targets("image")
    with pytest.raises(DataError, match="eegalign embed"):
        c.targets("image")


def test_release_cache(tmp_path: Path) -> None:
    import torch

    g = torch.Generator().manual_seed(1)
    dataset = [{"eeg": torch.randn(128, 500, generator=g), "image": i % 4, "label": i % 2, "subject": 1} for i in range(8)]
    torch.save({"dataset": dataset, "labels": ["n02106662", "n02124075"], "images": ["a", "b", "c", "d"]}, tmp_path / "r.pth")
    torch.save([{"train": [0, 1, 2, 3], "val": [4, 5], "test": [6, 7]}], tmp_path / "s.pth")
    out = prepare_cache(tmp_path / "r.pth", tmp_path / "c", format="release", splits=tmp_path / "s.pth", progress=False)
    man = json.loads((out / "manifest.json").read_text())
    assert man["format"] == "release" and "no pixels" in man["images"]
    assert list((out / "images").iterdir()) == []
    assert Cache.open(out).eeg.shape == (8, 128, 440)
