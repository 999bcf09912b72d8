"""`eegalign data synth|prepare` and `eegalign embed` through the CLI: happy paths and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eegalign.cli import main


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected an error line"
    return err[-1]


def test_synth_then_prepare(tmp_path: Path, capsys) -> None:
    ds = tmp_path / "ds"
    assert main(["data", "synth", "--out", str(ds), "--subjects", "1", "--classes", "2", "--images-per-class", "3",
                 "--eeg-layout", "array"]) == 0
    assert {"train.parquet", "validation.parquet", "test.parquet"} <= {p.name for p in ds.iterdir()}
    out = tmp_path / "cache"
    assert main(["data", "prepare", "--source", str(ds), "--out", str(out), "--bandpass", "1", "40",
                 "--norm", "channel"]) == 0
    assert f"cache ready: {out}" in capsys.readouterr().out
    stats = json.loads((out / "stats.json").read_text())
    assert stats["bandpass"]["low"] == 1.0 and stats["normalisation"]["norm"] == "channel"
    assert (out / "targets" / "image.safetensors").is_file()
    # same inputs again: reused; different parameters: refused without --overwrite
    assert main(["data", "prepare", "--source", str(ds), "--out", str(out), "--bandpass", "1", "40", "--norm", "channel"]) == 0
    assert "reusing cache" in capsys.readouterr().err
    assert main(["data", "prepare", "--source", str(ds), "--out", str(out)]) == 2
    assert "--overwrite" in _err_line(capsys)


@pytest.mark.parametrize("case", ["missing", "hub", "corrupt", "pickle", "not_release", "bad_band"])
def test_prepare_bad_input(tmp_path: Path, case: str, capsys) -> None:
    import argparse

    import torch

    src: Path | str = tmp_path / "src"
    extra: list[str] = []
    expect = ""
    if case == "missing":
        expect = "source not found"
    elif case == "hub":
        src, expect = "nobody-here/no-such-dataset", "could not load the hub data set"
    elif case == "corrupt":
        src.mkdir()
        for s in ("train", "validation", "test"):
            (src / f"{s}.parquet").write_bytes(b"garbage")
        expect = "not a readable parquet file"
    elif case in ("pickle", "not_release"):
        src = tmp_path / "r.pth"
        torch.save({"dataset": [], "labels": [], "images": [], "obj": argparse.Namespace()} if case == "pickle"
                   else [1, 2, 3], src)
        torch.save([{"train": [0], "val": [], "test": []}], tmp_path / "s.pth")
        extra = ["--format", "release", "--splits", str(tmp_path / "s.pth")]
        expect = "refuses to unpickle" if case == "pickle" else "not the CVPR40 release format"
    elif case == "bad_band":
        src = tmp_path / "s2"
        main(["data", "synth", "--out", str(src), "--subjects", "1", "--classes", "2", "--images-per-class", "3"])
        extra = ["--bandpass", "40", "10"]
        expect = "band-pass 40.0-10.0 Hz is invalid"
    capsys.readouterr()
    out = tmp_path / "cache"
    assert main(["data", "prepare", "--source", str(src), "--out", str(out), *extra]) == 2
    line = _err_line(capsys)
    assert line.startswith("eegalign: error: ") and expect in line
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))  # no half-written cache


def test_embed_without_weights(small_cache: Path, capsys) -> None:
    assert main(["embed", "--cache", str(small_cache), "--route", "image", "--device", "cpu"]) == 2
    line = _err_line(capsys)
    assert "--image-model PATH" in line and "Traceback" not in line


def test_subprocess_missing_file(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "eegalign", "data", "prepare", "--source", str(tmp_path / "nope.pth"),
                        "--out", str(tmp_path / "c"), "--format", "release", "--splits", "x"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"eegalign: error: source not found: {tmp_path / 'nope.pth'}"]
    assert not (tmp_path / "c").exists()
