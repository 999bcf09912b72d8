"""Bad input, as a user meets it: every case exits non-zero with ONE `eegalign: error:` line,
no traceback, and no partial output. (Reader-, evaluate- and generate-specific cases live beside
their modules' tests; this file covers the cross-cutting list of the reliability issue.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _hubschema import make_split, to_dataset
from eegalign.cli import main


def _one_error_line(rc: int, err: str) -> str:
    assert rc != 0, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("eegalign: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _write_source(root: Path, mutate) -> Path:
    """A 3-split parquet source in the hub schema; ``mutate(split, rows)`` may break it."""
    root.mkdir(parents=True)
    for k, (split, n) in enumerate((("train", 6), ("validation", 3), ("test", 3))):
        rows = make_split(n, seed=k + 1)
        ds = mutate(split, rows)
        (ds if ds is not None else to_dataset(rows)).to_parquet(str(root / f"{split}.parquet"))
    return root


def _nan(split, rows):
    if split == "train":
        rows["conditioning_image"][1, 5, 7] = np.nan
        rows["conditioning_image"][2, 0, 0] = np.inf


def _ragged(split, rows):
    if split == "validation":
        ds = to_dataset(rows)
        bad = [r[:, :127].tolist() if i == 1 else r.tolist() for i, r in enumerate(rows["conditioning_image"])]
        return ds.remove_columns("conditioning_image").add_column("conditioning_image", bad)


def _flat(split, rows):
    import datasets

    ds = to_dataset(rows).remove_columns("conditioning_image")
    flat = [r.reshape(-1).tolist() for r in rows["conditioning_image"]]
    return ds.add_column("conditioning_image", flat, feature=datasets.Sequence(datasets.Value("float32")))


def _no_eeg(split, rows):
    return to_dataset(rows).remove_columns("conditioning_image")


def _empty_val(split, rows):
    if split == "validation":
        return to_dataset(rows).select([])


@pytest.mark.parametrize(
    "mutate, args, expect",
    [
        (_nan, ["--strict"], "NaN/Inf"),
        (_ragged, [], "row 1"),
        (_flat, [], "2-D"),
        (_no_eeg, [], "conditioning_image"),
        (_empty_val, [], "validation"),
    ],
    ids=["nan-strict", "ragged-channels", "unresolvable-shape", "missing-column", "empty-split"],
)
def test_prepare_refuses_bad_sources(tmp_path: Path, capsys, mutate, args, expect) -> None:
    src = _write_source(tmp_path / "src", mutate)
    out = tmp_path / "cache"
    rc = main(["data", "prepare", "--source", str(src), "--out", str(out), *args])
    line = _one_error_line(rc, capsys.readouterr().err)
    assert expect in line
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_nan_trials_are_scrubbed_and_counted(tmp_path: Path, capsys) -> None:
    import json

    src = _write_source(tmp_path / "src", _nan)
    out = tmp_path / "cache"
    assert main(["data", "prepare", "--source", str(src), "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert "2" in json.dumps(stats.get("scrub", stats))  # two non-finite values replaced and reported
    eeg = np.load(out / "eeg.npy", mmap_mode="r")
    assert np.isfinite(eeg).all()


FIT_FAST = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--model.no_such_option", "1"], "no_such_option"),
        (["--model.encoder", "eegalign.models.NoSuchEncoder"], "NoSuchEncoder"),
        (["--data.cache", "/no/such/cache"], "cache not found"),
    ],
    ids=["unknown-config-key", "unknown-model", "missing-cache"],
)
def test_fit_configuration_errors(small_cache: Path, tmp_path: Path, capsys, extra, expect) -> None:
    from importlib import resources

    cfg = str(resources.files("eegalign.configs").joinpath("demo.yaml"))
    run = tmp_path / "run"
    argv = ["fit", "--config", cfg, "--data.cache", str(small_cache), "--trainer.default_root_dir", str(run),
            *FIT_FAST, *extra]
    r = subprocess.run([sys.executable, "-m", "eegalign", *argv], capture_output=True, text=True, timeout=300)
    line = _one_error_line(r.returncode, r.stderr)
    assert expect in line
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr  # the error, not a usage dump
    assert not list(run.rglob("*.ckpt"))


def test_fit_without_targets_for_the_route(cache_copy: Path, tmp_path: Path, capsys) -> None:
    from importlib import resources

    (cache_copy / "targets" / "text.safetensors").unlink()
    cfg = str(resources.files("eegalign.configs").joinpath("demo.yaml"))
    r = subprocess.run([sys.executable, "-m", "eegalign", "fit", "--config", cfg, "--data.cache", str(cache_copy),
                        "--data.route", "text", "--trainer.default_root_dir", str(tmp_path / "run"), *FIT_FAST],
                       capture_output=True, text=True, timeout=300)
    assert "eegalign embed" in _one_error_line(r.returncode, r.stderr)


@pytest.mark.parametrize("kind", ["truncated", "foreign", "pickle"])
def test_evaluate_refuses_bad_checkpoints(small_cache: Path, tmp_path: Path, capsys, kind: str) -> None:
    import torch

    ckpt = tmp_path / "model.ckpt"
    if kind == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, ckpt)
        ckpt.write_bytes(ckpt.read_bytes()[:200])
    elif kind == "foreign":
        torch.save({"state_dict": {"w": torch.zeros(3)}, "hyper_parameters": {"lr": 1.0}}, ckpt)
    else:
        flag = tmp_path / "pwned"

        class Payload:  # unpickling this would create `flag`
            def __reduce__(self):
                return (Path.touch, (flag,))

        torch.save({"state_dict": {}, "evil": Payload()}, ckpt)
    out = tmp_path / "eval"
    rc = main(["evaluate", "--ckpt", str(ckpt), "--cache", str(small_cache), "--out", str(out)])
    _one_error_line(rc, capsys.readouterr().err)
    assert not out.exists()
    if kind == "pickle":
        assert not (tmp_path / "pwned").exists()


def test_missing_weights_offline_one_sentence(small_cache: Path, tmp_path: Path) -> None:
    """Run as a user would: a subprocess, offline, no weights anywhere."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    preds = tmp_path / "p.safetensors"
    from eegalign.predictions import Predictions

    rng = np.random.default_rng(0)
    Predictions(rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=(4, 8)).astype(np.float32),
                np.zeros(4, np.int64), np.ones(4, np.int64), ["a", "b", "c", "d"]).save(preds)
    out = tmp_path / "gen"
    r = subprocess.run([sys.executable, "-m", "eegalign", "generate", "--predictions", str(preds), "--sd-model",
                        str(tmp_path / "no-sd15"), "--out", str(out)], capture_output=True, text=True, env=env,
                       timeout=300)
    line = _one_error_line(r.returncode, r.stderr)
    assert "--sd-model" in line and not out.exists()


def test_debug_flag_shows_traceback(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "eegalign", "evaluate", "--predictions", str(tmp_path / "nope"),
                        "--out", str(tmp_path / "o"), "--debug"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" in r.stderr
