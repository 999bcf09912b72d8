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


def keep_freed_memory() -> bool:
    """Make glibc's malloc reuse freed large blocks instead of returning them to the OS (CPU training).

    By default glibc serves every block above 32 MiB with a fresh ``mmap`` and unmaps it on
    free, so each large activation of every training step is page-faulted in again: on a
    2-core CPU that makes elementwise ops several times slower and costs EEGNetTransformer
    about a quarter of its training step (benchmarks/models.py ``--malloc``). This sets
    ``M_MMAP_MAX=0`` (large blocks come from the heap and are reused) and raises
    ``M_TRIM_THRESHOLD`` to 1 GiB (freed memory stays in the process). Peak memory is about
    unchanged; memory freed after the peak is returned to the OS only at exit.

    Process-wide and only for the commands that train (``eegalign fit``, ``demo``, ``baseline``);
    a no-op off glibc Linux, or with ``EEGALIGN_MALLOC=default``. Returns whether it applied.
    """
    import ctypes
    import os
    import sys

    if os.environ.get("EEGALIGN_MALLOC", "").lower() == "default" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**30))
