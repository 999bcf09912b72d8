"""The preprocessing fingerprint of a cache, recorded in checkpoints and compared at evaluation.

A model trained on EEG z-scored one way, band-passed or sampled another way, sees other numbers
when evaluated on a cache prepared differently, and its metrics are then silently wrong.
:func:`preprocessing_record` extracts what the cache's ``manifest.json`` records about its
preprocessing; :func:`check_preprocessing` compares a checkpoint's record with the evaluated
cache and refuses a difference in one line (unless explicitly allowed).
"""

from __future__ import annotations

import sys
from typing import Any

from eegalign.errors import DataError

PARAM_KEYS = ("format", "norm", "bandpass", "sfreq")  # from manifest["params"]
SHAPE_KEYS = ("n_chans", "n_times")  # from the manifest itself: channel set and crop length
ALLOW_FLAG = "--allow-preprocessing-mismatch"


def preprocessing_record(manifest: dict[str, Any]) -> dict[str, Any]:
    """``{format, norm, bandpass, sfreq, n_chans, n_times}`` of a cache manifest (missing keys: None)."""
    params = manifest.get("params") or {}
    rec = {k: params.get(k) for k in PARAM_KEYS}
    rec.update({k: manifest.get(k) for k in SHAPE_KEYS})
    return rec


def differences(trained: dict[str, Any], evaluated: dict[str, Any]) -> list[str]:
    """One ``key: trained X, this cache Y`` phrase per preprocessing setting that differs."""
    out = []
    for key in (*PARAM_KEYS, *SHAPE_KEYS):
        a, b = trained.get(key), evaluated.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b):
            continue
        if a != b:
            out.append(f"{key}: trained on {a!r}, this cache {b!r}")
    return out


def check_preprocessing(recorded: Any, manifest: dict[str, Any], what: str, allow: bool = False,
                        doing: str = "evaluate") -> None:
    """Refuse to apply ``what`` (a checkpoint) to a cache prepared differently from its training cache.

    ``recorded``: the checkpoint's record (None for checkpoints written before it existed: a warning).
    ``allow``: report the difference as a warning instead (the user's explicit choice).
    ``doing``: the verb for the messages (``evaluate``, ``resume``, ``validate``, ...).
    """
    if not isinstance(recorded, dict):
        print(f"eegalign: warning: {what} does not record the preprocessing of its training cache (an older "
              "checkpoint): make sure the evaluated cache was prepared the same way", file=sys.stderr)
        return
    diff = differences(recorded, preprocessing_record(manifest))
    if not diff:
        return
    text = "; ".join(diff)
    if allow:
        print(f"eegalign: warning: {doing} with {what} on a cache prepared differently ({text})", file=sys.stderr)
        return
    raise DataError(
        f"{what} was trained on a cache prepared differently ({text}); prepare the cache with the same settings, "
        f"or pass {ALLOW_FLAG} to {doing} anyway"
    )
