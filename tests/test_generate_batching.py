"""A generated image depends only on its own trial's embedding and seed, whatever the batch (issue #12, diffusers #9813).

Real tiny StableDiffusionPipelines built from configs (tests/_tinysd.py), on both routes. Batched and
single matmuls may round differently on CPU: images are compared up to one 8-bit level.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _tinysd import IMAGE_DIM, save_tiny_sd, tiny_ip_adapter, tiny_sd_components
from eegalign.cli import main
from eegalign.generation.ip_batching import PerTrialPipeline, TrialMixingError
from eegalign.generation.pipelines import add_ip_adapter, encode_empty_prompt, generate_batch
from eegalign.predictions import Predictions

STEPS, SIZE = 2, 16


def _pipe(root: Path, cls: type, ip_adapter: bool):
    pipe = cls(**tiny_sd_components(root))
    pipe.set_progress_bar_config(disable=True)
    if ip_adapter:
        add_ip_adapter(pipe, str(tiny_ip_adapter(pipe.unet, root / "ip.safetensors")))
    return pipe


@pytest.fixture(scope="module")
def pipes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("batching")
    return {"image": _pipe(root, PerTrialPipeline, True), "text": _pipe(root, PerTrialPipeline, False), "root": root}


def _embeds(route: str, seed: int = 0) -> torch.Tensor:
    shape = (3, IMAGE_DIM) if route == "image" else (3, 77, 768)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _run(pipes: dict, route: str, embeds: torch.Tensor, seeds: list[int], guidance: float = 7.5) -> list[np.ndarray]:
    pipe = pipes[route]
    negative = encode_empty_prompt(pipe) if route == "text" else None
    images = generate_batch(pipe, embeds, route, seeds, steps=STEPS, guidance=guidance, size=SIZE, negative_text=negative)
    return [np.asarray(im, dtype=np.int16) for im in images]


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a - b).max())


@pytest.mark.parametrize("route,guidance", [("image", 7.5), ("image", 1.0), ("text", 6.5)])
def test_batch_of_three_equals_one_at_a_time(pipes: dict, route: str, guidance: float) -> None:
    embeds, seeds = _embeds(route), [10, 11, 12]
    batched = _run(pipes, route, embeds, seeds, guidance)
    for i in range(3):
        (single,) = _run(pipes, route, embeds[i : i + 1], seeds[i : i + 1], guidance)
        assert _max_diff(batched[i], single) <= 1, (route, i)
    assert _max_diff(batched[0], batched[1]) > 10  # different trials give different images


@pytest.mark.parametrize("route", ["image", "text"])
def test_changing_one_trial_leaves_its_neighbours_unchanged(pipes: dict, route: str) -> None:
    embeds, seeds = _embeds(route), [0, 1, 2]
    before = _run(pipes, route, embeds, seeds)
    changed = embeds.clone()
    changed[2] = _embeds(route, seed=99)[2]
    after = _run(pipes, route, changed, seeds)
    assert _max_diff(before[0], after[0]) <= 1 and _max_diff(before[1], after[1]) <= 1
    assert _max_diff(before[2], after[2]) > 10  # the changed trial's own image does change


def _upstream_layout(b: int) -> list[torch.Tensor]:
    """What eegalign used to hand StableDiffusionPipeline: (2B, 1, D), zero negatives first."""
    pos = _embeds("image")[:b, None, :]
    return [torch.cat([torch.zeros_like(pos), pos])]


def test_guard_fires_on_the_upstream_mixing_layout(pipes: dict) -> None:
    """A plain StableDiffusionPipeline repeats the embeddings B times: the guard sees it at the attention layer."""
    from diffusers import StableDiffusionPipeline

    plain = _pipe(pipes["root"] / "plain", StableDiffusionPipeline, True)
    common = dict(num_inference_steps=1, height=SIZE, width=SIZE, output_type="np")
    with pytest.raises(TrialMixingError, match="other trials' embeddings"):
        plain(prompt=[""] * 3, ip_adapter_image_embeds=_upstream_layout(3), **common)
    plain(prompt=[""], ip_adapter_image_embeds=_upstream_layout(1), **common)  # one trial: nothing to mix, passes
    with pytest.raises(TypeError, match="would mix the trials"):
        generate_batch(plain, _embeds("image"), "image", [0, 1, 2], steps=1, guidance=7.5, size=SIZE)


def test_per_trial_pipeline_refuses_embeds_that_are_not_one_row_per_image(pipes: dict) -> None:
    repeated = [torch.cat([_upstream_layout(3)[0]] * 3)]  # (18, 1, D) for 3 images
    with pytest.raises(TrialMixingError, match=r"expected \(6, 1, D\)"):
        pipes["image"](prompt=[""] * 3, ip_adapter_image_embeds=repeated, num_inference_steps=1, height=SIZE, width=SIZE)


def test_image_route_cli_batch_and_shard_independent(pipes: dict, tmp_path: Path) -> None:
    """`eegalign generate` on the image route: --batch-size 3 and --batch-size 1 --shard 1/2 agree trial by trial."""
    from PIL import Image

    root = pipes["root"]
    sd = save_tiny_sd(tmp_path)
    rng = np.random.default_rng(3)
    preds = tmp_path / "pred.safetensors"
    Predictions(pred=rng.standard_normal((6, IMAGE_DIM)).astype(np.float32),
                true=rng.standard_normal((6, IMAGE_DIM)).astype(np.float32), label=np.arange(6) % 3,
                subject=np.ones(6, np.int64), image_ids=[f"img{i}" for i in range(6)], route="image").save(preds)
    common = ["generate", "--predictions", str(preds), "--sd-model", str(sd), "--ip-adapter", str(root / "ip.safetensors"),
              "--steps", str(STEPS), "--size", str(SIZE), "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "b3"), "--batch-size", "3"]) == 0
    assert main([*common, "--out", str(tmp_path / "s1"), "--batch-size", "1", "--shard", "1/2"]) == 0
    shard = json.loads((tmp_path / "s1" / "generation.json").read_text())
    assert [r["index"] for r in shard["trials"]] == [1, 3, 5]
    for rec in shard["trials"]:
        for kind in ("eeg", "true"):
            a = np.asarray(Image.open(tmp_path / "s1" / rec[kind]), dtype=np.int16)
            b = np.asarray(Image.open(tmp_path / "b3" / rec[kind]), dtype=np.int16)
            assert _max_diff(a, b) <= 1, (rec["index"], kind)
