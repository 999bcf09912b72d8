"""Where pretrained weights come from: a local directory or a hub id.

Every loader of pretrained weights (CLIP encoders, Stable Diffusion, IP-Adapter, the ImageNet
classifier) resolves its argument here first, so that a local path that does not exist fails at
once with one sentence, instead of being sent to the hub as a repo id (and retried for half a
minute on a machine without internet).
"""

from __future__ import annotations

from pathlib import Path

from eegalign.errors import WeightsError


def looks_like_path(spec: str) -> bool:
    """True for things a user types as a filesystem path rather than a hub id ``owner/name``."""
    return spec.startswith(("/", "./", "../", "~", ".\\", "..\\")) or (len(spec) > 2 and spec[1:3] in (":\\", ":/"))


def resolve_pretrained(spec: str, what: str, option: str) -> str:
    """Return a local directory (absolute) or the hub id unchanged; refuse a missing local path."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise WeightsError(f"{what} {spec!r} is a file, not a directory; pass the model's directory with {option} PATH")
    if looks_like_path(spec):
        raise WeightsError(f"{what} directory not found: {spec}; pass the local directory of the downloaded weights with {option} PATH")
    return spec
