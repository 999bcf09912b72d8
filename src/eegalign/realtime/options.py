"""Checks of the numeric command-line options of ``eegalign replay`` and ``eegalign stream`` (no pylsl needed)."""

from __future__ import annotations

import math

from eegalign.errors import ConfigError


def check_positive(values: dict[str, float], *, zero_ok: bool = False) -> None:
    """Raise a one-line :class:`ConfigError` unless every value of ``{option: value}`` is finite and > 0 (>= 0 with ``zero_ok``).

    ``inf`` and ``nan`` are refused: an infinite rate, gap or chunk makes no schedule, and an infinite
    wait or timeout would let a command run unbounded.
    """
    for option, value in values.items():
        v = float(value)
        if not math.isfinite(v) or v < 0 or (v == 0 and not zero_ok):
            raise ConfigError(f"{option} must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value!r}")
