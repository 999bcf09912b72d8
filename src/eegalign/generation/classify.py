"""ImageNet-1k classifier logits for a list of images (transformers).

Reference classifier: ``google/vit-base-patch16-224`` (a local directory or a hub id). Loaded with
``AutoModelForImageClassification`` + ``AutoImageProcessor``; without torchvision, transformers
falls back to its PIL image processors, which is fine here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eegalign.errors import ConfigError, WeightsError, first_line, missing_weights_message
from eegalign.hub import resolve_pretrained

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    from PIL import Image

CLASSIFIER_REFERENCE = "google/vit-base-patch16-224"
N_IMAGENET = 1000


def load_classifier(spec: str, device: "torch.device") -> tuple[Any, Any]:
    """Load (model, image processor) and check that it scores the 1000 ImageNet-1k classes."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    source = resolve_pretrained(spec, "ImageNet classifier", "--classifier")
    local = Path(source)
    try:
        model = AutoModelForImageClassification.from_pretrained(source)
        processor = AutoImageProcessor.from_pretrained(source)
    except Exception as e:
        if not local.is_dir() and isinstance(e, OSError):
            raise WeightsError(missing_weights_message("ImageNet classifier", spec, "--classifier")) from e
        text = first_line(e)
        raise WeightsError(f"could not load the classifier {spec!r}: {text}") from e
    n_labels = int(model.config.num_labels)
    if n_labels != N_IMAGENET:
        raise ConfigError(
            f"the classifier {spec!r} has {n_labels} output classes; N-way accuracy needs an ImageNet-1k "
            f"classifier (1000 classes), e.g. {CLASSIFIER_REFERENCE}"
        )
    return model.to(device).eval(), processor


def classify_images(
    model: Any, processor: Any, images: "Sequence[Image.Image | str | os.PathLike]", *, batch_size: int = 32,
    desc: str = "classify",
) -> "np.ndarray":
    """Logits (M, 1000) float32 of ``images``: PIL images or image files (opened one batch at a time)."""
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(images), batch_size), desc=desc, leave=False):
            batch = [_rgb(im) for im in images[start : start + batch_size]]
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(device)  # (B, 3, H, W)
            logits = model(pixel_values=pixels).logits  # (B, 1000)
            out.append(logits.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, N_IMAGENET), dtype=np.float32)


def _rgb(image: "Image.Image | str | os.PathLike") -> "Image.Image":
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    with Image.open(image) as im:
        return im.convert("RGB")
