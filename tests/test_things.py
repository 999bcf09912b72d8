"""THINGS-EEG2: the release layout (both variants), the restricted unpickler, the cache, the chain."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eegalign.cli import main
from eegalign.data.cache import Cache, prepare_cache
from eegalign.data.sources import detect_format
from eegalign.data.things import LazyArray, load_npy, take_rows
from eegalign.errors import ConfigError, DataError

VARIANTS = {"17x100": (17, 100), "63x250": (63, 250)}
TINY = dict(subjects=2, train_concepts=10, test_concepts=5, images_per_concept=2, repetitions=(2, 4))
FAST = ["--bootstrap", "50", "--permutations", "19", "--kway-draws", "2"]


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def release(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic release in the exact THINGS-EEG2 layout (17 x 100 or 63 x 250 trials)."""
    from eegalign.data.synthetic_things import write_synthetic_things

    chans, times = VARIANTS[request.param]
    out = tmp_path_factory.mktemp(f"things{request.param}") / "release"
    return write_synthetic_things(out, n_chans=chans, n_times=times, **TINY)


@pytest.fixture(scope="module")
def things_cache(release: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("thcache") / "cache"
    assert main(["data", "prepare", "--source", str(release), "--out", str(out)]) == 0  # --format auto
    return out


def _bomb_release(root: Path, where: str) -> Path:
    """A release whose ``where`` file pickles an object whose __reduce__ would run os.system."""
    from eegalign.data.synthetic_things import write_synthetic_things

    write_synthetic_things(root, n_chans=17, n_times=100, **TINY)

    class Bomb:
        def __reduce__(self):  # noqa: D105 - the attack
            return (os.system, (f"touch {root.parent / 'PWNED'}",))

    target = root / where
    payload = {"preprocessed_eeg_data": Bomb(), "ch_names": ["O1"], "times": np.zeros(1)}
    if where.endswith("image_metadata.npy"):
        payload = {"train_img_concepts": Bomb(), "train_img_files": [], "test_img_concepts": [], "test_img_files": []}
    np.save(target, payload, allow_pickle=True)
    return root


# ------------------------------------------------------------------------------------ the release files


def test_layout_is_the_release(release: Path) -> None:
    meta = load_npy(release / "image_metadata.npy")
    assert set(meta) == {"train_img_concepts", "train_img_files", "test_img_concepts", "test_img_files"}
    c, f = meta["train_img_concepts"][0], meta["train_img_files"][0]
    assert (release / "training_images" / c / f).is_file() and c.startswith("00001_")
    assert (release / "test_images" / meta["test_img_concepts"][0] / meta["test_img_files"][0]).is_file()
    assert not set(meta["train_img_concepts"]) & set(meta["test_img_concepts"])  # concept-disjoint
    d = load_npy(release / "sub-01" / "preprocessed_eeg_training.npy")
    n_img = TINY["train_concepts"] * TINY["images_per_concept"]
    assert d["preprocessed_eeg_data"].shape[:2] == (n_img, TINY["repetitions"][0])
    assert d["preprocessed_eeg_data"].dtype == np.float32
    assert len(d["ch_names"]) == d["preprocessed_eeg_data"].shape[2] and len(d["times"]) == d["preprocessed_eeg_data"].shape[3]
    t = load_npy(release / "sub-02" / "preprocessed_eeg_test.npy")["preprocessed_eeg_data"]
    assert t.shape[:2] == (TINY["test_concepts"], TINY["repetitions"][1])
    assert detect_format(release) == "things-eeg2"


def test_lazy_array_reads_the_same_bytes(release: Path) -> None:
    path = release / "sub-01" / "preprocessed_eeg_training.npy"
    eager = np.load(path, allow_pickle=True).item()["preprocessed_eeg_data"]  # our own fixture: trusted here
    lazy = load_npy(path, lazy_min_bytes=0)["preprocessed_eeg_data"]
    assert isinstance(lazy, LazyArray) and lazy.shape == eager.shape
    assert np.array_equal(lazy.rows(3, 7), eager[3:7]) and np.array_equal(lazy.rows(0, 10**6), eager)


def test_protocol2_numpy1_spelling_is_read(tmp_path: Path) -> None:
    """Files written by numpy 1 name ``numpy.core.multiarray``; older pickles spell bytes via _codecs."""
    data = {"preprocessed_eeg_data": np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4), "ch_names": ["a", "b", "c"],
            "times": np.linspace(0, 1, 4)}
    buf = io.BytesIO()
    pickle.dump(np.array(data, dtype=object), buf, protocol=2)
    payload = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    with open(tmp_path / "x.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(payload)
    out = load_npy(tmp_path / "x.npy")
    assert np.array_equal(out["preprocessed_eeg_data"], data["preprocessed_eeg_data"]) and out["ch_names"] == ["a", "b", "c"]


@pytest.mark.parametrize("where", ["sub-01/preprocessed_eeg_training.npy", "image_metadata.npy"])
def test_pickle_bomb_is_refused(tmp_path: Path, where: str) -> None:
    root = _bomb_release(tmp_path / "release", where)
    out = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-m", "eegalign", "data", "prepare", "--source", str(root), "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("eegalign: error:") and "posix.system" in lines[0], r.stderr
    assert not (tmp_path / "PWNED").exists()  # nothing was executed
    assert not out.exists() and not list(tmp_path.glob(".cache*"))  # no cache, no temporary left behind
    # the standard loader would have run it: the test's payload is a real bomb
    if where.startswith("sub-"):
        np.load(root / where, allow_pickle=True)
        assert (tmp_path / "PWNED").exists()


def test_not_a_release_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a THINGS-EEG2 release"):
        detect_format(tmp_path / "empty", "things-eeg2")


# ------------------------------------------------------------------------------------ the cache


def test_cache_one_row_per_repetition(things_cache: Path, release: Path) -> None:
    c = Cache.open(things_cache)
    m = c.meta
    assert c.manifest["format"] == "things-eeg2" and c.manifest["subjects"] == [1, 2]
    n_train_img = TINY["train_concepts"] * TINY["images_per_concept"]
    r_train, r_test = TINY["repetitions"]
    per_subject = n_train_img * r_train + TINY["test_concepts"] * r_test
    assert len(m) == 2 * per_subject and c.eeg.shape[0] == len(m)
    assert list(m.columns) == ["split", "subject", "label", "label_folder", "caption", "image_id", "repetition"]
    assert set(m.loc[m.split == "test", "repetition"]) == set(range(r_test))
    # labels: global concept index; train, validation and test concepts never collide
    by_split = {s: set(m.loc[m.split == s, "label"]) for s in ("train", "validation", "test")}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["validation"] & by_split["train"])
    assert len(by_split["validation"]) == 1 and len(by_split["test"]) == TINY["test_concepts"]  # ~10% of 10 concepts
    assert all(c.classes[lab] == f for lab, f in zip(m.label, m.label_folder))
    # image_id: one per image file, shared by every subject and repetition
    assert m.image_id.nunique() == n_train_img + TINY["test_concepts"]
    assert (m.groupby("image_id").size() == m.groupby("image_id").split.first().map({"train": 2 * r_train, "validation": 2 * r_train, "test": 2 * r_test})).all()
    row = m[m.split == "test"].iloc[0]
    assert row.caption == f"an image of {'an' if row.label_folder[6] in 'aeiou' else 'a'} {row.label_folder[6:].replace('_', ' ')}"
    assert c.has_targets("image") and c.has_targets("text") and len(list((things_cache / "images").iterdir())) == m.image_id.nunique()
    # z-score fitted on train only
    train = np.asarray(c.eeg[m.split.to_numpy() == "train"], dtype=np.float64)
    assert abs(train.mean()) < 1e-3 and abs(train.std() - 1) < 1e-3
    # rows are the release's trials in order: subject 2's test image 3, repetition 1
    raw = take_rows(load_npy(release / "sub-02" / "preprocessed_eeg_test.npy")["preprocessed_eeg_data"], 3, 4)[0, 1]
    st = c.stats["normalisation"]
    i = np.flatnonzero((m.subject == 2) & (m.split == "test"))[3 * r_test + 1]
    assert np.allclose(c.eeg[i], (raw - st["mean"]) / st["std"], atol=1e-4)


def test_subjects_and_validation_seed(release: Path, tmp_path: Path) -> None:
    a = prepare_cache(release, tmp_path / "a", subjects=[2], val_seed=1, progress=False)
    m = Cache.open(a).meta
    assert set(m.subject) == {2}
    with pytest.raises(DataError, match="no subject"):
        prepare_cache(release, tmp_path / "b", subjects=[7], progress=False)
    assert not (tmp_path / "b").exists()


def test_streamed_stats_match_in_memory(release: Path, tmp_path: Path) -> None:
    from eegalign.data.preprocess import fit_zscore

    c = Cache.open(prepare_cache(release, tmp_path / "c", norm="channel", bandpass=(1.0, 30.0), progress=False))
    x = np.asarray(c.eeg)
    z = fit_zscore(x, np.flatnonzero(c.meta.split.to_numpy() == "train"), "channel")
    assert np.allclose(z["mean"], 0, atol=1e-4) and np.allclose(z["std"], 1, atol=1e-4)
    assert c.stats["sfreq"] == float(c.n_times)  # taken from the files' times (100 or 250 Hz)


# ------------------------------------------------------------------------------------ training and evaluation


def test_datamodule_memmap_and_repetition_averaging(things_cache: Path) -> None:
    from eegalign.data.datamodule import EEGDataModule

    ram = EEGDataModule(str(things_cache), in_memory=True)
    mm = EEGDataModule(str(things_cache), in_memory=False)
    pos = [5, 0, 17, 3]
    a, b = ram.dataset("train")[pos], mm.dataset("train")[pos]
    order = np.argsort(a["index"].numpy())
    assert np.array_equal(a["eeg"].numpy()[order], b["eeg"].numpy()[np.argsort(b["index"].numpy())])
    avg = EEGDataModule(str(things_cache), average_repetitions=True)
    ds = avg.dataset("train")
    m = avg.cache.meta
    n_img = m[m.split == "train"].image_id.nunique()
    assert len(ds) == 2 * n_img  # one averaged trial per image and subject
    first = ds[[0]]
    r = int(first["index"][0])
    rows = np.flatnonzero((m.subject == m.subject[r]).to_numpy() & (m.image_id == m.image_id[r]).to_numpy())
    assert len(rows) == TINY["repetitions"][0]
    assert np.allclose(first["eeg"][0].numpy(), np.asarray(avg.cache.eeg[rows]).mean(axis=0), atol=1e-5)
    assert len(avg.dataset("test")) == 2 * TINY["test_concepts"] * TINY["repetitions"][1]  # test stays per trial


@pytest.mark.parametrize("protocol", ["intra", "loso"])
def test_chain_fit_evaluate_all_way_with_averaging(things_cache: Path, tmp_path: Path, protocol: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = Path(__file__).resolve().parents[1] / "src" / "eegalign" / "configs" / "things_nice.yaml"
    select = ["--data.subjects", "[1]"] if protocol == "intra" else ["--data.leave_out_subject", "2"]
    run = tmp_path / "run"
    assert main(["fit", "--config", str(config), "--data.cache", str(things_cache), *select,
                 "--model.encoder.init_args.preset", "small", "--data.batch_size", "16", "--trainer.max_epochs", "1",
                 "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(run)]) == 0
    out = tmp_path / "eval"
    capsys.readouterr()
    assert main(["evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--cache", str(things_cache),
                 "--split", "test", "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "repetition-averaged" in printed
    # the run's own test subject by default: subject 1 (intra-subject) or the left-out subject 2 (LOSO)
    test_subject = 1 if protocol == "intra" else 2
    assert f"evaluating subject(s) [{test_subject}] of the test split" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    n_test, r_test = TINY["test_concepts"], TINY["repetitions"][1]
    ra = metrics["retrieval_averaged"]
    assert ra["by"] == "image_subject" and ra["n"] == n_test  # one subject's test trials, repetitions averaged
    assert ra["all_top1"]["chance"] == pytest.approx(1 / n_test) and "4way_top1" in ra and "2way_top1" in ra
    assert metrics["n"] == n_test * r_test and metrics["n_images"] == n_test and metrics["n_subjects"] == 1
    assert metrics["run"]["subjects"]["subjects"] == [test_subject]
    protocol_name = "subjects" if protocol == "intra" else "leave-one-subject-out"
    assert f"chosen by the checkpoint ({protocol_name})" in (out / "report.md").read_text()
    # --subjects all evaluates every subject's test trials
    assert main(["evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--cache", str(things_cache),
                 "--out", str(tmp_path / "all"), "--subjects", "all", *FAST]) == 0
    assert json.loads((tmp_path / "all" / "metrics.json").read_text())["n"] == 2 * n_test * r_test
    assert "classification" not in metrics  # zero-shot: no test concept has a training prototype
    assert "retrieval_averaged" in metrics["baselines"]["train_mean"]
    report = (out / "report.md").read_text()
    assert "Published THINGS-EEG2 figures (measured elsewhere)" in report and "15.6%" in report and "50.9%" in report
    assert f"{n_test}-way, not 200-way" in report
    # `eegalign test` of the checkpoint: refused on another subject selection than its run's, accepted on its own
    ckpt = str(run / "checkpoints" / "last.ckpt")
    common = ["--config", str(config), "--data.cache", str(things_cache), "--model.encoder.init_args.preset", "small",
              "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false",
              "--trainer.enable_model_summary", "false", "--ckpt_path", ckpt]
    capsys.readouterr()
    assert main(["test", *common, "--trainer.default_root_dir", str(tmp_path / "t1")]) != 0
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("eegalign: error:")]
    assert len(errors) == 1 and "--allow-subject-mismatch" in errors[0]
    assert main(["test", *common, *select, "--trainer.default_root_dir", str(tmp_path / "t2")]) == 0
    # --no-average-repetitions turns it off
    assert main(["evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--cache", str(things_cache),
                 "--out", str(tmp_path / "e2"), "--no-average-repetitions", *FAST]) == 0
    assert "retrieval_averaged" not in json.loads((tmp_path / "e2" / "metrics.json").read_text())


def test_nice_shapes_on_both_montages() -> None:
    import torch

    from eegalign.models import build_model, encoder_config

    for preset in ("reference", "small"):
        for c, t in VARIANTS.values():
            enc = build_model("nice", preset=preset, n_chans=c, n_times=t).eval()
            assert enc(torch.randn(2, c, t)).shape == (2, 1024)
    ref = build_model("nice", preset="reference", n_chans=63, n_times=250)
    assert ref.steps * ref.hyper["n_filters"] == 1440  # the paper's 1440 features on 63 x 250
    assert build_model("nice", preset="reference", n_chans=17, n_times=100).steps == 6
    again = build_model(**encoder_config(build_model("nice", preset="small", n_chans=17, n_times=100, n_filters=4)))
    assert again.hyper["n_filters"] == 4
    with pytest.raises(ConfigError, match="no option"):
        build_model("nice", preset="small", n_chans=17, n_times=100, no_such=1)


def test_embed_works_on_things_images_and_captions(things_cache: Path, tmp_path: Path, tiny_models: dict) -> None:
    import shutil

    from eegalign.data.targets import embed_images, embed_texts
    from eegalign.io import load_tensors

    cache = tmp_path / "cache"
    shutil.copytree(things_cache, cache)
    shutil.rmtree(cache / "targets")
    c = Cache.open(cache)
    img, _ = load_tensors(embed_images(c, str(tiny_models["vision"]), batch_size=8, device="cpu", progress=False))
    txt, meta = load_tensors(embed_texts(c, str(tiny_models["sd"]), batch_size=8, device="cpu", progress=False))
    n = c.meta.image_id.nunique()
    assert img["embeddings"].shape[0] == n and txt["embeddings"].shape[:2] == (n, 77)
    assert set(json.loads(meta["image_ids"])) == set(c.meta.image_id)


from test_targets import tiny_models  # noqa: E402,F401  (the tiny CLIP models fixture)


@pytest.mark.slow
def test_demo_things_runs(tmp_path: Path) -> None:
    assert main(["demo", "--dataset", "things", "--out", str(tmp_path / "demo"), "--epochs", "1"]) == 0
    m = json.loads((tmp_path / "demo" / "evaluation" / "metrics.json").read_text())
    assert m["retrieval_averaged"]["all_top1"]["chance"] == pytest.approx(0.1)
