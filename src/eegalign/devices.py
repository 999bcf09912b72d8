"""``--device`` and ``--dtype`` as every command that runs a model understands them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eegalign.errors import ConfigError

if TYPE_CHECKING:
    import torch

DTYPES = ("auto", "float32", "float16", "bfloat16")


def resolve_device(device: str = "auto", *, allow_mps: bool = False) -> "torch.device":
    """``auto`` -> CUDA if available (then Apple MPS when ``allow_mps``), else CPU; else as given.

    An unknown device name, or CUDA asked for where there is none, is a ConfigError.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if allow_mps and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"unknown --device {device!r} ({e})") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} requested but CUDA is not available; pass --device cpu")
    return dev


def resolve_dtype(dtype: str, device: "torch.device") -> "torch.dtype":
    """``auto`` -> float16 on CUDA, float32 elsewhere (fp16 is slow or unsupported on CPU)."""
    import torch

    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    table = {"float16": torch.float16, "fp16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if dtype not in table:
        raise ConfigError(f"unknown --dtype {dtype!r}; choose auto, float16, bfloat16 or float32")
    return table[dtype]
