"""Reading eegalign checkpoints without Lightning: the encoder back as a plain ``nn.Module``.

``eegalign fit`` writes Lightning checkpoints whose ``"eegalign"`` record holds the encoder's
:func:`eegalign.models.encoder_config`, the route, loss config and cache (see
:mod:`eegalign.system`). Everything here loads with ``torch.load(..., weights_only=True)`` and
imports only torch and the model registry, so ``eegalign evaluate --ckpt`` and user code do
not pay for importing Lightning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from eegalign.errors import WeightsError, first_line

CHECKPOINT_KEY = "eegalign"


class ResidualEncoder(nn.Module):
    """An encoder trained with ``predict_residual``: ``encoder(x) + offset`` (the train-mean target).

    Keeps the wrapped encoder's ``n_chans``, ``n_times`` and ``out_shape``.
    """

    def __init__(self, encoder: nn.Module, offset: Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("offset", offset.detach().clone().float())
        self.n_chans, self.n_times = encoder.n_chans, encoder.n_times
        self.out_shape = tuple(encoder.out_shape)

    def forward(self, eeg: Tensor) -> Tensor:
        return self.encoder(eeg) + self.offset  # (B, C, T) -> (B, *out_shape)


def read_checkpoint(ckpt_path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(..., weights_only=True)`` with one-line :class:`WeightsError` for anything unusable.

    A file that needs code to unpickle (a pickle payload, a foreign checkpoint holding objects)
    is refused, never executed.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ...
        first = first_line(e)  # never torch's advice to load the file unsafely (see errors.clean_message)
        raise WeightsError(
            f"{path} is not a loadable eegalign checkpoint (refused by torch.load(weights_only=True): {first[:200]})"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise WeightsError(f"{path} is not a Lightning checkpoint (no state_dict)")
    return ckpt


def load_encoder(ckpt_path: str | os.PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the encoder of an eegalign checkpoint and load its weights (``weights_only=True``).

    Returns ``(encoder, info)``; ``info`` has ``encoder`` (its config), ``route``, ``loss``,
    ``epoch``, ``global_step``, ``cache`` (or None), ``preprocessing`` (the training cache's
    preprocessing record, or None) and ``hyper_parameters``. The encoder is in
    eval mode on the CPU.
    """
    ckpt = read_checkpoint(ckpt_path)
    meta = ckpt.get(CHECKPOINT_KEY)
    if not isinstance(meta, dict) or not isinstance(meta.get("encoder"), dict):
        raise WeightsError(f"{ckpt_path} was not written by eegalign fit (no '{CHECKPOINT_KEY}' record)")
    cfg = dict(meta["encoder"])
    if "name" not in cfg:
        raise WeightsError(
            f"{ckpt_path} holds a custom encoder ({cfg.get('class_path')}) that is not in the eegalign registry; "
            "rebuild it yourself and load state_dict keys starting with 'encoder.'"
        )
    from eegalign.models import build_model

    try:
        encoder = build_model(**cfg)
    except Exception as e:  # noqa: BLE001
        raise WeightsError(f"{ckpt_path}: cannot rebuild encoder {cfg.get('name')!r} ({e})") from None
    state = {k[len("encoder."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    offset = ckpt["state_dict"].get("target_offset")
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = first_line(e)
        raise WeightsError(f"{ckpt_path}: weights do not match encoder {cfg.get('name')!r} ({first})") from None
    if offset is not None and offset.numel():
        encoder = ResidualEncoder(encoder, offset)
    encoder.eval()
    info = {
        "encoder": cfg,
        "route": meta.get("route"),
        "loss": meta.get("loss"),
        "cache": meta.get("cache"),
        "preprocessing": meta.get("preprocessing"),  # None in checkpoints older than the record
        "subjects": meta.get("subjects"),  # the training run's subject protocol (None before it was recorded)
        "cache_fingerprint": meta.get("cache_fingerprint"),  # the training cache's fingerprint (idem)
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "hyper_parameters": dict(ckpt.get("hyper_parameters") or {}),
    }
    return encoder, info
