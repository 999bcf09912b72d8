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



def use_huge_pages() -> bool:
    """Ask PyTorch to back large CPU tensors with transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``).

    glibc serves every block above 32 MiB with a fresh ``mmap`` and unmaps it on free, so each
    large activation of every CPU training step is page-faulted in again, 4 KiB at a time: on
    this project's 2-core machine that makes elementwise ops several times slower and costs
    EEGNetTransformer about a fifth of its training step (benchmarks/models.py ``--thp``).
    With PyTorch's own switch, blocks of 2 MiB and more are aligned and ``madvise``d for huge
    pages, 512 times fewer faults; memory is still returned to the OS on free. It takes effect
    only where the kernel allows it (``/sys/kernel/mm/transparent_hugepage/enabled`` is
    ``[madvise]`` or ``[always]``) and must be set before torch allocates, so the CLI calls this
    before a training command imports torch. A value the user already set is kept
    (``THP_MEM_ALLOC_ENABLE=0`` opts out). Returns whether it is on.
    """
    import os

    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    return os.environ["THP_MEM_ALLOC_ENABLE"] == "1"
