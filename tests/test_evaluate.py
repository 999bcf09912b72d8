"""`eegalign evaluate` end to end: checkpoint and predictions-file paths, files written, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from eegalign.cli import main
from eegalign.io import save_tensors
from eegalign.predictions import Predictions

FAST = ["--bootstrap", "100", "--permutations", "99", "--kway-draws", "4"]


def _write_ckpt(path: Path, out_shape: tuple[int, ...], route: str, cache: Path | None = None) -> torch.nn.Module:
    """A checkpoint in the layout `eegalign fit` writes, for a tiny registry MLP."""
    from eegalign.models import build_model, encoder_config

    torch.manual_seed(0)
    enc = build_model("mlp", n_chans=128, n_times=440, out_shape=out_shape, d_hidden=8)
    ckpt = {
        "state_dict": {f"encoder.{k}": v for k, v in enc.state_dict().items()},
        "eegalign": {"encoder": encoder_config(enc), "route": route, "loss": {"name": "mse"}, "cache": str(cache)},
        "epoch": 3,
        "global_step": 12,
    }
    torch.save(ckpt, path)
    return enc.eval()


def _toy_predictions(path: Path, route: str = "image", n_img: int = 12, subjects: int = 2) -> Predictions:
    rng = np.random.default_rng(0)
    shape = (32,) if route == "image" else (6, 8)
    img = rng.normal(size=(n_img, *shape)).astype(np.float32)
    true = np.repeat(img, subjects, axis=0)
    p = Predictions(
        pred=(true + 0.5 * rng.normal(size=true.shape)).astype(np.float32),
        true=true,
        label=np.repeat(np.arange(n_img) % 4, subjects),
        subject=np.tile(np.arange(1, subjects + 1), n_img),
        image_ids=[f"img{i}" for i in range(n_img) for _ in range(subjects)],
        route=route,
        model="toy",
    )
    p.save(path)
    return p


def test_evaluate_checkpoint_then_predictions_file(small_cache: Path, tmp_path: Path) -> None:
    from eegalign.data.cache import Cache

    enc = _write_ckpt(tmp_path / "m.ckpt", (1024,), "image", small_cache)
    out = tmp_path / "eval"
    rc = main(["evaluate", "--ckpt", str(tmp_path / "m.ckpt"), "--cache", str(small_cache), "--split", "train", "--out", str(out), *FAST])
    assert rc == 0
    for f in ("predictions.safetensors", "metrics.json", "report.md", "report.html", "figures/retrieval_vs_k.png"):
        assert (out / f).is_file(), f
    cache = Cache.open(small_cache)
    rows = cache.split_indices("train")
    preds = Predictions.load(out / "predictions.safetensors")
    assert preds.n == len(rows) and preds.classes == cache.classes and preds.cache == str(small_cache)
    assert preds.image_ids == list(cache.meta["image_id"].iloc[rows])
    with torch.inference_mode():
        first = enc(torch.from_numpy(np.ascontiguousarray(cache.eeg[rows[:2]]))).numpy()
    np.testing.assert_allclose(preds.pred[:2], first, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(preds.true, cache.trial_targets("image", rows))
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == len(rows) and m["settings"]["baseline_source"] == "train"
    assert m["run"]["checkpoint"] == str(tmp_path / "m.ckpt") and m["run"]["epoch"] == 3
    assert "2way_top1" in m["retrieval"]  # 13 train images: the 2- and 10-way fit
    # the predictions file remembers its cache: evaluating it again gives the same numbers
    again = tmp_path / "again"
    assert main(["evaluate", "--predictions", str(out / "predictions.safetensors"), "--out", str(again), *FAST]) == 0
    m2 = json.loads((again / "metrics.json").read_text())
    assert m2["retrieval"] == m["retrieval"] and m2["baselines"] == m["baselines"]
    assert m2["classification"] == m["classification"]


def test_checkpoint_errors_leave_no_output(small_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write_ckpt(tmp_path / "bad.ckpt", (512,), "image")
    out = tmp_path / "eval"
    rc = main(["evaluate", "--ckpt", str(tmp_path / "bad.ckpt"), "--cache", str(small_cache), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "predicts (512,)" in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))
    # train targets of the wrong route for a predictions file
    _toy_predictions(tmp_path / "p.safetensors")
    rc = main(["evaluate", "--predictions", str(tmp_path / "p.safetensors"), "--train-targets", str(small_cache), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "wrong route" in err and not out.exists()


def test_predictions_file_with_train_targets_file(tmp_path: Path) -> None:
    p = _toy_predictions(tmp_path / "p.safetensors", route="text")
    rng = np.random.default_rng(1)
    save_tensors(tmp_path / "train.safetensors", {"embeddings": rng.normal(size=(20, 6, 8)).astype(np.float32), "label": np.arange(20) % 4})
    out = tmp_path / "with"
    args = ["evaluate", "--predictions", str(tmp_path / "p.safetensors"), "--out", str(out), *FAST]
    assert main([*args, "--train-targets", str(tmp_path / "train.safetensors"), "--average-trials"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["route"] == "text" and m["settings"]["baseline_source"] == "train"
    assert m["retrieval"]["all_top1"]["value"] > 0.5 and m["baselines"]["permutation_p"] == pytest.approx(0.01)
    assert "retrieval_averaged" in m and (out / "figures" / "token_cosine.png").is_file()
    np.testing.assert_array_equal(Predictions.load(out / "predictions.safetensors").pred, p.pred)


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "o"
    cases = [
        (["--predictions", str(tmp_path / "missing.safetensors")], "file not found"),
        (["--predictions", str(tmp_path / "junk.safetensors")], "not a readable safetensors"),
        ([], "exactly one of"),
        (["--ckpt", "x.ckpt"], "needs --cache"),
        (["--predictions", str(tmp_path / "junk.safetensors"), "--subjects", "2"], "scored whole"),
        (["--ckpt", "x.ckpt", "--cache", str(tmp_path), "--subjects", "two"], "subject numbers or `all`"),
    ]
    (tmp_path / "junk.safetensors").write_bytes(b"\x00garbage" * 10)
    for extra, msg in cases:
        rc = main(["evaluate", *extra, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and msg in err and len(err.splitlines()) == 1, (extra, err)
        assert not out.exists()
    _toy_predictions(tmp_path / "p.safetensors")
    out.mkdir()
    rc = main(["evaluate", "--predictions", str(tmp_path / "p.safetensors"), "--out", str(out)])
    assert rc == 2 and "already exists" in capsys.readouterr().err


def test_compare_runs(tmp_path: Path) -> None:
    from eegalign.io import write_json
    from eegalign.metrics import compute_metrics

    _toy_predictions(tmp_path / "img.safetensors", "image")
    assert main(["evaluate", "--predictions", str(tmp_path / "img.safetensors"), "--out", str(tmp_path / "img"), *FAST]) == 0
    assert "split mean" in json.loads((tmp_path / "img" / "metrics.json").read_text())["settings"]["baseline_label"]
    t = _toy_predictions(tmp_path / "txt.safetensors", "text")
    m_txt, _ = compute_metrics(t.pred, t.true, t.image_ids, t.label, t.subject, n_boot=50, n_perm=49)
    write_json(tmp_path / "txt" / "metrics.json", m_txt)
    out = tmp_path / "cmp"
    assert main(["compare", str(tmp_path / "img"), str(tmp_path / "txt" / "metrics.json"), "--out", str(out)]) == 0
    import pandas as pd

    table = pd.read_csv(out / "compare.csv")
    assert list(table["run"]) == ["img", "txt"] and list(table["route"]) == ["image", "text"]
    img = json.loads((tmp_path / "img" / "metrics.json").read_text())
    assert table.loc[0, "all_top1"] == pytest.approx(img["retrieval"]["all_top1"]["value"])
    assert table.loc[1, "class_top1"] == pytest.approx(m_txt["classification"]["top1"]["value"])
    assert table.loc[0, "all_top1_chance"] == pytest.approx(1 / 12)
    assert (out / "compare.png").is_file() and "img" in (out / "compare.html").read_text()
    assert main(["compare", str(tmp_path / "nothing"), "--out", str(tmp_path / "cmp2")]) == 2
