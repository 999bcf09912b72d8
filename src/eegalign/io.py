"""Atomic file and directory writes, and safetensors with JSON metadata.

Everything eegalign writes goes through here: a half-written output never looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from eegalign.errors import DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to ``final`` only if the block succeeds.

    On any exception (or a kill) the temporary directory is removed (or left with a
    ``.tmp-`` prefix that readers ignore), so ``final`` is either absent or complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); outputs get the usual permissions
    try:
        yield tmp
        if final.exists():
            if not overwrite:
                raise FileExistsError(f"{final} already exists")
            trash = final.with_name(f".trash-{final.name}-{os.getpid()}")
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same directory; rename it to ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{final.name}-", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private (0600)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, strict JSON (no NaN/Infinity), atomically."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    except ValueError as e:  # NaN or Infinity somewhere: not JSON, refuse before writing anything
        raise DataError(f"refusing to write {Path(path).name}: a value is NaN or infinite, which strict JSON cannot hold ({e})") from e
    with atomic_file(path) as tmp:
        tmp.write_text(text + "\n")


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_tensors(
    path: str | os.PathLike, tensors: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> None:
    """Save numpy arrays / torch tensors to safetensors, atomically.

    Metadata values that are not strings are stored as JSON (safetensors metadata is str -> str).
    """
    import numpy as np
    from safetensors.numpy import save_file

    arrays = {}
    for k, v in tensors.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        arrays[k] = np.ascontiguousarray(v)
    meta = {k: v if isinstance(v, str) else json.dumps(v, default=_json_default) for k, v in (metadata or {}).items()}
    with atomic_file(path) as tmp:
        save_file(arrays, str(tmp), metadata=meta)


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """Load a safetensors file as numpy arrays plus its raw (str -> str) metadata."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = dict(f.metadata() or {})
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for corrupt files
        raise DataError(f"{path} is not a readable safetensors file ({e})") from e
    return arrays, meta
