"""Output directories: what made them, and when ``--overwrite`` may replace one.

Every command that writes an output directory also writes :data:`MARKER` into it (kind, command,
eegalign version, time, host, PID), as part of the same atomic swap. ``--overwrite`` replaces a
directory only if it is an eegalign output of the same kind (or empty), never an input of the
command, never a directory holding an input or the current directory, never a file.
:func:`check_out` runs those checks before any work, together with a writability and (where the
size is known) free-space check, so a refusal touches nothing and costs nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eegalign.errors import ConfigError, DataError

MARKER = ".eegalign-output.json"

# Outputs of eegalign versions before the marker, recognised by files only eegalign writes together.
LEGACY_SIGNATURES: dict[str, tuple[tuple[str, ...], ...]] = {
    "evaluation": (("metrics.json", "report.html", "predictions.safetensors"),),
    "ridge": (("ridge.json", "predictions.safetensors"),),
    "comparison": (("compare.json", "compare.html"),),
    "synthetic": (("synthetic.json", "targets"),),
    "cache": (("manifest.json", "eeg.npy", "meta.parquet"),),
    "audit": (("audit.json", "audit.html"),),
    "generation": (("generation.json",),),
    "demo": (("demo.json",),),
    "run": (("config.yaml",), ("checkpoints",), ("metrics.csv",)),
    "model": (("config.json", "model.safetensors", "preprocess.json"),),
}

# What each kind is called in messages.
KIND_NAMES = {
    "evaluation": "`eegalign evaluate` output", "ridge": "`eegalign baseline ridge` output",
    "comparison": "`eegalign compare` output", "synthetic": "synthetic data set (`eegalign data synth`)",
    "cache": "cache (`eegalign data prepare`)", "audit": "`eegalign audit` output",
    "generation": "`eegalign generate` output", "demo": "`eegalign demo` output", "run": "run directory (`eegalign fit`)",
    "model": "model directory (`eegalign export`)",
}


def marker_record(kind: str, command: str | None = None) -> dict[str, Any]:
    """The content of a marker: which kind of output, written by which command and version, when, where."""
    from eegalign import __version__

    return {
        "kind": kind, "command": command or f"eegalign ({kind})", "eegalign_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": socket.gethostname(), "pid": os.getpid(),
    }


def write_marker(directory: str | os.PathLike, kind: str, command: str | None = None) -> Path:
    """Write (atomically) the marker saying ``directory`` is an eegalign output of ``kind``."""
    from eegalign.io import write_json

    path = Path(directory) / MARKER
    write_json(path, marker_record(kind, command))
    return path


def read_marker(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The marker of ``directory``, or None if it has none (or an unreadable one)."""
    try:
        rec = json.loads((Path(directory) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("kind"), str) else None


def output_kind(directory: str | os.PathLike) -> str | None:
    """The kind of eegalign output ``directory`` is (from its marker, else a legacy signature), or None."""
    rec = read_marker(directory)
    if rec is not None:
        return rec["kind"]
    d = Path(directory)
    for kind, signatures in LEGACY_SIGNATURES.items():
        if any(all((d / f).exists() for f in files) for files in signatures):
            return kind
    return None


def _nearest_existing(path: Path, option: str = "--out") -> Path:
    """``path`` or its closest existing ancestor; a file on the way is refused (``--out`` under a file)."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                raise ConfigError(f"{p} is a file, not a directory: choose {_a(option)} that is a directory path")
            return p
    return Path("/")


def _a(option: str) -> str:
    return f"an {option}" if option.lstrip("-")[:1] in "aeiou" else f"a {option}"


def check_writable(path: str | os.PathLike, need_bytes: int = 0, option: str = "--out") -> None:
    """Refuse (one line) if ``path`` (or the directory that would hold it) cannot be written or is too full.

    ``option``: what the user sets to choose another place, named in the message (``--out``,
    ``--trainer.default_root_dir`` ...).
    """
    base = _nearest_existing(Path(path).absolute(), option)
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataError(f"cannot write in {base} ({e.strerror or e}): choose a writable {option}") from None
    free = shutil.disk_usage(base).free
    if need_bytes and free < need_bytes:
        raise DataError(
            f"not enough free space in {base}: this output needs about {need_bytes / 2**20:.0f} MiB, "
            f"{free / 2**20:.0f} MiB are free; free some space or choose another {option}"
        )


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_replaceable(out: Path, kind: str) -> None:
    """Refuse to replace ``out`` unless it is an (empty directory or) eegalign output of ``kind``."""
    if out.is_symlink() or not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory; --overwrite replaces only {KIND_NAMES.get(kind, kind)}s")
    if not any(out.iterdir()):
        return
    found = output_kind(out)
    if found == kind:
        return
    what = f"an eegalign {KIND_NAMES.get(found, found)}" if found else "not an eegalign output"
    raise ConfigError(
        f"{out} is {what}; --overwrite replaces only an earlier {KIND_NAMES.get(kind, kind)} (or an empty "
        f"directory): remove it yourself if you mean it, or choose another --out"
    )


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> Path:
    """Refuse an ``out`` that is, or contains, one of ``inputs`` or the current directory; return it resolved."""
    path = Path(out)
    real = path.resolve()
    for item in inputs:
        if item is None or str(item) == "":
            continue
        src = Path(item).resolve()
        if _is_within(src, real):
            which = "is" if src == real else "contains"
            raise ConfigError(f"--out {out} {which} an input of this command ({src}): an output never replaces "
                              f"its inputs; choose another --out")
    if _is_within(Path.cwd().resolve(), real) and (path.exists() or path.is_symlink()):
        raise ConfigError(f"--out {out} is or contains the current directory; choose a new directory for the output")
    return real


def check_out(
    out: str | os.PathLike, kind: str, *, inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False, need_bytes: int = 0,
) -> Path:
    """Check, before any work, that ``out`` may receive a new output of ``kind``; return it resolved.

    Refuses (one-line :class:`ConfigError`/:class:`DataError`): ``out`` being, or containing, one of
    ``inputs`` or the current directory; an existing ``out`` without ``overwrite``; with
    ``overwrite``, an ``out`` that is not an eegalign output of ``kind`` (or empty); a file on the
    way; a destination that cannot be written or has less than ``need_bytes`` free.
    """
    path = Path(out)
    real = check_not_input(out, inputs)
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise ConfigError(f"output directory {out} already exists (pass --overwrite to replace it)")
        check_replaceable(path, kind)
    check_writable(path, need_bytes)
    return real
