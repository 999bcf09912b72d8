"""Image route vs text route: paired statistics (hand-computed cases) and `eegalign compare` on real generate outputs.

The generate outputs come from the tiny random SD 1.5-shaped pipelines of tests/test_generate.py (no downloads).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eegalign.cli import main
from eegalign.paired import EXACT_MAX, paired_difference, sign_flip_p, unpaired_difference, verdict

# ----------------------------------------------------------------------------- paired statistics by hand


def test_sign_flip_p_exact_hand_computed() -> None:
    # d = (1, 1, 1, 1): only the all-plus and all-minus patterns reach |mean| = 1 -> p = 2/16.
    assert sign_flip_p(np.ones(4)) == pytest.approx(2 / 16)
    # d = (1, -1, 1, 1): |sum| >= 2 for the 2 patterns with sum +-4 and the 8 with sum +-2 -> p = 10/16.
    assert sign_flip_p(np.array([1.0, -1.0, 1.0, 1.0])) == pytest.approx(10 / 16)


def test_paired_known_difference_and_identical_runs() -> None:
    a, b = np.array([0.9, 0.8, 1.0, 0.7, 0.6]), np.array([0.4, 0.3, 0.5, 0.2, 0.1])  # d = 0.5 on every trial
    d = paired_difference(a, b, n_boot=500)
    assert d.difference == pytest.approx(0.5) and d.ci95 == pytest.approx((0.5, 0.5))
    assert d.p == pytest.approx(2 / 2**5) and d.n_trials == 5 and d.paired
    same = paired_difference(a, a.copy())
    assert same.difference == 0.0 and same.p == 1.0 and same.ci95 == (0.0, 0.0)
    assert "no reliable difference" in verdict("pixcorr", "A", "B", same, scale=1.0, unit="", digits=3)


def test_paired_large_sample_and_verdict_direction() -> None:
    rng = np.random.default_rng(0)
    b = rng.random(200)
    noise = 0.02 * rng.standard_normal(200)
    a = b + 0.06 + (noise - noise.mean())  # A better by exactly 6 points on average, reliably
    d = paired_difference(a, b, n_perm=2000)
    assert d.n_trials == 200 > EXACT_MAX
    assert d.p == pytest.approx(1 / 2001) and d.ci95[0] > 0.05 and d.ci95[1] < 0.07
    text = verdict("nway50_top1_wnid", "text route", "image route", d)
    assert text.startswith("nway50_top1_wnid: text route better by 6.0 points [5.") and "p = 0.0005" in text
    # For a distance (lower is better) the run with the larger mean is the worse one.
    assert "image route better" in verdict("effnet", "text route", "image route", d, higher_is_better=False)


def test_nan_trials_are_left_out_and_counted() -> None:
    a, b = np.array([1.0, np.nan, 0.0, 1.0]), np.array([0.0, 1.0, np.nan, 0.0])
    d = paired_difference(a, b)
    assert d.n_trials == 2 and d.n_left_out == 2 and d.difference == 1.0


def test_unpaired_difference() -> None:
    d = unpaired_difference(np.ones(10), np.zeros(10), n_perm=2000)
    assert not d.paired and d.difference == 1.0 and d.p == pytest.approx(1 / 2001)
    same = unpaired_difference(np.array([0.0, 1.0] * 5), np.array([1.0, 0.0] * 5), n_perm=500)
    assert same.difference == 0.0 and same.p == 1.0


# ----------------------------------------------------------------------------- compare on generate outputs


@pytest.fixture(scope="module")
def route_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both routes generated for the same six trials, plus a text run on other trials (a disjoint shard)."""
    import test_generate as tg

    root = tmp_path_factory.mktemp("routes")
    sd, cache = tg._tiny_sd(root), tg._fake_cache(root)
    ip, vit = tg._tiny_ip_adapter(sd, root / "ip.safetensors"), tg._tiny_vit(root / "vit")
    fast = ["--steps", "2", "--size", "16", "--device", "cpu", "--nway", "5", "2", "--draws", "5", "--n-boot", "50"]
    runs = {}
    for route, extra in (("image", ["--ip-adapter", str(ip)]), ("text", [])):
        preds = tg._predictions(route, cache, root / f"pred_{route}.safetensors")
        out = root / f"gen_{route}"
        assert main(["generate", "--predictions", str(preds), "--sd-model", str(sd), *extra, "--classifier", str(vit),
                     "--out", str(out), *fast]) == 0
        runs[route] = out
        if route == "text":
            runs["text_half"] = root / "gen_text_half"
            assert main(["generate", "--predictions", str(preds), "--sd-model", str(sd), "--classifier", str(vit),
                         "--out", str(runs["text_half"]), "--shard", "1/2", *fast]) == 0
    return runs


def test_compare_routes_paired_table_grid_and_verdicts(route_runs: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "cmp"
    assert main(["compare", "--routes", str(route_runs["image"]), str(route_runs["text"]), "--out", str(out)]) == 0
    summary = json.loads((out / "compare.json").read_text())
    key = "gen_image vs gen_text"
    assert summary["pairing"][key] == {"paired": True, "n_shared_trials": 6, "notes": []}
    paired = summary["paired"][key]
    expected = {f"{p}nway{n}_top{k}_{c}" for p in ("", "true.") for n in (5, 2) for k in (1,) for c in ("wnid", "gwit")}
    assert expected <= set(paired)
    # The tiny classifier sees the same class in every image, so both routes score identically on every
    # trial: a paired difference of exactly 0 with p = 1.
    for m in expected:
        assert paired[m]["difference"] == 0.0 and paired[m]["p"] == 1.0 and paired[m]["n_trials"] == 6
        assert "no reliable difference" in summary["verdicts"][key][m]
    html = (out / "compare.html").read_text()
    assert "Generation runs side by side" in html and "no reliable difference" in html and "chance" in html
    assert "grids/routes_000.png" in html
    with Image.open(out / "grids" / "routes_000.png") as im:
        assert im.size[0] == 5 * 192  # original | image true | image EEG | text true | text EEG
    assert [r["route"] for r in summary["generation_runs"]] == ["image", "text"]


def test_compare_reports_unpaired_runs(route_runs: dict[str, Path], tmp_path: Path) -> None:
    # gen_text_half holds trials 3..5 only; trials 0..2 of the image run are another shard's.
    half = json.loads((route_runs["text_half"] / "generation.json").read_text())
    shown = {t["index"] for t in half["trials"]}
    image_dir = tmp_path / "gen_image_other"
    import shutil

    shutil.copytree(route_runs["image"], image_dir)
    index = json.loads((image_dir / "generation.json").read_text())
    index["trials"] = [t for t in index["trials"] if t["index"] not in shown]
    (image_dir / "generation.json").write_text(json.dumps(index))
    # keep the stored logits consistent with the smaller trial list: drop the rows of removed trials
    from eegalign.io import load_tensors, save_tensors

    tensors, meta = load_tensors(route_runs["image"] / "nway_logits.safetensors")
    old = [t["index"] for t in json.loads((route_runs["image"] / "generation.json").read_text())["trials"]]
    keep_rows = [p for p, i in enumerate(old) if i not in shown]
    new_pos = {p: j for j, p in enumerate(keep_rows)}
    fixed = {}
    for kind in ("original", "true", "eeg"):
        pos = np.asarray(tensors[f"{kind}_trials"])
        mask = np.isin(pos, keep_rows)
        fixed[f"{kind}_logits"] = np.asarray(tensors[f"{kind}_logits"])[mask]
        fixed[f"{kind}_trials"] = np.array([new_pos[int(p)] for p in pos[mask]], dtype=np.int64)
    save_tensors(image_dir / "nway_logits.safetensors", fixed, meta)

    out = tmp_path / "cmp"
    assert main(["compare", str(image_dir), str(route_runs["text_half"]), "--out", str(out)]) == 0
    summary = json.loads((out / "compare.json").read_text())
    (key,) = summary["pairing"]
    assert summary["pairing"][key]["paired"] is False and summary["pairing"][key]["n_shared_trials"] == 0
    assert "compared unpaired" in summary["pairing"][key]["notes"][0]
    assert all(entry["paired"] is False for entry in summary["paired"][key].values())
    assert "UNPAIRED" in (out / "compare.html").read_text()


def test_compare_mixes_evaluate_and_generate_outputs(route_runs: dict[str, Path], tmp_path: Path) -> None:
    from eegalign.metrics import compute_metrics  # noqa: F401  (the evaluate side is covered in test_report)

    out = tmp_path / "cmp"
    assert main(["compare", str(route_runs["image"]), str(route_runs["text"]), "--out", str(out)]) == 0
    assert (out / "compare.json").is_file() and not (out / "compare.csv").exists()


def test_routes_must_name_an_image_then_a_text_run(route_runs: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    code = main(["compare", "--routes", str(route_runs["text"]), str(route_runs["image"]), "--out", str(tmp_path / "c")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image-route run first" in err[0]
    assert not (tmp_path / "c").exists()
