"""CLIP targets of a cache: one row per distinct image, keyed by ``image_id``.

* image route: ``image_embeds`` of ``CLIPVisionModelWithProjection`` (reference: the OpenCLIP
  ViT-H/14 tower with projection that IP-Adapter SD 1.5 uses, ``h94/IP-Adapter`` subfolder
  ``models/image_encoder``; 1024-d), with its ``CLIPImageProcessor`` (default CLIP preprocessing
  at the model's image size when the directory has no processor config);
* text route: ``last_hidden_state`` of the SD 1.5 text encoder (``CLIPTextModel``, subfolders
  ``text_encoder``/``tokenizer`` of ``stable-diffusion-v1-5/stable-diffusion-v1-5``) for each image's
  caption, padded/truncated to 77 tokens -> (77, 768).

Stored atomically as ``targets/<route>.safetensors``: tensor ``embeddings`` (M, ...) float32, metadata
``image_ids`` (JSON list, row order), ``model`` (the id or path given) and ``route``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.errors import UNSAFE_LOAD, DataError, WeightsError, first_line, missing_weights_message
from eegalign.devices import resolve_device, resolve_dtype
from eegalign.hub import resolve_pretrained

DEFAULT_IMAGE_MODEL = "h94/IP-Adapter/models/image_encoder"
DEFAULT_TEXT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
TEXT_TOKENS = 77


def split_model_spec(spec: str | os.PathLike) -> tuple[str, str | None]:
    """``(path_or_repo, subfolder)``: a local directory as is; ``owner/name/sub/dir`` -> repo + subfolder."""
    p = Path(spec)
    if p.is_dir():
        return str(p), None
    parts = str(spec).strip("/").split("/")
    if len(parts) > 2:
        return "/".join(parts[:2]), "/".join(parts[2:])
    return str(spec), None


def _load(cls: Any, spec: str, subfolder: str | None, what: str, option: str, **kw: Any) -> Any:
    """``cls.from_pretrained`` with one clear WeightsError when the weights are not available."""
    import pickle

    local = Path(spec).is_dir()
    try:
        return cls.from_pretrained(spec, subfolder=subfolder or "", **kw)
    except pickle.UnpicklingError as e:  # a pickled .bin that torch.load(weights_only=True) refused: never advise loading it
        raise WeightsError(f"{spec} is not a loadable {what}: its weights file {UNSAFE_LOAD}; use safetensors weights") from None
    except (OSError, ValueError, KeyError) as e:
        if local:
            raise WeightsError(f"{spec} is not a loadable {what} ({type(e).__name__}: {first_line(e)[:200]})") from None
        raise WeightsError(missing_weights_message(what, spec if subfolder is None else f"{spec}/{subfolder}", option)) from e


def load_image_encoder(spec: str, device: str = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """``(CLIPVisionModelWithProjection, CLIPImageProcessor)`` for a local dir or hub spec."""
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    repo, sub = split_model_spec(resolve_pretrained(spec, "CLIP image encoder", "--image-model"))
    model = _load(CLIPVisionModelWithProjection, repo, sub, "CLIP image encoder", "--image-model", dtype=dtype)
    try:
        processor = CLIPImageProcessor.from_pretrained(repo, subfolder=sub or "")
    except (OSError, ValueError):  # no preprocessor_config.json: default CLIP preprocessing
        s = int(model.config.image_size)
        processor = CLIPImageProcessor(size={"shortest_edge": s}, crop_size={"height": s, "width": s})
    return model.to(device).eval(), processor


def load_text_encoder(spec: str, device: str = "cpu", dtype: Any = None) -> tuple[Any, Any]:
    """``(CLIPTextModel, CLIPTokenizer)``: an SD pipeline (``text_encoder/``, ``tokenizer/``) or one dir."""
    from transformers import CLIPTextModel, CLIPTokenizer

    repo, sub = split_model_spec(resolve_pretrained(spec, "CLIP text encoder", "--text-model"))
    if Path(repo).is_dir():
        pipeline_layout = (Path(repo) / "text_encoder").is_dir()
    else:
        pipeline_layout = sub is None
    model_sub, tok_sub = ("text_encoder", "tokenizer") if pipeline_layout else (sub, sub)
    model = _load(CLIPTextModel, repo, model_sub, "CLIP text encoder", "--text-model", dtype=dtype)
    tokenizer = _load(CLIPTokenizer, repo, tok_sub, "CLIP tokenizer", "--text-model")
    return model.to(device).eval(), tokenizer


def _images_and_captions(cache: Any) -> tuple[list[str], list[str]]:
    """Distinct image ids (sorted) and the first caption of each."""
    meta = cache.meta.drop_duplicates("image_id").sort_values("image_id")
    return meta["image_id"].tolist(), meta["caption"].astype(str).tolist()


def _encode_in_batches(n: int, batch_size: int, encode: Any, desc: str, progress: bool) -> np.ndarray:
    """``encode(start, stop) -> (b, ...)`` over ``[0, n)`` in batches, with a progress bar -> (n, ...) float32."""
    import torch
    from tqdm.auto import tqdm

    out: np.ndarray | None = None
    with torch.inference_mode():
        for start in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress, file=sys.stderr):
            emb = encode(start, min(start + batch_size, n))
            if out is None:
                out = np.empty((n, *emb.shape[1:]), dtype=np.float32)
            out[start : start + len(emb)] = emb
    if out is None:
        raise DataError("the cache has no images to encode")
    return out


def _open_rgb(path: Path) -> Any:
    """A stimulus image decoded to RGB, or one DataError line for a corrupt or truncated file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")  # decodes the whole file: a truncated JPEG fails here
    except (OSError, SyntaxError, ValueError) as e:  # PIL: UnidentifiedImageError (an OSError), truncation, bad headers
        raise DataError(f"{path} is not a readable image ({first_line(e)}): replace it with the original stimulus "
                        "or prepare the cache again") from None


def verify_images(paths: list[Path]) -> None:
    """Open every stimulus image's header before a model is loaded: corrupt files are found in seconds."""
    from PIL import Image

    for p in paths:
        try:
            with Image.open(p) as im:
                im.verify()
        except (OSError, SyntaxError, ValueError) as e:
            raise DataError(f"{p} is not a readable image ({first_line(e)}): replace it with the original stimulus "
                            "or prepare the cache again") from None


def embed_images(cache: Any, model: str = DEFAULT_IMAGE_MODEL, *, batch_size: int = 32, device: str = "auto",
                 dtype: str = "auto", progress: bool = True) -> Path:
    """Compute and store ``targets/image.safetensors`` (M, D) for every stimulus of ``cache``."""
    from eegalign.io import save_tensors

    ids, _ = _images_and_captions(cache)
    missing = [i for i in ids if not any((cache.path / "images" / f"{i}{s}").is_file() for s in (".jpg", ".png", ".jpeg"))]
    if missing:
        why = cache.manifest.get("images", "")
        raise DataError(f"cache {cache.path} lacks {len(missing)} of its {len(ids)} stimulus images ({why}); use --route text")
    verify_images([cache.image_path(i) for i in ids])
    dev = resolve_device(device)
    enc, processor = load_image_encoder(model, dev, resolve_dtype(dtype, dev))

    def encode(start: int, stop: int) -> np.ndarray:
        batch = [_open_rgb(cache.image_path(i)) for i in ids[start:stop]]
        pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(dev, enc.dtype)
        return enc(pixel_values=pixels).image_embeds.float().cpu().numpy()  # (b, D)

    out = _encode_in_batches(len(ids), batch_size, encode, "image targets", progress)
    path = cache.targets_path("image")
    save_tensors(path, {"embeddings": out}, {"image_ids": ids, "model": str(model), "route": "image"})
    return path


def embed_texts(cache: Any, model: str = DEFAULT_TEXT_MODEL, *, batch_size: int = 32, device: str = "auto",
                dtype: str = "auto", progress: bool = True) -> Path:
    """Compute and store ``targets/text.safetensors`` (M, 77, width) from each image's caption."""

    from eegalign.io import save_tensors

    ids, captions = _images_and_captions(cache)
    dev = resolve_device(device)
    enc, tokenizer = load_text_encoder(model, dev, resolve_dtype(dtype, dev))

    def encode(start: int, stop: int) -> np.ndarray:
        tok = tokenizer(captions[start:stop], padding="max_length", max_length=TEXT_TOKENS, truncation=True,
                        return_tensors="pt")
        return enc(input_ids=tok["input_ids"].to(dev)).last_hidden_state.float().cpu().numpy()  # (b, 77, W)

    out = _encode_in_batches(len(ids), batch_size, encode, "text targets", progress)
    path = cache.targets_path("text")
    save_tensors(path, {"embeddings": out}, {"image_ids": ids, "model": str(model), "route": "text"})
    return path
