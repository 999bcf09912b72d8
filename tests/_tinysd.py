"""Tiny random Stable Diffusion 1.5-shaped pipelines and IP-Adapters for the generation tests (no downloads).

``tiny_sd_components()``: a UNet with cross_attention_dim=768, a one-level VAE, a one-layer
CLIPTextModel and a hand-written CLIPTokenizer vocab, seeded. ``save_tiny_sd(root)`` writes them
as a diffusers pipeline directory. ``tiny_ip_adapter(unet, path)`` writes random weights in
ip-adapter_sd15's key layout, with shapes derived from the UNet's attention processors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

IMAGE_DIM = 1024


def tiny_sd_components(root: Path) -> dict[str, Any]:
    """The components of a tiny SD 1.5-shaped pipeline (keyword arguments of ``StableDiffusionPipeline``).

    Args:
        root: a directory for the tokenizer's vocab files.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    tok_dir = root / "tok-src"
    tok_dir.mkdir(parents=True, exist_ok=True)
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=77)

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=4, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=2, norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 8), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, sample_size=16,
    )
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=768, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False)


def save_tiny_sd(root: Path) -> Path:
    """Write the tiny pipeline as a diffusers directory ``root/sd`` (model_index.json, no feature_extractor/)."""
    from diffusers import StableDiffusionPipeline

    out = root / "sd"
    StableDiffusionPipeline(**tiny_sd_components(root)).save_pretrained(out)
    return out


def tiny_ip_adapter(unet_or_dir: Any, path: Path, image_dim: int = IMAGE_DIM, std: float = 0.02) -> Path:
    """Random weights in ip-adapter_sd15's layout: image_proj.{proj,norm}.*, ip_adapter.<id>.to_{k,v}_ip.weight,
    id = 1, 3, 5, ... over the UNet's cross-attention processors in attn_processors order.

    Args:
        unet_or_dir: a UNet2DConditionModel or a pipeline directory holding ``unet/``.
        path: the .safetensors file to write.
        image_dim: the image embedding width the adapter's projection takes.
        std: standard deviation of the random projection and key/value weights.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = unet_or_dir
    if not isinstance(unet, UNet2DConditionModel):
        unet = UNet2DConditionModel.from_pretrained(unet_or_dir, subfolder="unet")
    cross, tokens = unet.config.cross_attention_dim, 4
    g = torch.Generator().manual_seed(1)
    sd = {
        "image_proj.proj.weight": torch.randn(tokens * cross, image_dim, generator=g) * std,
        "image_proj.proj.bias": torch.zeros(tokens * cross),
        "image_proj.norm.weight": torch.ones(cross),
        "image_proj.norm.bias": torch.zeros(cross),
    }
    key_id = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = unet.config.block_out_channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(unet.config.block_out_channels))[int(name[len("up_blocks.")])]
        else:
            hidden = unet.config.block_out_channels[int(name[len("down_blocks.")])]
        for kv in ("to_k_ip", "to_v_ip"):
            sd[f"ip_adapter.{key_id}.{kv}.weight"] = torch.randn(hidden, cross, generator=g) * std
        key_id += 2
    save_file(sd, str(path))
    return path
