"""Real-weights friction (issue #12 section 3) and the reconstruction block of `eegalign generate`.

Tiny random SD 1.5-shaped pipelines (tests/_tinysd.py) and tiny feature networks (tests/test_recon.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _tinysd import save_tiny_sd, tiny_sd_components
from eegalign.cli import main
from eegalign.errors import ConfigError, WeightsError
from eegalign.predictions import Predictions

FAST = ["--steps", "1", "--size", "16", "--device", "cpu", "--n-boot", "50"]


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("opts"))


def _as_released(sd: Path, tmp_path: Path) -> Path:
    """The layout of the real SD 1.5 repo downloaded without feature_extractor/ and safety_checker/:
    model_index.json still names both."""
    import shutil

    out = tmp_path / "sd15-like"
    shutil.copytree(sd, out)
    index = json.loads((out / "model_index.json").read_text())
    index.update(feature_extractor=["transformers", "CLIPImageProcessor"],
                 safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"], requires_safety_checker=True)
    (out / "model_index.json").write_text(json.dumps(index))
    return out


def test_feature_extractor_not_needed_and_safety_checker_message(sd_dir: Path, tmp_path: Path) -> None:
    import torch

    from eegalign.generation.pipelines import load_sd_pipeline

    released = _as_released(sd_dir, tmp_path)
    pipe = load_sd_pipeline(str(released), dtype=torch.float32)
    assert pipe.feature_extractor is None and pipe.safety_checker is None
    with pytest.raises(WeightsError, match=r"--safety-checker needs safety_checker/ and feature_extractor/ in"):
        load_sd_pipeline(str(released), dtype=torch.float32, safety_checker=True)


def test_dpm_sde_is_a_stochastic_scheduler() -> None:
    from diffusers import DDIMScheduler

    from eegalign.generation.pipelines import make_scheduler

    scheduler = make_scheduler("dpm_sde", DDIMScheduler().config)
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scheduler.config.algorithm_type == "sde-dpmsolver++"
    assert make_scheduler("dpm", DDIMScheduler().config).config.algorithm_type == "dpmsolver++"


def test_memory_options(tmp_path: Path) -> None:
    import torch

    from eegalign.generation.ip_batching import PerTrialPipeline
    from eegalign.generation.pipelines import place_pipeline

    pipe = PerTrialPipeline(**tiny_sd_components(tmp_path))
    place_pipeline(pipe, torch.device("cpu"), vae_slicing=True, vae_tiling=True)
    assert pipe.vae.use_slicing and pipe.vae.use_tiling
    with pytest.raises(ConfigError, match="--cpu-offload .* the device here is cpu"):
        place_pipeline(pipe, torch.device("cpu"), cpu_offload=True)


def _text_predictions(path: Path, images: Path) -> Path:
    from PIL import Image

    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(images / f"img{i}.png")
    Predictions(pred=rng.standard_normal((4, 77, 768)).astype(np.float32),
                true=rng.standard_normal((4, 77, 768)).astype(np.float32), label=np.arange(4), subject=np.ones(4, np.int64),
                image_ids=[f"img{i}" for i in range(4)], route="text").save(path)
    return path


def test_reconstruction_block_pixel_metrics_without_weights(sd_dir: Path, tmp_path: Path) -> None:
    preds = _text_predictions(tmp_path / "p.safetensors", tmp_path / "stimuli")
    out = tmp_path / "gen"
    assert main(["generate", "--predictions", str(preds), "--sd-model", str(sd_dir), "--images", str(tmp_path / "stimuli"),
                 "--out", str(out), "--vae-slicing", *FAST]) == 0
    index = json.loads((out / "generation.json").read_text())
    block = index["reconstruction"]
    assert set(block) == {"eeg", "true", "shuffled"} and index["reconstruction_trials"] == 4
    for image_set in block:
        assert list(block[image_set]) == ["pixcorr", "ssim"]
        for entry in block[image_set].values():
            assert entry["ci95"][0] <= entry["value"] <= entry["ci95"][1]
    assert block["eeg"]["ssim"]["chance"] == pytest.approx(block["shuffled"]["ssim"]["value"])
    assert any("alexnet2 skipped" in n for n in index["reconstruction_notes"])
    per_image = json.loads((out / "reconstruction_per_image.json").read_text())
    assert per_image["trials"] == [0, 1, 2, 3] and len(per_image["sets"]["true"]["pixcorr"]) == 4
    html = (out / "generation.html").read_text()
    assert "Reconstruction metrics" in html and "pixcorr ↑" in html and "<td class='l'>chance</td>" in html
    assert index["settings"]["vae_slicing"] is True


def test_reconstruction_with_tiny_networks_and_merge(sd_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_recon import tiny_models_dir

    from eegalign.generation.featurenets import registry

    monkeypatch.setattr(registry, "INPUT_SIZES", {"alexnet": 96, "inception": 80, "effnet": 64, "swav": 64, "fid_inception": 80})
    (tmp_path / "recon").mkdir()
    models = tiny_models_dir(tmp_path / "recon", only=("alexnet", "clip"))
    preds = _text_predictions(tmp_path / "p.safetensors", tmp_path / "stimuli")
    common = ["generate", "--predictions", str(preds), "--sd-model", str(sd_dir), "--images", str(tmp_path / "stimuli"),
              "--recon-models", str(models), *FAST]
    for i in range(2):
        assert main([*common, "--shard", f"{i}/2", "--out", str(tmp_path / f"part{i}")]) == 0
    merged = tmp_path / "merged"
    assert main(["generate", "--merge", str(tmp_path / "part0"), str(tmp_path / "part1"), "--out", str(merged),
                 "--recon-models", str(models), "--n-boot", "50"]) == 0
    index = json.loads((merged / "generation.json").read_text())
    assert index["reconstruction_trials"] == 4
    eeg = index["reconstruction"]["eeg"]
    assert {"pixcorr", "ssim", "alexnet2", "alexnet5", "clip", "clip_score"} <= set(eeg)
    assert eeg["alexnet2"]["chance"] == 0.5 and "effnet" not in eeg
    assert any("effnet skipped: no weights in" in n for n in index["reconstruction_notes"])
