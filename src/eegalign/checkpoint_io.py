"""Checkpoint writes that never leave a truncated checkpoint, and resume checks that say what is wrong.

:class:`AtomicCheckpointIO` is Lightning's ``TorchCheckpointIO`` whose save serialises the
checkpoint in memory, checks the destination has room for it, writes it to a temporary file in
the checkpoint's own directory (same file system), fsyncs it and renames it over the old one.
A full disk, a kill or Ctrl-C leaves the previous ``last.ckpt`` intact. :func:`check_resume`
reads the checkpoint ``--ckpt_path`` points at before Lightning does, so a truncated or foreign
file is one clear error line.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lightning.fabric.plugins import TorchCheckpointIO

from eegalign.errors import DataError


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` with a same-directory temp file + fsync + ``os.replace`` save."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        import torch

        from eegalign.io import clean_stale, fsync_path, temp_prefix

        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(final.parent, final.name)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getbuffer()
        free = shutil.disk_usage(final.parent).free
        if free < len(data):
            raise DataError(f"not enough free space to write {final}: it needs {len(data) / 2**20:.1f} MiB, "
                            f"{free / 2**20:.1f} MiB are free (the previous checkpoints are intact)")
        fd, name = tempfile.mkstemp(prefix=temp_prefix(final.name), dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(name, 0o644)
            os.replace(name, final)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        fsync_path(final.parent)


def checkpoint_size_estimate(module: Any) -> int:
    """Bytes of a checkpoint of ``module``: its tensors plus two optimiser moments per parameter (Adam)."""
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    return 3 * params + buffers + (1 << 20)


def resolve_last(dirpath: Path) -> Path | None:
    """The checkpoint ``--ckpt_path last`` resumes from (the newest ``last*.ckpt`` in ``dirpath``), or None."""
    candidates = [p for p in dirpath.glob("last*.ckpt") if p.is_file()] if dirpath.is_dir() else []
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def check_resume(ckpt_path: str, checkpoint_dir: Path, model: Any = None) -> None:
    """Refuse (one line) a ``--ckpt_path`` that is missing, truncated, not loadable without code, or
    whose weights do not fit ``model`` (the run resumed with other model options)."""
    from eegalign.checkpoints import read_checkpoint
    from eegalign.errors import WeightsError

    if ckpt_path in ("best", "hpc", "registry") or ckpt_path.startswith("registry:"):
        return
    path = resolve_last(checkpoint_dir) if ckpt_path == "last" else Path(ckpt_path)
    if path is None:
        return  # Lightning says there is nothing to resume and starts from scratch
    if not path.is_file():
        raise WeightsError(f"--ckpt_path {path}: no such checkpoint file")
    try:
        ckpt = read_checkpoint(path)
    except WeightsError as e:
        raise WeightsError(f"cannot resume: {e}; it may have been cut short (a full disk or a crash while "
                           f"it was written): pass --ckpt_path with an intact checkpoint") from None
    if model is None:
        return
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    have = {k: tuple(getattr(v, "shape", ())) for k, v in ckpt["state_dict"].items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise WeightsError(f"cannot resume from {path}: its weights do not fit this model ({len(diff)} tensors differ, "
                           f"e.g. {diff[0]}); resume with the run's own configuration (--config RUN/config.yaml)")
