"""The generator of a run: the Stable Diffusion pipeline, its IP-Adapter on the image route, placed on a device.

Shapes are checked against the predictions before anything is generated: the IP-Adapter's image
embedding width (image route, (N, D)) or the UNet's cross-attention width (text route, (N, 77, W)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eegalign.errors import ConfigError
from eegalign.generation.settings import GenerationSettings

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class Generator:
    """A loaded pipeline and what a batch needs besides the embeddings.

    Attributes:
        pipe: a ``PerTrialPipeline`` (with its IP-Adapter on the image route).
        route: ``image`` or ``text``.
        negative_text: text route: the encoded empty prompt (1, 77, W); None on the image route.
        device, dtype: where and in which precision it computes.
    """

    pipe: Any
    route: str
    negative_text: "torch.Tensor | None"
    device: "torch.device"
    dtype: "torch.dtype"

    def record(self) -> dict[str, str]:
        """The resolved device and dtype, for ``generation.json``."""
        return {"resolved_device": str(self.device), "resolved_dtype": str(self.dtype).replace("torch.", "")}


def _check_ip_adapter_width(dim: int, pred_shape: tuple[int, ...]) -> None:
    if pred_shape[1] != dim:
        raise ConfigError(
            f"the predictions are {pred_shape[1]}-d but the IP-Adapter expects {dim}-d CLIP image "
            f"embeddings; use the IP-Adapter matching the CLIP model of the targets"
        )


def _check_text_width(pipe: Any, pred_shape: tuple[int, ...]) -> None:
    width = int(pipe.unet.config.cross_attention_dim)
    if pred_shape[2] != width:
        raise ConfigError(
            f"the predictions are (…, {pred_shape[1]}, {pred_shape[2]}) but the pipeline's UNet expects text "
            f"states of width {width}; use the Stable Diffusion model whose text encoder made the targets"
        )


def load_generator(settings: GenerationSettings, route: str, pred_shape: tuple[int, ...]) -> Generator:
    """Load the pipeline (and the IP-Adapter on the image route), check widths, place it.

    Args:
        settings: validated generation settings.
        route: ``image`` (pred_shape (N, D)) or ``text`` (pred_shape (N, 77, W)).
        pred_shape: shape of the predictions to generate from.
    """
    from eegalign.devices import resolve_device, resolve_dtype
    from eegalign.generation import pipelines

    device = resolve_device(settings.device, allow_mps=True)
    dtype = resolve_dtype(settings.dtype, device)
    pipe = pipelines.load_sd_pipeline(
        settings.sd_model, dtype=dtype, scheduler=settings.scheduler, safety_checker=settings.safety_checker,
    )
    if route == "image":
        dim = pipelines.add_ip_adapter(
            pipe, settings.ip_adapter or pipelines.IP_ADAPTER_REFERENCE, weight_name=settings.ip_adapter_weight,
            subfolder=settings.ip_adapter_subfolder, scale=settings.ip_adapter_scale,
        )
        _check_ip_adapter_width(dim, pred_shape)
    else:
        _check_text_width(pipe, pred_shape)
    pipelines.place_pipeline(pipe, device, cpu_offload=settings.cpu_offload, vae_slicing=settings.vae_slicing,
                             vae_tiling=settings.vae_tiling)
    negative_text = pipelines.encode_empty_prompt(pipe) if route == "text" else None
    return Generator(pipe, route, negative_text, device, dtype)


def release(generator: Generator) -> None:
    """Free the pipeline's memory (the scoring networks come next)."""
    import torch

    generator.pipe = None
    if generator.device.type == "cuda":
        torch.cuda.empty_cache()
