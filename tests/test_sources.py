"""Readers: every source layout -> the same canonical records (channels first, shared image ids)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from _hubschema import make_split, to_dataset, write_parquet_dir

from eegalign.data.sources import (
    detect_format,
    eeg_from_arrow,
    image_id_from_bytes,
    image_id_from_name,
    read_release,
    read_source,
)
from eegalign.errors import DataError


def _check(records, rows: dict) -> None:
    truth = np.concatenate([rows[s]["eeg_ct"] for s in ("train", "validation", "test")])
    assert records.eeg.dtype == np.float32
    assert records.eeg.shape == truth.shape == (12, 128, 440)
    np.testing.assert_array_equal(records.eeg, truth)
    meta = records.meta
    assert list(meta.columns) == ["split", "subject", "label", "label_folder", "caption", "image_id"]
    assert meta["split"].tolist() == ["train"] * 6 + ["validation"] * 3 + ["test"] * 3
    # trials that showed the same picture share an id; the id is the sha1 of the JPEG bytes
    ids = meta["image_id"].tolist()
    assert ids[0] == ids[3] and ids[0] != ids[1]
    assert ids[0] == image_id_from_bytes(rows["train"]["image"][0]["bytes"])
    assert len(records.images) == len(set(ids)) == 9
    assert records.images[ids[0]][:3] == b"\xff\xd8\xff"
    assert records.classes == ["n02106662", "n02124075", "n02281787"]


def test_parquet_nested_time_first(tmp_path: Path) -> None:
    rows = write_parquet_dir(tmp_path, layout="nested", time_first=True)
    assert detect_format(tmp_path) == "parquet"
    rec = read_source(tmp_path, progress=False)
    _check(rec, rows)
    assert rec.notes["transposed"] is True


def test_parquet_array_channels_first_hub_layout(tmp_path: Path) -> None:
    rows = write_parquet_dir(tmp_path, layout="array", hub_layout=True, time_first=False)
    rec = read_source(tmp_path, progress=False)
    _check(rec, rows)
    assert rec.notes["transposed"] is False


def test_save_to_disk_array_time_first(tmp_path: Path) -> None:
    import datasets

    rows = {s: make_split(n, seed=k + 1) for k, (s, n) in enumerate(zip(("train", "validation", "test"), (6, 3, 3)))}
    dd = datasets.DatasetDict({s: to_dataset(r, "array") for s, r in rows.items()})
    dd.save_to_disk(str(tmp_path / "disk"))
    assert detect_format(tmp_path / "disk") == "disk"
    _check(read_source(tmp_path / "disk", progress=False), rows)


def test_synthetic_image_ids_match(synthetic_dir: Path) -> None:
    from eegalign.data.synthetic import image_id_from_bytes as synth_id

    rec = read_source(synthetic_dir, progress=False)
    for iid, data in list(rec.images.items())[:3]:
        assert synth_id(data) == iid


def test_orientation_with_expected_channels() -> None:
    import pyarrow as pa

    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    arr = pa.array(x.tolist())
    raw = eeg_from_arrow(arr, expect=None, where="t")
    np.testing.assert_array_equal(raw, x)
    # the reader decides orientation by the expected channel count, else the smaller dim
    from eegalign.data.sources import _orientation

    assert _orientation((3, 5), None, "t") is False
    assert _orientation((5, 3), None, "t") is True
    assert _orientation((3, 5), 5, "t") is True
    with pytest.raises(DataError, match="no dimension of 7 channels"):
        _orientation((3, 5), 7, "t")


def test_ragged_rows_named(tmp_path: Path) -> None:
    import pyarrow as pa

    good = np.zeros((4, 5), dtype=np.float32).tolist()
    short_row = np.zeros((3, 5), dtype=np.float32).tolist()  # mismatched channel count
    ragged = [list(r) for r in good]
    ragged[2] = ragged[2][:4]
    with pytest.raises(DataError, match="row 7 has EEG shape 3 x 5, expected 4 x 5"):
        eeg_from_arrow(pa.array([good, short_row]), expect=(4, 5), where="x", first_row=6)
    with pytest.raises(DataError, match="row 1 is ragged"):
        eeg_from_arrow(pa.array([good, ragged, good]), expect=None, where="x")


def _write_rows(path: Path, rows: dict, drop: str | None = None) -> None:
    ds = to_dataset(rows, "nested")
    if drop:
        ds = ds.remove_columns(drop)
    ds.to_parquet(str(path))


@pytest.mark.parametrize("problem,match", [
    ("missing_column", "missing column 'caption'"),
    ("empty_split", "the test split is empty"),
    ("no_split", "no validation split"),
    ("corrupt", "not a readable parquet file"),
    ("channels", "test.parquet: row 0 has EEG shape 440 x 64, expected 440 x 128"),
])
def test_bad_parquet_sources(tmp_path: Path, problem: str, match: str) -> None:
    sizes = {"train": 2, "validation": 2, "test": 2}
    if problem == "empty_split":
        sizes["test"] = 0
    for k, (split, n) in enumerate(sizes.items()):
        if problem == "no_split" and split == "validation":
            continue
        c = 64 if (problem == "channels" and split == "test") else 128
        rows = make_split(n, seed=k, c=c, t=440)
        _write_rows(tmp_path / f"{split}.parquet", rows, drop="caption" if problem == "missing_column" and split == "train" else None)
    if problem == "corrupt":
        (tmp_path / "validation.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match=match):
        read_source(tmp_path, progress=False)


def test_missing_source_and_offline_hub(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="source not found"):
        read_source(tmp_path / "nope", progress=False)
    with pytest.raises(DataError, match="no train/validation/test parquet"):
        read_source(tmp_path, progress=False)
    with pytest.raises(DataError, match="could not load the hub data set 'no-such-owner/no-such-dataset'.*--source PATH"):
        read_source("no-such-owner/no-such-dataset", progress=False)


# -- the original release -------------------------------------------------------------------


def _release(tmp_path: Path, extra: object | None = None) -> tuple[Path, Path, list]:
    import torch

    g = torch.Generator().manual_seed(0)
    lengths = [500, 449, 600, 601, 460, 520, 480, 510]
    dataset = [
        {"eeg": torch.randn(128, n, generator=g), "image": i % 3, "label": i % 2, "subject": 1 + i % 2}
        for i, n in enumerate(lengths)
    ]
    obj = {"dataset": dataset, "labels": ["n02106662", "n02124075"], "images": ["n02106662_1", "n02124075_2", "n02106662_3"]}
    if extra is not None:
        obj["extra"] = extra
    pth = tmp_path / "eeg_55_95_std.pth"
    torch.save(obj, pth)
    splits = tmp_path / "block_splits.pth"
    torch.save({"splits": [{"train": [0, 1, 2, 3], "val": [4, 5], "test": [6, 7]}]}, splits)
    return pth, splits, dataset


def test_release_reader(tmp_path: Path) -> None:
    pth, splits, dataset = _release(tmp_path)
    assert detect_format(pth) == "release"
    rec = read_source(pth, format="release", splits=splits, fold=0, progress=False)
    # trials 1 (449 samples) and 3 (601) are dropped; the rest cropped to samples 20:460
    assert rec.eeg.shape == (6, 128, 440)
    np.testing.assert_array_equal(rec.eeg[0], dataset[0]["eeg"][:, 20:460].numpy())
    np.testing.assert_array_equal(rec.eeg[1], dataset[2]["eeg"][:, 20:460].numpy())
    assert rec.meta["split"].tolist() == ["train", "train", "validation", "validation", "test", "test"]
    assert rec.meta["caption"][0] == "an image of a German shepherd"
    assert rec.meta["image_id"][0] == image_id_from_name("n02106662_1")
    assert rec.meta["image_id"][0] == rec.meta["image_id"][4]  # trials 0 and 6 show image 0
    assert rec.images == {} and "no pixels" in rec.notes["images"]
    assert rec.notes["dropped_by_length"] == 2


def test_release_trials_too_short_for_the_crop_are_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    pth, splits, dataset = _release(tmp_path)
    dataset[5]["eeg"] = dataset[5]["eeg"][:, :455]  # kept by the 450..600 rule, but ends before sample 460
    obj = torch.load(pth, weights_only=True)
    obj["dataset"] = dataset
    torch.save(obj, pth)
    rec = read_source(pth, format="release", splits=splits, fold=0, progress=False)
    assert rec.eeg.shape == (5, 128, 440) and rec.notes["too_short_for_crop"] == 1
    assert rec.notes["dropped_by_length"] == 3
    assert "1 trial(s) of 450..459 samples are too short" in capsys.readouterr().err


def test_release_refuses_pickle_and_wrong_format(tmp_path: Path) -> None:
    import torch

    pth, splits, _ = _release(tmp_path, extra=argparse.Namespace(x=1))
    with pytest.raises(DataError, match="refuses to unpickle"):
        read_release(pth, splits=splits, progress=False)
    bad = tmp_path / "other.pth"
    torch.save({"weights": torch.zeros(3)}, bad)
    with pytest.raises(DataError, match="not the CVPR40 release format"):
        read_release(bad, splits=splits, progress=False)
    pth2, _, _ = _release(tmp_path / "ok" if (tmp_path / "ok").mkdir() is None else tmp_path)
    with pytest.raises(DataError, match="needs its splits file"):
        read_release(pth2, splits=None, progress=False)
    with pytest.raises(DataError, match="no fold 3"):
        read_release(pth2, splits=splits, fold=3, progress=False)


def test_hub_id_goes_through_load_dataset(monkeypatch) -> None:
    """A hub id is read with datasets.load_dataset (stubbed here: tests never download)."""
    import datasets

    rows = {s: make_split(n, seed=k + 1) for k, (s, n) in enumerate(zip(("train", "validation", "test"), (6, 3, 3)))}
    dd = datasets.DatasetDict({s: to_dataset(r, "nested") for s, r in rows.items()})
    asked = []
    monkeypatch.setattr(datasets, "load_dataset", lambda hub_id, revision=None: asked.append(hub_id) or dd)
    assert detect_format("luigi-s/EEG_Image_CVPR_ALL_subj") == "hub"
    rec = read_source("luigi-s/EEG_Image_CVPR_ALL_subj", progress=False)
    assert asked == ["luigi-s/EEG_Image_CVPR_ALL_subj"] and rec.format == "hub"
    _check(rec, rows)
