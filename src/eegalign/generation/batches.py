"""The batch loop: every generated set of every selected trial, ``--batch-size`` images per pipeline call.

Trial i's image depends only on its embedding and its seed (seed + i), not on the batch it falls in
(:mod:`eegalign.generation.ip_batching`), so ``--batch-size`` and ``--shard`` change speed, not pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegalign.generation.generator import Generator
from eegalign.generation.settings import GenerationSettings


def image_path(index: int, image_set: str) -> str:
    """Relative path of trial ``index``'s image of ``image_set`` (``eeg`` or ``true``)."""
    return f"images/{index:05d}_{image_set}.png"


def generate_set(
    generator: Generator,
    trials: list[dict[str, Any]],
    embeddings: np.ndarray,
    image_set: str,
    settings: GenerationSettings,
    out: Path,
    progress: Any,
) -> None:
    """Generate ``image_set`` for ``trials`` into ``out/images`` and record each path in its trial.

    Args:
        embeddings: (N_total, D) or (N_total, 77, W): the whole predictions file's embeddings of this
            set; trial ``r`` uses row ``r["index"]``.
        progress: a tqdm bar, advanced by the images written.
    """
    import torch

    from eegalign.generation.pipelines import generate_batch

    (out / "images").mkdir(exist_ok=True)
    for start in range(0, len(trials), settings.batch_size):
        batch = trials[start : start + settings.batch_size]
        rows = [r["index"] for r in batch]
        embeds = torch.from_numpy(np.ascontiguousarray(embeddings[rows], dtype=np.float32))  # (B, D) or (B, 77, W)
        images = generate_batch(
            generator.pipe, embeds, generator.route, [r["seed"] for r in batch], steps=settings.steps,
            guidance=settings.guidance_for(generator.route), size=settings.size, prompt=settings.prompt,
            negative_text=generator.negative_text,
        )
        for rec, image in zip(batch, images):
            rec[image_set] = image_path(rec["index"], image_set)
            image.save(out / rec[image_set])
        progress.update(len(batch))


def generate_all(
    generator: Generator,
    trials: list[dict[str, Any]],
    embeddings: dict[str, np.ndarray],
    settings: GenerationSettings,
    out: Path,
) -> None:
    """Generate every set in ``embeddings`` (``{"eeg": pred, "true": true}``) for every trial, one progress bar."""
    from tqdm.auto import tqdm

    total = len(trials) * len(embeddings)
    desc = f"generate ({generator.route} route, {generator.device.type})"
    with tqdm(total=total, desc=desc, unit="img") as progress:
        for image_set, source in embeddings.items():
            generate_set(generator, trials, source, image_set, settings, out, progress)
