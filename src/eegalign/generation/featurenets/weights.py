"""Reading feature-network weight files without unpickling arbitrary objects.

``.safetensors`` files are read with safetensors; anything else (``.pth``, ``.pth.tar``, ``.pt``)
with ``torch.load(weights_only=True)``, which refuses files holding anything but tensors and
plain containers.
"""

from __future__ import annotations

from pathlib import Path

import torch

from eegalign.errors import WeightsError


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` state dict from ``path`` (CPU tensors).

    Args:
        path: a ``.safetensors`` file or a torch pickle readable with ``weights_only=True``; a
            top-level ``{"state_dict": {...}}`` wrapper is unwrapped.

    Raises:
        WeightsError: the file cannot be read safely or holds no tensors.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's problem
        raise WeightsError(f"cannot read weights {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not any(isinstance(v, torch.Tensor) for v in sd.values()):
        raise WeightsError(f"{path} holds no state dict of tensors")
    return {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}


def strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``sd`` with ``prefix`` removed from the names that start with it (e.g. DataParallel's ``module.``)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}


def load_strict(module: torch.nn.Module, sd: dict[str, torch.Tensor], path: str | Path) -> None:
    """``module.load_state_dict(sd, strict=True)``, with a one-line :class:`WeightsError` on mismatch."""
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"weights {path} do not fit {type(module).__name__}: {str(exc).splitlines()[0]}") from exc
