"""CLIP targets with tiny random CLIP models built from configs and saved with save_pretrained."""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch

from eegalign.data.cache import Cache
from eegalign.data.targets import embed_images, embed_texts, split_model_spec
from eegalign.errors import DataError, WeightsError
from eegalign.io import load_tensors


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    root = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    vis = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
        image_size=32, patch_size=8, projection_dim=24))
    vis.save_pretrained(root / "vision")  # no preprocessor config: default CLIP preprocessing
    vis.save_pretrained(root / "vision_proc")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(root / "vision_proc")

    chars = list(string.ascii_lowercase)
    vocab = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars] + ["an</w>", "im", "ag"]
    (root / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (root / "merges.txt").write_text("#version: 0.2\na n</w>\ni m\na g\n")
    tok = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"))
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=20, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, projection_dim=16))
    pipe = root / "sd"  # SD pipeline layout: text_encoder/ + tokenizer/
    text.save_pretrained(pipe / "text_encoder")
    tok.save_pretrained(pipe / "tokenizer")
    return {"vision": root / "vision", "vision_proc": root / "vision_proc", "sd": pipe}


def test_image_targets(cache_copy: Path, tiny_models: dict[str, Path]) -> None:
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    (cache_copy / "targets" / "image.safetensors").unlink()
    c = Cache.open(cache_copy)
    path = embed_images(c, str(tiny_models["vision"]), batch_size=5, device="cpu", progress=False)
    arrays, meta = load_tensors(path)
    ids = json.loads(meta["image_ids"])
    assert ids == sorted(c.meta["image_id"].unique()) and meta["route"] == "image"
    assert meta["model"] == str(tiny_models["vision"])
    assert arrays["embeddings"].shape == (len(ids), 24) and arrays["embeddings"].dtype == np.float32
    # row 3 equals the model applied directly to that image (default CLIP preprocessing at 32 px)
    model = CLIPVisionModelWithProjection.from_pretrained(tiny_models["vision"]).eval()
    proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    px = proc(images=[Image.open(c.image_path(ids[3])).convert("RGB")], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expect = model(pixel_values=px).image_embeds[0].numpy()
    np.testing.assert_allclose(arrays["embeddings"][3], expect, rtol=1e-4, atol=1e-5)
    # the data module now serves these targets
    from eegalign.data.datamodule import EEGDataModule

    assert EEGDataModule(str(cache_copy)).target_shape == (24,)
    # a processor config, when present, is used
    p2 = embed_images(Cache.open(cache_copy), str(tiny_models["vision_proc"]), device="cpu", progress=False)
    np.testing.assert_allclose(load_tensors(p2)[0]["embeddings"], arrays["embeddings"], rtol=1e-4, atol=1e-5)


def test_text_targets(cache_copy: Path, tiny_models: dict[str, Path]) -> None:
    from transformers import CLIPTextModel, CLIPTokenizer

    c = Cache.open(cache_copy)
    path = embed_texts(c, str(tiny_models["sd"]), batch_size=4, device="cpu", progress=False)
    arrays, meta = load_tensors(path)
    ids = json.loads(meta["image_ids"])
    emb = arrays["embeddings"]
    assert emb.shape == (len(ids), 77, 16) and meta["route"] == "text"
    caption = c.meta.set_index("image_id").loc[ids[2], "caption"]
    caption = caption if isinstance(caption, str) else caption.iloc[0]
    tok = CLIPTokenizer.from_pretrained(tiny_models["sd"] / "tokenizer")
    model = CLIPTextModel.from_pretrained(tiny_models["sd"] / "text_encoder").eval()
    ids_t = tok([caption], padding="max_length", max_length=77, truncation=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expect = model(input_ids=ids_t).last_hidden_state[0].numpy()
    np.testing.assert_allclose(emb[2], expect, rtol=1e-4, atol=1e-5)
    # a plain text-model directory (model + tokenizer side by side) works too
    flat = tiny_models["sd"].parent / "flat"
    model.save_pretrained(flat)
    tok.save_pretrained(flat)
    p2 = embed_texts(Cache.open(cache_copy), str(flat), device="cpu", progress=False)
    np.testing.assert_allclose(load_tensors(p2)[0]["embeddings"], emb, rtol=1e-4, atol=1e-5)


def test_killed_embed_leaves_no_targets(cache_copy: Path, tiny_models: dict[str, Path], monkeypatch) -> None:
    from transformers import CLIPVisionModelWithProjection

    (cache_copy / "targets" / "image.safetensors").unlink()
    calls = {"n": 0}
    orig = CLIPVisionModelWithProjection.forward

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return orig(self, *a, **k)

    monkeypatch.setattr(CLIPVisionModelWithProjection, "forward", dying)
    with pytest.raises(KeyboardInterrupt):
        embed_images(Cache.open(cache_copy), str(tiny_models["vision"]), batch_size=4, device="cpu", progress=False)
    assert not Cache.open(cache_copy).has_targets("image")
    assert list((cache_copy / "targets").glob("*image*")) == []


def test_missing_weights_one_sentence(cache_copy: Path, tmp_path: Path) -> None:
    c = Cache.open(cache_copy)
    with pytest.raises(WeightsError, match="pass its local directory with --image-model PATH"):
        embed_images(c, "h94/IP-Adapter/models/image_encoder", device="cpu", progress=False)
    with pytest.raises(WeightsError, match="--text-model PATH"):
        embed_texts(c, "stable-diffusion-v1-5/stable-diffusion-v1-5", device="cpu", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="is not a loadable CLIP image encoder"):
        embed_images(c, str(tmp_path / "empty"), device="cpu", progress=False)


def test_no_pixels_and_spec_parsing(cache_copy: Path) -> None:
    for f in (cache_copy / "images").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="--route text"):
        embed_images(Cache.open(cache_copy), "unused", progress=False)
    assert split_model_spec("h94/IP-Adapter/models/image_encoder") == ("h94/IP-Adapter", "models/image_encoder")
    assert split_model_spec("stable-diffusion-v1-5/stable-diffusion-v1-5") == ("stable-diffusion-v1-5/stable-diffusion-v1-5", None)
