"""Tests of the synthetic EEG simulator: hub schema, splits, determinism, targets, and signal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from eegalign.data.classes import cvpr40_classes
from eegalign.data.synthetic import SPLITS, image_id_from_bytes, write_synthetic_dataset
from eegalign.errors import ConfigError, DataError
from eegalign.io import load_tensors

COLUMNS = ["image", "conditioning_image", "caption", "label_folder", "label", "subject"]
TINY = dict(subjects=2, classes=4, images_per_class=4, seed=0)  # same as tests/conftest.py


def read_split(root: Path, split: str) -> dict:
    """One split as numpy: eeg (N, T, C), label, subject, image_id, caption, label_folder."""
    t = pq.read_table(root / f"{split}.parquet")
    col = t.column("conditioning_image").combine_chunks()
    if hasattr(col, "storage"):  # Array2D extension type -> its list<list<float>> storage
        col = col.storage
    n = len(t)
    eeg = np.asarray(col.flatten().flatten()).reshape(n, 440, -1) if n else np.zeros((0, 440, 128))
    return {
        "eeg": eeg,
        "label": np.asarray(t.column("label")),
        "subject": np.asarray(t.column("subject")),
        "image_id": [image_id_from_bytes(r["bytes"]) for r in t.column("image").to_pylist()],
        "image_bytes": [r["bytes"] for r in t.column("image").to_pylist()],
        "caption": t.column("caption").to_pylist(),
        "label_folder": t.column("label_folder").to_pylist(),
    }


@pytest.fixture(scope="module")
def splits(synthetic_dir: Path) -> dict[str, dict]:
    return {s: read_split(synthetic_dir, s) for s in SPLITS}


def test_schema_nested_layout_loads_like_the_hub(synthetic_dir: Path, tmp_path: Path) -> None:
    import datasets

    ds = datasets.load_dataset(
        "parquet", data_files={s: str(synthetic_dir / f"{s}.parquet") for s in SPLITS}, cache_dir=str(tmp_path)
    )
    assert set(ds) == set(SPLITS)
    for split in SPLITS:
        f = ds[split].features
        assert list(f) == COLUMNS
        assert isinstance(f["image"], datasets.Image)
        assert f["conditioning_image"].feature.feature == datasets.Value("float32")
        assert f["caption"] == datasets.Value("string") and f["label_folder"] == datasets.Value("string")
        assert f["label"] == datasets.Value("int32") and f["subject"] == datasets.Value("int32")
    row = ds["train"].with_format("numpy")[0]
    assert row["conditioning_image"].shape == (440, 128)
    assert row["conditioning_image"].dtype == np.float32
    assert np.isfinite(row["conditioning_image"]).all()
    assert len(ds["train"]) + len(ds["validation"]) + len(ds["test"]) == 2 * 4 * 4


def test_schema_array_layout(tmp_path: Path) -> None:
    import datasets

    out = write_synthetic_dataset(
        tmp_path / "arr", subjects=1, classes=2, images_per_class=3, eeg_layout="array", progress=False
    )
    ds = datasets.load_dataset("parquet", data_files=str(out / "train.parquet"), cache_dir=str(tmp_path / "c"))
    f = ds["train"].features
    assert list(f) == COLUMNS
    assert f["conditioning_image"] == datasets.Array2D(shape=(440, 128), dtype="float32")
    x = np.asarray(ds["train"].with_format("numpy")[0]["conditioning_image"])
    assert x.shape == (440, 128) and x.dtype == np.float32
    # Same seed and size in the nested layout gives the same numbers.
    nested = write_synthetic_dataset(tmp_path / "nest", subjects=1, classes=2, images_per_class=3, progress=False)
    np.testing.assert_array_equal(read_split(out, "test")["eeg"], read_split(nested, "test")["eeg"])


def test_split_by_image_stratified_and_every_subject_sees_every_image(splits: dict) -> None:
    ids = {s: set(splits[s]["image_id"]) for s in SPLITS}
    assert all(ids[s] for s in SPLITS), "every split must hold images"
    assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"])
    assert not (ids["validation"] & ids["test"])
    assert sum(len(v) for v in ids.values()) == 4 * 4
    for s in SPLITS:
        pairs = list(zip(splits[s]["subject"].tolist(), splits[s]["image_id"]))
        assert len(pairs) == len(set(pairs)), "each subject sees each image once"
        assert set(pairs) == {(subj, i) for subj in (1, 2) for i in ids[s]}
    # stratified: training images per class differ by at most one
    train_cls = {}
    for i, lab in zip(splits["train"]["image_id"], splits["train"]["label"]):
        train_cls.setdefault(int(lab), set()).add(i)
    sizes = [len(v) for v in train_cls.values()]
    assert len(sizes) == 4 and max(sizes) - min(sizes) <= 1


def test_labels_captions_and_jpeg_images(splits: dict) -> None:
    from PIL import Image

    table = cvpr40_classes()
    for s in SPLITS:
        d = splits[s]
        for lab, wnid, cap in zip(d["label"], d["label_folder"], d["caption"]):
            assert 0 <= lab < 4
            assert wnid == table[lab].wnid
            assert cap.endswith(table[lab].name) and cap.startswith("a")
        for b in d["image_bytes"][:4]:
            im = Image.open(io.BytesIO(b))
            assert im.format == "JPEG" and im.size == (128, 128) and im.mode == "RGB"
    # images of one class share a look but are not identical; different classes differ
    d = splits["train"]
    by_cls = {}
    for b, lab in zip(d["image_bytes"], d["label"]):
        by_cls.setdefault(int(lab), []).append(np.asarray(Image.open(io.BytesIO(b)), dtype=float))
    assert len({image_id_from_bytes(b) for b in d["image_bytes"]}) == len(set(d["image_id"]))
    means = np.stack([np.mean(v, axis=(0, 1, 2)) for v in by_cls.values()])  # (classes, 3) mean colour
    assert np.ptp(means, axis=0).max() > 10


def test_targets_match_parquet_image_ids(synthetic_dir: Path, splits: dict) -> None:
    all_ids = set().union(*(set(splits[s]["image_id"]) for s in SPLITS))
    for route, shape in (("image", (1024,)), ("text", (77, 768))):
        arrays, meta = load_tensors(synthetic_dir / "targets" / f"{route}.safetensors")
        ids = json.loads(meta["image_ids"])
        assert arrays["embeddings"].shape == (len(ids), *shape)
        assert arrays["embeddings"].dtype == np.float32
        assert set(ids) == all_ids and len(ids) == len(all_ids)
        assert meta["model"] == "synthetic:0" and meta["route"] == route
    img, _ = load_tensors(synthetic_dir / "targets" / "image.safetensors")
    np.testing.assert_allclose(np.linalg.norm(img["embeddings"], axis=1), 1.0, rtol=1e-5)
    info = json.loads((synthetic_dir / "synthetic.json").read_text())
    assert info["params"]["subjects"] == 2 and info["params"]["seed"] == 0
    assert info["classes"] == [c.wnid for c in cvpr40_classes()[:4]]


def test_text_target_structure(tmp_path: Path) -> None:
    out = write_synthetic_dataset(tmp_path / "t", subjects=1, classes=6, images_per_class=4, progress=False)
    arrays, meta = load_tensors(out / "targets" / "text.safetensors")
    h = arrays["embeddings"].astype(np.float64)  # (M, 77, 768)
    info = json.loads((out / "synthetic.json").read_text())
    label = np.array([info["images"][j]["label"] for j in range(len(h))])
    assert [r["image_id"] for r in info["images"]] == json.loads(meta["image_ids"])
    norms = np.linalg.norm(h, axis=-1)
    assert 20 < norms.mean() < 40
    np.testing.assert_allclose(h[:, 0], np.broadcast_to(h[0, 0], h[:, 0].shape), atol=1e-4)  # start token
    pad_spread = np.linalg.norm(h[:, 20:] - h[:, 20:].mean(0), axis=-1).mean()
    assert pad_spread < 0.1 * norms[:, 20:].mean(), "padding is nearly constant"
    assert pad_spread > 0, "padding still carries a trace of the caption"
    cls_tok = h[:, 5:8].reshape(len(h), -1)
    within = np.mean([np.linalg.norm(cls_tok[a] - cls_tok[b]) for a in range(len(h)) for b in range(len(h))
                      if a != b and label[a] == label[b]])
    between = np.mean([np.linalg.norm(cls_tok[a] - cls_tok[b]) for a in range(len(h)) for b in range(len(h))
                       if label[a] != label[b]])
    assert between > 1.5 * within > 0, "class tokens separate classes and still vary by image"


def test_deterministic_per_seed(synthetic_dir: Path, splits: dict, tmp_path: Path) -> None:
    again = write_synthetic_dataset(tmp_path / "again", **TINY, progress=False)
    other = write_synthetic_dataset(tmp_path / "other", **{**TINY, "seed": 1}, progress=False)
    for s in SPLITS:
        a = read_split(again, s)
        assert a["eeg"].tobytes() == splits[s]["eeg"].tobytes()
        assert a["image_id"] == splits[s]["image_id"]
    for route in ("image", "text"):  # (safetensors header order is not stable: compare contents)
        a, meta_a = load_tensors(again / "targets" / f"{route}.safetensors")
        b, meta_b = load_tensors(synthetic_dir / "targets" / f"{route}.safetensors")
        assert a["embeddings"].tobytes() == b["embeddings"].tobytes() and meta_a == meta_b
    o = read_split(other, "train")["eeg"]
    t = splits["train"]["eeg"]
    assert o.shape[1:] == t.shape[1:] and not np.allclose(o[: len(t)], t[: len(o)])


def test_errors(tmp_path: Path) -> None:
    out = write_synthetic_dataset(tmp_path / "d", subjects=1, classes=1, images_per_class=3, progress=False)
    with pytest.raises(DataError, match="already exists"):
        write_synthetic_dataset(out, subjects=1, classes=1, images_per_class=3, progress=False)
    write_synthetic_dataset(out, subjects=1, classes=2, images_per_class=3, overwrite=True, progress=False)
    assert json.loads((out / "synthetic.json").read_text())["params"]["classes"] == 2
    for bad in (dict(classes=41), dict(subjects=0), dict(eeg_layout="flat"), dict(split_fractions=(0.5, 0.1, 0.1)),
                dict(snr=0.0), dict(classes=1, images_per_class=2)):
        with pytest.raises(ConfigError):
            write_synthetic_dataset(tmp_path / "bad", **{"classes": 2, "images_per_class": 3, **bad}, progress=False)
    assert not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def _features(eeg: np.ndarray) -> np.ndarray:
    """(N, T, C) -> time-averaged windows of 20 samples, flattened: (N, 22 * C)."""
    n, t, c = eeg.shape
    return eeg[:, : t // 20 * 20].reshape(n, t // 20, 20, c).mean(2).reshape(n, -1)


def ridge_retrieval(out: Path, lam: float = 1e3, n_shuffles: int = 3) -> tuple[float, list[float], float]:
    """Held-out top-1 retrieval of a ridge EEG -> image-target map: (real, shuffled controls, chance)."""
    arrays, meta = load_tensors(out / "targets" / "image.safetensors")
    y, row = arrays["embeddings"], {k: i for i, k in enumerate(json.loads(meta["image_ids"]))}
    tr, te = read_split(out, "train"), read_split(out, "test")
    f_tr, f_te = _features(tr["eeg"]), _features(te["eeg"])
    mu, sd = f_tr.mean(0), f_tr.std(0) + 1e-6
    f_tr, f_te = (f_tr - mu) / sd, (f_te - mu) / sd
    y_tr = y[[row[i] for i in tr["image_id"]]]
    center = y_tr.mean(0)
    cands = sorted(set(te["image_id"]))
    cand = y[[row[i] for i in cands]] - center
    cand /= np.linalg.norm(cand, axis=1, keepdims=True)
    truth = np.array([cands.index(i) for i in te["image_id"]])
    k = f_tr @ f_tr.T  # dual ridge: n_train x n_train

    def top1(targets: np.ndarray) -> float:
        alpha = np.linalg.solve(k + lam * np.eye(len(k)), targets - center)
        pred = f_te @ (f_tr.T @ alpha)
        return float(np.mean((pred @ cand.T).argmax(1) == truth))

    rng = np.random.default_rng(0)
    shuffled = [top1(y_tr[rng.permutation(len(y_tr))]) for _ in range(n_shuffles)]
    return top1(y_tr), shuffled, 1.0 / len(cands)


def test_eeg_carries_decodable_image_signal(tmp_path: Path) -> None:
    """Ridge regression EEG -> image target retrieves held-out images better than a shuffled control."""
    out = write_synthetic_dataset(tmp_path / "sig", subjects=2, classes=10, images_per_class=10, progress=False)
    real, shuffled, chance = ridge_retrieval(out)
    assert real >= 3 * chance, f"top-1 {real:.2f} vs chance {chance:.2f}"
    assert real > max(shuffled) + 0.15, f"top-1 {real:.2f} vs shuffled {shuffled}"


def test_stimuli_are_the_same_on_every_call(synthetic_dir: Path) -> None:
    """SyntheticWorld.stimuli() is a function of the seed: a second call gives the same JPEGs (and image ids)."""
    from eegalign.data.synthetic import SynthParams, SyntheticWorld

    world = SyntheticWorld(SynthParams(**TINY))
    first, second = world.stimuli(), world.stimuli()
    assert first == second
    info = json.loads((synthetic_dir / "synthetic.json").read_text())
    assert [image_id_from_bytes(b) for b in second] == [r["image_id"] for r in info["images"]]


@pytest.mark.parametrize(
    "fractions, n_img",
    [((0.1, 0.8, 0.1), 5), ((0.1, 0.8, 0.1), 3), ((0.1, 0.45, 0.45), 3), ((0.4, 0.55, 0.05), 5), ((0.8, 0.2, 0.0), 2),
     ((0.8, 0.1, 0.1), 3), ((0.8, 0.1, 0.1), 200)],
)
def test_every_split_with_a_positive_fraction_gets_an_image(fractions, n_img) -> None:
    from eegalign.data.synthetic import _stratified_split

    split = _stratified_split(np.random.default_rng(0), 1, n_img, fractions)
    counts = np.bincount(split, minlength=3)
    assert counts.sum() == n_img
    for j, f in enumerate(fractions):
        assert (counts[j] >= 1) if f > 0 else (counts[j] == 0), (fractions, n_img, counts)
    if n_img >= 20:  # (tiny sets cannot follow the fractions closely)
        assert abs(counts - np.asarray(fractions) * n_img).max() <= 1, counts


def test_small_train_fraction_still_writes_a_train_split(tmp_path: Path) -> None:
    out = write_synthetic_dataset(tmp_path / "d", subjects=1, classes=1, images_per_class=5,
                                  split_fractions=(0.1, 0.8, 0.1), progress=False)
    info = json.loads((out / "synthetic.json").read_text())
    assert min(info["n_images"].values()) >= 1 and (out / "train.parquet").is_file()


def test_epoch_shorter_than_the_evoked_response_is_a_config_error(tmp_path: Path) -> None:
    """An epoch that ends before the first component (latency >= 80 ms) has no signal: one clear error, not 1/0."""
    for kw in (dict(n_times=50), dict(n_times=7, sfreq=100.0)):
        with pytest.raises(ConfigError, match="ends before the first evoked component"):
            write_synthetic_dataset(tmp_path / "short", subjects=1, classes=2, images_per_class=3, progress=False, **kw)
    assert not (tmp_path / "short").exists()


def test_negative_seed_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="seed must be a non-negative integer"):
        write_synthetic_dataset(tmp_path / "neg", subjects=1, classes=2, images_per_class=3, seed=-1, progress=False)
    assert not (tmp_path / "neg").exists()
