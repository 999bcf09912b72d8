"""End-to-end checks of `eegalign generate` with tiny random SD 1.5-shaped models (no downloads).

Built once per module: a tiny StableDiffusionPipeline (UNet with cross_attention_dim=768, a
one-level VAE, a one-layer CLIPTextModel and a hand-written CLIPTokenizer vocab) saved with
save_pretrained; an IP-Adapter state dict in the ip-adapter_sd15 key layout whose shapes are
derived from the UNet's attention processors (image embedding dim 1024); a tiny 1000-label
ViTForImageClassification; predictions for both routes and a fake cache with JPEG/PNG originals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eegalign.cli import main
from eegalign.predictions import Predictions

from _tinysd import IMAGE_DIM, save_tiny_sd, tiny_ip_adapter

TEXT_SHAPE = (77, 768)
CVPR_WNIDS = ["n02106662", "n02124075", "n02281787"]  # first classes of the CVPR40 table
FAST = ["--steps", "2", "--size", "16", "--device", "cpu", "--nway", "50", "5", "--draws", "5", "--n-boot", "50"]


def _tiny_sd(root: Path) -> Path:
    return save_tiny_sd(root)


def _tiny_ip_adapter(sd_dir: Path, path: Path, image_dim: int = IMAGE_DIM) -> Path:
    return tiny_ip_adapter(sd_dir, path, image_dim=image_dim)


def _tiny_vit(path: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=16, num_labels=1000)
    model = ViTForImageClassification(cfg)
    # A "classifier" that sees a German shepherd (ImageNet 235, label 0 here) in everything and never an
    # Egyptian cat (285) or a lycaenid (326): the N-way numbers below are then known exactly.
    with torch.no_grad():
        model.classifier.bias[235] = 100.0
        model.classifier.bias[[285, 326]] = -100.0
    model.save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def _fake_cache(root: Path, n_images: int = 3) -> Path:
    from PIL import Image

    images = root / "cache" / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n_images):
        arr = rng.integers(0, 255, size=(40, 48, 3), dtype=np.uint8)
        Image.fromarray(arr).save(images / (f"img{i}.jpg" if i % 2 else f"img{i}.png"))
    return root / "cache"


def _predictions(route: str, cache: Path, path: Path) -> Path:
    rng = np.random.default_rng(1 if route == "image" else 2)
    n = 6
    shape = (n, IMAGE_DIM) if route == "image" else (n, *TEXT_SHAPE)
    image_ids = [f"img{i % 3}" for i in range(n)]
    true_by_image = rng.standard_normal((3, *shape[1:])).astype(np.float32)
    Predictions(
        pred=rng.standard_normal(shape).astype(np.float32),
        true=true_by_image[[i % 3 for i in range(n)]],
        label=np.array([i % 3 for i in range(n)], dtype=np.int64),
        subject=np.array([1, 1, 1, 2, 2, 2], dtype=np.int64),
        image_ids=image_ids, route=route, model="test", split="test", classes=CVPR_WNIDS, cache=str(cache),
    ).save(path)
    return path


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gen")
    sd = _tiny_sd(root)
    cache = _fake_cache(root)
    return {
        "root": root,
        "sd": sd,
        "ip": _tiny_ip_adapter(sd, root / "ip-adapter_tiny.safetensors"),
        "vit": _tiny_vit(root / "vit"),
        "cache": cache,
        "image": _predictions("image", cache, root / "pred_image.safetensors"),
        "text": _predictions("text", cache, root / "pred_text.safetensors"),
    }


def _load(out: Path) -> dict:
    return json.loads((out / "generation.json").read_text())


def test_image_route_end_to_end(assets: dict[str, Path], tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "gen"
    code = main(["generate", "--predictions", str(assets["image"]), "--sd-model", str(assets["sd"]),
                 "--ip-adapter", str(assets["ip"]), "--classifier", str(assets["vit"]), "--out", str(out),
                 "--batch-size", "3", "--grid-rows", "4", *FAST])
    assert code == 0
    index = _load(out)
    assert index["route"] == "image" and len(index["trials"]) == 6
    for rec in index["trials"]:
        for kind in ("original", "true", "eeg"):
            with Image.open(out / rec[kind]) as im:
                assert im.format == "PNG"
                if kind != "original":
                    assert im.size == (16, 16)
        assert rec["seed"] == rec["index"]
        assert rec["wnid"] == CVPR_WNIDS[rec["label"]] and rec["class_name"]
    assert len(index["grids"]) == 2 and all((out / g).is_file() for g in index["grids"])
    results = index["nway"]["results"]
    combos = {(r["convention"], r["set"], r["n"]) for r in results}
    sets = ("original", "true", "eeg", "eeg_shuffled")
    assert combos == {(c, s, n) for c in ("wnid", "gwit") for s in sets for n in (50, 5)}
    for r in results:
        assert 0.0 <= r["ci95"][0] <= r["value"] <= r["ci95"][1] <= 1.0
        assert r["chance"] == pytest.approx(r["k"] / r["n"]) and r["n_images"] == 6
        # wnid: only the label-0 trials (2 of 6) are recognised; gwit: every image gets the originals' top-1.
        # The shuffled baseline equals the EEG row: this constant classifier says nothing about the decoder.
        assert r["value"] == pytest.approx(1 / 3 if r["convention"] == "wnid" else 1.0)
    assert all(rec["top1"][k]["index"] == 235 for rec in index["trials"] for k in ("original", "true", "eeg"))
    html = (out / "generation.html").read_text()
    assert "N-way top-k accuracy" in html and "grids/grid_000.png" in html and "chance" in html
    # The EEG images differ from the true-embedding images (different conditioning, same seed).
    a = np.asarray(Image.open(out / index["trials"][0]["eeg"]), dtype=np.int16)
    b = np.asarray(Image.open(out / index["trials"][0]["true"]), dtype=np.int16)
    assert np.abs(a - b).max() > 0


def test_text_route_seeds_independent_of_batching(assets: dict[str, Path], tmp_path: Path) -> None:
    """Per-trial seeds: a trial's image is the same whether generated alone or in a batch, and in a shard."""
    common = ["generate", "--predictions", str(assets["text"]), "--sd-model", str(assets["sd"]),
              "--skip-true", "--scheduler", "euler", *FAST]
    assert main([*common, "--out", str(tmp_path / "b3"), "--batch-size", "3"]) == 0
    assert main([*common, "--out", str(tmp_path / "s1"), "--batch-size", "1", "--shard", "1/2"]) == 0
    full, shard = _load(tmp_path / "b3"), _load(tmp_path / "s1")
    assert full["route"] == "text" and full["nway"] is None and full["settings"]["guidance"] == 6.5
    assert [r["index"] for r in shard["trials"]] == [1, 3, 5]
    for rec in shard["trials"]:
        assert rec["true"] is None
        a = np.asarray(_open(tmp_path / "s1" / rec["eeg"]))
        b = np.asarray(_open(tmp_path / "b3" / f"images/{rec['index']:05d}_eeg.png"))
        # Batched and single matmuls may round differently: at most one 8-bit level apart.
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # Two different trials give different images.
    assert not np.array_equal(np.asarray(_open(tmp_path / "b3" / "images/00000_eeg.png")),
                              np.asarray(_open(tmp_path / "b3" / "images/00001_eeg.png")))


def _open(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def test_merge_shards_and_nway_only(assets: dict[str, Path], tmp_path: Path) -> None:
    common = ["generate", "--predictions", str(assets["image"]), "--sd-model", str(assets["sd"]),
              "--ip-adapter", str(assets["ip"]), "--per-class", "1", *FAST]
    for i in range(2):
        assert main([*common, "--shard", f"{i}/2", "--out", str(tmp_path / f"part{i}")]) == 0
    merged = tmp_path / "merged"
    assert main(["generate", "--merge", str(tmp_path / "part0"), str(tmp_path / "part1"), "--out", str(merged)]) == 0
    index = _load(merged)
    assert index["nway"] is None and len(index["trials"]) == 3  # one per class
    assert sorted({r["label"] for r in index["trials"]}) == [0, 1, 2]
    assert all((merged / r[k]).is_file() for r in index["trials"] for k in ("original", "true", "eeg"))
    assert main(["generate", "--nway-only", "--out", str(merged), "--classifier", str(assets["vit"]),
                 "--nway", "10", "--draws", "3", "--n-boot", "20"]) == 0
    rescored = _load(merged)
    assert {r["n"] for r in rescored["nway"]["results"]} == {10}
    assert all("top1" in r for r in rescored["trials"])
    assert (merged / "nway_logits.safetensors").is_file()


def test_user_errors_are_one_line(assets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["generate", "--predictions", str(assets["image"]), "--device", "cpu", "--steps", "1", "--size", "32"]
    # Offline without weights: one sentence naming the option to pass.
    assert main([*base, "--sd-model", "nobody/no-such-model", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--sd-model PATH" in err
    assert main([*base, "--sd-model", str(assets["sd"]), "--ip-adapter", "nobody/no-adapter",
                 "--out", str(tmp_path / "b")]) == 2
    assert "--ip-adapter PATH" in capsys.readouterr().err
    # An IP-Adapter whose image dim does not match the predictions.
    small = _tiny_ip_adapter(assets["sd"], tmp_path / "ip16.safetensors", image_dim=16)
    assert main([*base, "--sd-model", str(assets["sd"]), "--ip-adapter", str(small), "--out", str(tmp_path / "c")]) == 2
    assert "1024-d" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # nothing half-written
    assert main([*base, "--sd-model", str(assets["sd"]), "--images", str(tmp_path / "none"), "--out", str(tmp_path / "d")]) == 2
    assert "--images" in capsys.readouterr().err
    assert main(["generate", "--nway-only", "--out", str(tmp_path), "--classifier", str(assets["vit"])]) == 2
    assert "generation.json" in capsys.readouterr().err


def test_select_trials_seeded_per_class_limit_shard() -> None:
    from eegalign.generation.selection import select_trials

    labels = np.repeat(np.arange(4), 5)  # 4 classes x 5 trials
    picked = select_trials(labels, per_class=2, seed=3)
    assert np.bincount(labels[picked]).tolist() == [2, 2, 2, 2] and np.all(np.diff(picked) > 0)
    assert np.array_equal(picked, select_trials(labels, per_class=2, seed=3))
    assert not np.array_equal(picked, select_trials(labels, per_class=2, seed=4))
    assert select_trials(labels, per_class=2, limit=3, seed=3).size == 3
    shards = [select_trials(labels, limit=7, seed=1, shard=(i, 3)) for i in range(3)]
    assert np.array_equal(np.sort(np.concatenate(shards)), select_trials(labels, limit=7, seed=1))
    assert select_trials(labels).size == 20


def test_wnids_from_cache_meta_when_predictions_lack_classes(tmp_path: Path) -> None:
    import pandas as pd

    from eegalign.generation.selection import trial_wnids

    pd.DataFrame({"label": [0, 1, 1], "label_folder": ["n02106662", "n02124075", "n02124075"]}).to_parquet(
        tmp_path / "meta.parquet")
    p = Predictions(pred=np.zeros((2, 4), np.float32), true=np.zeros((2, 4), np.float32), label=np.array([1, 0]),
                    subject=np.array([1, 1]), image_ids=["a", "b"], cache=str(tmp_path))
    assert trial_wnids(p) == ["n02124075", "n02106662"]
    p.cache = None
    assert trial_wnids(p) == [None, None]


def test_with_a_prepared_cache(small_cache: Path, assets: dict[str, Path], tmp_path: Path) -> None:
    """Predictions written the way `evaluate` writes them: originals and class names come from the cache."""
    from eegalign.data.cache import Cache
    from eegalign.data.classes import wnid_to_name

    cache = Cache.open(small_cache)
    rows = cache.split_indices("validation")
    true = cache.trial_targets("image", rows).astype(np.float32)
    meta = cache.meta.iloc[rows]
    pred_path = tmp_path / "pred.safetensors"
    Predictions(
        pred=true + 0.1 * np.random.default_rng(0).standard_normal(true.shape).astype(np.float32), true=true,
        label=meta["label"].to_numpy(np.int64), subject=meta["subject"].to_numpy(np.int64),
        image_ids=[str(i) for i in meta["image_id"]], route="image", split="validation",
        classes=list(cache.classes), cache=str(small_cache),
    ).save(pred_path)
    out = tmp_path / "gen"
    assert main(["generate", "--predictions", str(pred_path), "--sd-model", str(assets["sd"]), "--ip-adapter",
                 str(assets["ip"]), "--out", str(out), "--limit", "2", "--match-norm", *FAST]) == 0
    index = _load(out)
    assert len(index["trials"]) == min(2, len(rows)) and index["settings"]["match_norm"] == "test"
    for rec in index["trials"]:
        assert rec["original"] and (out / rec["original"]).is_file()
        assert rec["wnid"] == cache.classes[rec["label"]] and rec["class_name"] == wnid_to_name()[rec["wnid"]]


def test_command_module_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = ("import sys, argparse, eegalign.commands.generate as g, eegalign.generation.run, eegalign.generation.nway;"
            "g.add_arguments(argparse.ArgumentParser());"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
