"""Atomic file and directory writes, and safetensors with JSON metadata.

Everything eegalign writes goes through here: a half-written output never looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from eegalign.errors import ConfigError, DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


STALE_AGE_S = 600.0  # a temporary sibling left by a killed process is removed once this old


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@functools.lru_cache(maxsize=1)
def process_space_tag() -> str:
    """8 hex digits naming this host, boot and PID namespace: where a PID in a temporary's name means this process.

    A temporary carrying our tag whose PID is not running was certainly left by a killed process;
    one with another tag (another host on a shared file system, a container, an earlier boot or an
    eegalign before the tag) may belong to a live writer elsewhere.
    """
    import hashlib
    import socket

    parts = [socket.gethostname()]
    for source in (lambda: Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
                   lambda: os.readlink("/proc/self/ns/pid")):
        try:
            parts.append(source())
        except OSError:
            parts.append("?")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:8]


def temp_prefix(name: str, kind: str = "tmp") -> str:
    """``.tmp-NAME-PID-TAG-`` (``tempfile`` appends 8 random characters): what :func:`clean_stale` recognises."""
    return f".{kind}-{name}-{os.getpid()}-{process_space_tag()}-"


def clean_stale(parent: Path, name: str, max_age_s: float = STALE_AGE_S) -> list[Path]:
    """Remove ``.tmp-NAME-PID-*`` / ``.trash-NAME-PID-*`` siblings of ``parent/name`` left by killed processes.

    Only entries with our naming whose PID is not running are removed: at once when their tag says
    the PID is of this host, boot and PID namespace (:func:`process_space_tag`), else only once they
    are older than ``max_age_s`` (a live writer on another host of a shared file system is never touched).
    """
    pattern = re.compile(rf"^\.(?:tmp|trash)-{re.escape(name)}-(\d+)-(?:([0-9a-f]{{8}})-)?[a-z0-9_]{{8}}$")
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        try:
            if m.group(2) != process_space_tag() and now - entry.lstat().st_mtime < max_age_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed.append(entry)
        except OSError:
            continue
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def fsync_path(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            fsync_path(Path(dirpath) / f)
        fsync_path(Path(dirpath))


def _swap_in(tmp: Path, final: Path) -> None:
    """Make ``tmp`` become ``final``; an existing ``final`` is swapped out atomically, then removed."""
    if not (final.exists() or final.is_symlink()):
        os.replace(tmp, final)
        return
    if _exchange(tmp, final):  # tmp now holds the old content, under our stale-cleanable name
        old = tmp
    else:
        old = final.with_name(f"{temp_prefix(final.name, 'trash')}{os.urandom(4).hex()}")
        os.replace(final, old)
        os.replace(tmp, final)
    fsync_path(final.parent)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(
    final: str | os.PathLike, overwrite: bool = False, kind: str | None = None, command: str | None = None,
) -> Iterator[Path]:
    """Yield a temporary sibling directory; swap it in as ``final`` only if the block succeeds.

    On any exception the temporary directory is removed (a kill leaves it with a ``.tmp-NAME-PID-TAG-``
    prefix that readers ignore and a later write removes), so ``final`` is either absent, the old
    output, or the new one complete. With ``kind``, the output's marker
    (:mod:`eegalign.outputs`) is written into it, and an existing ``final`` is replaced only if
    it is an eegalign output of that kind (or empty). Files are fsynced before the swap.
    """
    from eegalign.outputs import check_replaceable, write_marker

    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final.parent, final.name)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final.name), dir=final.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); outputs get the usual permissions
    try:
        yield tmp
        if kind is not None:
            write_marker(tmp, kind, command)
        if final.exists() or final.is_symlink():
            if not overwrite:
                raise ConfigError(f"{final} already exists (pass --overwrite to replace it)")
            if kind is not None:
                check_replaceable(final, kind)
            elif not final.is_dir() or final.is_symlink():
                raise ConfigError(f"{final} exists and is not a directory; it is not replaced")
        _fsync_tree(tmp)
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the same directory; fsync it and rename it to ``final`` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=temp_prefix(final.name), dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it private (0600)
    try:
        yield tmp
        fsync_path(tmp)
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
        try:
            save_file(arrays, str(tmp), metadata=meta)
        except Exception as e:  # safetensors wraps I/O errors in its own type: keep a full disk recognisable
            if "os error 28" in str(e) or "No space left" in str(e):
                raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
            raise


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
