"""Batched IP-Adapter generation where every image sees only its own trial's embedding.

The upstream problem (diffusers issue #9813, still so in 0.42): ``StableDiffusionPipeline.__call__``
passes ``batch_size * num_images_per_prompt`` to ``prepare_ip_adapter_image_embeds`` as its
``num_images_per_prompt``, which concatenates the given embeddings that many times. Handed one
``(2B, 1, D)`` tensor (B negatives, then B trials), it returns ``(2B*B, 1, D)``; the UNet projects
that to ``(2B*B, 1, T, C)`` IP tokens and ``IPAdapterAttnProcessor`` reshapes them with
``.view(2B, -1, heads, head_dim)``: each image then attends to the IP tokens of all B trials.

What the attention processor needs is one row of IP tokens per row of its attention batch:
``(2B, 1, T, C)``, negatives first, in the order of the latents. :class:`PerTrialPipeline` feeds
exactly that (it takes ``ip_adapter_image_embeds`` as already one row per image), and
:func:`install_trial_mixing_guard` checks, at every IP-Adapter attention call, that the IP
tokens diffusers actually hands the processor have that layout, raising
:class:`TrialMixingError` otherwise (e.g. if a future diffusers changes how it calls or expands
them).
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import Attention, IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0

GUARD_ATTRIBUTE = "_eegalign_trial_mixing_guard"


class TrialMixingError(RuntimeError):
    """The IP-Adapter tokens reaching an attention layer would mix the trials of a batch."""


class PerTrialPipeline(StableDiffusionPipeline):
    """``StableDiffusionPipeline`` whose ``ip_adapter_image_embeds`` hold one row per generated image.

    Pass one tensor per IP-Adapter, shaped ``(2B, 1, D)`` under classifier-free guidance (the B
    negative rows first, then the B trials, in the order of the prompts/generators) or ``(B, 1, D)``
    without. They are handed to the UNet unchanged, instead of being repeated B times as the parent
    class does. Everything else (text route, ``ip_adapter_image``) is the parent's behaviour.
    """

    def prepare_ip_adapter_image_embeds(
        self,
        ip_adapter_image: Any,
        ip_adapter_image_embeds: list[torch.Tensor] | None,
        device: torch.device,
        num_images_per_prompt: int,
        do_classifier_free_guidance: bool,
    ) -> list[torch.Tensor]:
        """Return ``ip_adapter_image_embeds`` on ``device`` after checking they have one row per image.

        ``num_images_per_prompt`` is what ``__call__`` passes: the number of images of the call
        (``batch_size * num_images_per_prompt``), i.e. B.
        """
        if ip_adapter_image_embeds is None:
            return super().prepare_ip_adapter_image_embeds(
                ip_adapter_image, None, device, num_images_per_prompt, do_classifier_free_guidance
            )
        rows = 2 * num_images_per_prompt if do_classifier_free_guidance else num_images_per_prompt
        prepared = []
        for embeds in ip_adapter_image_embeds:  # one (rows, 1, D) tensor per IP-Adapter
            if embeds.shape[0] != rows or embeds.shape[1] != 1:
                raise TrialMixingError(
                    f"ip_adapter_image_embeds of shape {tuple(embeds.shape)} for {num_images_per_prompt} images: "
                    f"expected ({rows}, 1, D), one row per image{' (negatives first)' if do_classifier_free_guidance else ''}"
                )
            prepared.append(embeds.to(device=device))
        return prepared


def _check_ip_tokens(module: Attention, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook of an IP-Adapter attention layer: one row of IP tokens per attention row."""
    hidden = args[0] if args else kwargs["hidden_states"]  # (N, L, C) or (N, C, H, W)
    states = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
    if not isinstance(states, tuple):
        return None  # the deprecated single-tensor form is never produced by the UNet of diffusers >= 0.27
    _, ip_states = states
    for ip in ip_states:  # (N, images, T, C) per IP-Adapter
        if ip.shape[0] != hidden.shape[0] or ip.shape[1] != 1:
            raise TrialMixingError(
                f"an IP-Adapter attention layer got IP tokens of shape {tuple(ip.shape)} for an attention batch of "
                f"{hidden.shape[0]}: each image would attend to other trials' embeddings (diffusers issue #9813); "
                f"expected ({hidden.shape[0]}, 1, tokens, channels)"
            )
    return None


def install_trial_mixing_guard(unet: torch.nn.Module) -> int:
    """Check the IP tokens at every IP-Adapter attention layer of ``unet``; return how many layers are guarded.

    Idempotent: a layer already guarded is skipped. Call after ``load_ip_adapter``.
    """
    guarded = 0
    for module in unet.modules():
        if isinstance(module, Attention) and isinstance(module.processor, (IPAdapterAttnProcessor, IPAdapterAttnProcessor2_0)):
            if not hasattr(module, GUARD_ATTRIBUTE):
                setattr(module, GUARD_ATTRIBUTE, module.register_forward_pre_hook(_check_ip_tokens, with_kwargs=True))
            guarded += 1
    return guarded
