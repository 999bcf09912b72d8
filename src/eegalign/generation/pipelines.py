"""Stable Diffusion pipelines conditioned on predicted CLIP embeddings (diffusers).

Two routes, one pipeline class (``StableDiffusionPipeline``, reference: SD 1.5):

* image route: an IP-Adapter (reference ``h94/IP-Adapter``, ``models/ip-adapter_sd15``) is
  loaded with ``load_ip_adapter(..., image_encoder_folder=None)`` -- no CLIP image tower, we
  hand the pipeline ``ip_adapter_image_embeds``: one tensor per adapter, (B, 1, D), and under
  classifier-free guidance (2B, 1, D) with the negative (zero) embeddings first. The pipeline is
  a :class:`~eegalign.generation.ip_batching.PerTrialPipeline`, which passes them to the UNet as
  one row per image (the parent class would repeat them B times and mix the trials of a batch,
  diffusers issue #9813), and a guard checks the IP tokens at every IP-Adapter attention layer;
* text route: the predicted (B, 77, 768) text hidden states are the ``prompt_embeds``; the
  negative embeddings are the encoded empty prompt.

Each image gets its own CPU ``torch.Generator`` seeded per trial, so an image depends on its
trial's seed only, not on the batch it was generated in or on the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from eegalign.errors import ConfigError, WeightsError, first_line, missing_weights_message
from eegalign.hub import resolve_pretrained

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from diffusers import StableDiffusionPipeline
    from PIL import Image

SD_REFERENCE = "stable-diffusion-v1-5/stable-diffusion-v1-5"
IP_ADAPTER_REFERENCE = "h94/IP-Adapter"
IP_ADAPTER_SUBFOLDER = "models"
IP_ADAPTER_WEIGHTS = ("ip-adapter_sd15.safetensors", "ip-adapter_sd15.bin")

# --scheduler name -> diffusers class; built with from_config(pipe.scheduler.config).
SCHEDULERS: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpm": "DPMSolverMultistepScheduler",
    "dpm_sde": "DPMSolverMultistepScheduler",  # with algorithm_type="sde-dpmsolver++" (SCHEDULER_OPTIONS)
    "lms": "LMSDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
    "ddpm": "DDPMScheduler",
}

# Extra from_config arguments: "dpm_sde" is DPM-Solver++ with its SDE variant (stochastic, seeded by the
# per-trial generators); DPMSolverSDEScheduler would need torchsde, which eegalign does not require.
SCHEDULER_OPTIONS: dict[str, dict[str, Any]] = {"dpm_sde": {"algorithm_type": "sde-dpmsolver++"}}


def _is_missing_weights(exc: BaseException) -> bool:
    """Errors huggingface_hub / diffusers raise when a repo is neither local nor reachable."""
    return isinstance(exc, (OSError, EnvironmentError)) or type(exc).__name__ in {
        "LocalEntryNotFoundError",
        "RepositoryNotFoundError",
        "EntryNotFoundError",
        "HfHubHTTPError",
        "OfflineModeIsEnabled",
    }


def load_sd_pipeline(
    sd_model: str,
    *,
    dtype: "torch.dtype",
    scheduler: str | None = None,
    safety_checker: bool = False,
) -> "StableDiffusionPipeline":
    """Load a Stable Diffusion 1.x pipeline (as a ``PerTrialPipeline``, on the CPU) from a local directory or a hub id.

    Place it with :func:`place_pipeline` (after :func:`add_ip_adapter` on the image route). The
    safety checker is off by default: on ImageNet stimuli its false positives turn images black,
    which would bias the N-way accuracy; pass ``safety_checker=True`` to keep it (it then needs
    ``safety_checker/`` and ``feature_extractor/``). Without it, ``feature_extractor/`` is not
    needed either.
    """
    from eegalign.generation.ip_batching import PerTrialPipeline

    kw: dict[str, Any] = {**_dtype_kwarg(dtype), "low_cpu_mem_usage": _has_accelerate()}
    if not safety_checker:
        kw.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    sd_model = resolve_pretrained(sd_model, "Stable Diffusion model", "--sd-model")
    local = Path(sd_model)
    if safety_checker and local.is_dir():
        _check_safety_checker_files(local)
    try:
        pipe = PerTrialPipeline.from_pretrained(sd_model, **kw)
    except Exception as e:
        if local.is_dir():
            raise WeightsError(f"could not load a Stable Diffusion pipeline from {local}: {first_line(e)}") from e
        if _is_missing_weights(e):
            raise WeightsError(missing_weights_message("Stable Diffusion model", sd_model, "--sd-model")) from e
        raise
    if scheduler:
        pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)  # we show one bar over all batches instead
    return pipe


def _check_safety_checker_files(sd_dir: Path) -> None:
    """--safety-checker with a local pipeline: its two folders must be there (one sentence if not)."""
    missing = [sub for sub in ("safety_checker", "feature_extractor") if not (sd_dir / sub / "config.json").is_file()
               and not (sd_dir / sub / "preprocessor_config.json").is_file()]
    if missing:
        folders = " and ".join(f"{sub}/" for sub in missing)
        raise WeightsError(
            f"--safety-checker needs {folders} in {sd_dir}, which holds no such folder: download them too "
            f'(hf download ... --include "safety_checker/*" --include "feature_extractor/*", docs/generation.md) '
            f"or drop --safety-checker"
        )


def place_pipeline(
    pipe: "StableDiffusionPipeline",
    device: "torch.device",
    *,
    cpu_offload: bool = False,
    vae_slicing: bool = False,
    vae_tiling: bool = False,
) -> None:
    """Put ``pipe`` on ``device``, or keep it in CPU memory and move each model to ``device`` only while it runs.

    Args:
        device: where the denoising runs.
        cpu_offload: diffusers' model CPU offload (accelerate): peak GPU memory is the largest model
            (the UNet) instead of all of them; needs a CUDA/XPU device.
        vae_slicing: decode the batch's latents one image at a time (less memory at large batches).
        vae_tiling: decode each image in overlapping tiles (less memory at large sizes; may show seams).
    """
    if cpu_offload:
        if device.type == "cpu" or device.type == "mps":
            raise ConfigError(f"--cpu-offload keeps the models in CPU memory and runs them on a GPU; "
                              f"the device here is {device.type}: drop --cpu-offload")
        if not _has_accelerate():
            raise ConfigError("--cpu-offload needs the accelerate package: pip install accelerate")
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if vae_slicing:
        pipe.vae.enable_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()


def execution_device(pipe: "StableDiffusionPipeline") -> "torch.device":
    """Where the pipeline computes (with CPU offload its models sit on the CPU between calls)."""
    return pipe._execution_device  # noqa: SLF001 - diffusers' own name for it; the public .device says "cpu" under offload


def make_scheduler(name: str, config: Any) -> Any:
    """Build scheduler ``name`` (a key of :data:`SCHEDULERS`) from an existing scheduler config."""
    import diffusers

    if name not in SCHEDULERS:
        raise ConfigError(f"unknown --scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}")
    return getattr(diffusers, SCHEDULERS[name]).from_config(config, **SCHEDULER_OPTIONS.get(name, {}))


def resolve_ip_adapter(spec: str, weight_name: str | None = None, subfolder: str | None = None) -> tuple[str, str, str]:
    """Turn ``--ip-adapter`` into diffusers' (source, subfolder, weight_name).

    ``spec`` is a weight file, a directory holding one (directly or under ``models/``), or a
    hub id (then ``subfolder`` defaults to ``models`` and the weight to ``ip-adapter_sd15``).
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return str(path.parent), "", path.name
    if not path.is_dir():
        resolve_pretrained(spec, "IP-Adapter", "--ip-adapter")  # a missing local path fails here, at once
    if path.is_dir():
        names = (weight_name,) if weight_name else IP_ADAPTER_WEIGHTS
        subs = (subfolder,) if subfolder is not None else ("", IP_ADAPTER_SUBFOLDER)
        for sub in subs:
            for name in names:
                if (path / sub / name).is_file():
                    return str(path), sub, name
        raise WeightsError(
            f"no IP-Adapter weights ({' or '.join(names)}) in {path} or {path / IP_ADAPTER_SUBFOLDER}; "
            f"pass the weight file itself with --ip-adapter FILE"
        )
    return spec, IP_ADAPTER_SUBFOLDER if subfolder is None else subfolder, weight_name or IP_ADAPTER_WEIGHTS[0]


def add_ip_adapter(
    pipe: "StableDiffusionPipeline",
    spec: str,
    *,
    weight_name: str | None = None,
    subfolder: str | None = None,
    scale: float = 1.0,
) -> int:
    """Load an IP-Adapter into ``pipe`` without its CLIP image encoder; return its image embedding dim.

    Also installs the guard that fails with ``TrialMixingError`` if the IP tokens reaching an attention
    layer would mix the trials of a batch.
    """
    source, sub, name = resolve_ip_adapter(spec, weight_name, subfolder)
    local = Path(source).is_dir()
    from diffusers.utils import logging as dlogging

    verbosity = dlogging.get_verbosity()
    # diffusers 0.42 casts the new projection with .to(dtype) and then warns about "modules that should
    # be kept in float32: []" (an empty list): noise, so errors only while loading.
    dlogging.set_verbosity_error()
    try:
        pipe.load_ip_adapter(
            source, subfolder=sub, weight_name=name, image_encoder_folder=None, low_cpu_mem_usage=_has_accelerate()
        )
    except Exception as e:
        if not local and _is_missing_weights(e):
            raise WeightsError(missing_weights_message("IP-Adapter", spec, "--ip-adapter")) from e
        raise WeightsError(f"could not load the IP-Adapter {spec!r} ({name}): {first_line(e)}") from e
    finally:
        dlogging.set_verbosity(verbosity)
    pipe.set_ip_adapter_scale(scale)
    from eegalign.generation.ip_batching import install_trial_mixing_guard

    if install_trial_mixing_guard(pipe.unet) == 0:
        raise WeightsError(f"the IP-Adapter {spec!r} installed no IP-Adapter attention processor in the UNet")
    layers = pipe.unet.encoder_hid_proj.image_projection_layers
    proj = layers[0]
    linear = getattr(proj, "image_embeds", None)
    if linear is None or not hasattr(linear, "in_features"):
        raise WeightsError(
            f"the IP-Adapter {spec!r} is not a plain IP-Adapter (image projection {type(proj).__name__}); "
            f"eegalign conditions on one pooled CLIP image embedding, use ip-adapter_sd15"
        )
    return int(linear.in_features)


def encode_empty_prompt(pipe: "StableDiffusionPipeline") -> "torch.Tensor":
    """The text encoder's hidden states of the empty prompt, (1, 77, 768): the text route's negative."""
    embeds, _ = pipe.encode_prompt("", execution_device(pipe), 1, False)
    return embeds  # (1, S, D)


def generate_batch(
    pipe: "StableDiffusionPipeline",
    embeds: "torch.Tensor",
    route: str,
    seeds: list[int],
    *,
    steps: int,
    guidance: float,
    size: int,
    prompt: str = "",
    negative_text: "torch.Tensor | None" = None,
) -> list["Image.Image"]:
    """Generate one image per row of ``embeds`` with its own seed; image i depends on row i and seed i only.

    Args:
        pipe: from :func:`load_sd_pipeline` (a ``PerTrialPipeline``; on the image route with the
            IP-Adapter of :func:`add_ip_adapter`).
        embeds: image route (B, D) pooled CLIP image embeddings; text route (B, 77, 768).
        seeds: B seeds, one per image (a CPU generator each).
        negative_text: text route only, (1, 77, 768) encoded empty prompt.
    """
    import torch

    b = embeds.shape[0]
    if len(seeds) != b:
        raise ValueError(f"{len(seeds)} seeds for {b} embeddings")
    device, dtype = execution_device(pipe), pipe.unet.dtype
    generators = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    common: dict[str, Any] = dict(
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=size,
        width=size,
        generator=generators,
        output_type="pil",
    )
    cfg = guidance > 1.0 and pipe.unet.config.time_cond_proj_dim is None
    embeds = embeds.to(device=device, dtype=dtype)
    if route == "image":
        from eegalign.generation.ip_batching import PerTrialPipeline

        if b > 1 and not isinstance(pipe, PerTrialPipeline):
            raise TypeError(f"a {type(pipe).__name__} would mix the trials of an IP-Adapter batch: use load_sd_pipeline")
        pos = embeds[:, None, :]  # (B, D) -> (B, 1, D)
        ip = torch.cat([torch.zeros_like(pos), pos]) if cfg else pos  # (2B, 1, D): negative first
        out = pipe(prompt=[prompt] * b, ip_adapter_image_embeds=[ip], **common)
    elif route == "text":
        if negative_text is None:
            negative_text = encode_empty_prompt(pipe)
        neg = negative_text.to(device=device, dtype=dtype).expand(b, -1, -1)  # (1, S, D) -> (B, S, D)
        out = pipe(prompt_embeds=embeds, negative_prompt_embeds=neg, **common)
    else:
        raise ConfigError(f"route must be 'image' or 'text', got {route!r}")
    return list(out.images)


def _dtype_kwarg(dtype: "torch.dtype") -> dict[str, Any]:
    """diffusers 0.42 renamed from_pretrained's ``torch_dtype`` to ``dtype`` (the old name warns); older
    releases only know ``torch_dtype``."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401 - present where `dtype` is accepted
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def _has_accelerate() -> bool:
    """diffusers' low-memory loading needs accelerate (optional here); without it, say so quietly."""
    import importlib.util

    return importlib.util.find_spec("accelerate") is not None
