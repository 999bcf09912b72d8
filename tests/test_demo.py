"""`eegalign demo`: the first command a new user runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eegalign.cli import main


def test_small_demo_runs_end_to_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--subjects", "2", "--classes", "6", "--images-per-class", "5", "--epochs", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'evaluation' / 'report.html'}" in printed
    assert "retrieval top-1 among" in printed and "chance" in printed and "train-mean baseline" in printed
    for f in ("evaluation/report.html", "evaluation/metrics.json", "evaluation/predictions.safetensors",
              "ridge/evaluation/metrics.json", "comparison/compare.html", "demo.json", "audit/audit.json"):
        assert (out / f).is_file(), f
    assert "Leakage audit" in (out / "evaluation" / "report.html").read_text()
    assert "leakage detected: no" in printed  # the default simulator has no block-design confound
    m = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert m["retrieval"]["all_top1"]["chance"] == pytest.approx(1 / m["n_images"])
    # a second demo into the same directory is refused instead of mixing two runs
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("route", ["image", "text"])
def test_default_demo_beats_chance(tmp_path: Path, route: str) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--route", route]) == 0
    m = json.loads((out / "evaluation" / "metrics.json").read_text())
    top1 = m["retrieval"]["all_top1"]
    assert top1["ci95"][0] > top1["chance"], top1  # the whole 95% interval is above chance
    assert top1["value"] > 3 * top1["chance"]
    assert m["baselines"]["permutation_p"] < 0.01
