"""The loopback-only liblsl configuration shipped with eegalign, and how to switch it on.

liblsl reads the file named by the ``LSLAPICFG`` environment variable once, when it is loaded, so
:func:`use_local_config` must run before ``pylsl`` is imported. A user's own ``LSLAPICFG`` is never
overridden.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.resources import files
from pathlib import Path

from eegalign.errors import ConfigError

ENV = "LSLAPICFG"


def local_config_path() -> Path:
    """Path of the packaged ``lsl_local.cfg`` (loopback only: ResolveScope machine, KnownPeers 127.0.0.1)."""
    return Path(str(files("eegalign.realtime") / "lsl_local.cfg"))


def use_local_config() -> str:
    """Set ``LSLAPICFG`` to the loopback-only file unless the user set it; return the file in effect.

    Raises :class:`ConfigError` if pylsl was already imported without a configuration (too late to apply it).
    """
    if os.environ.get(ENV):
        return os.environ[ENV]
    if "pylsl" in sys.modules:
        raise ConfigError("pylsl was imported before --local could set LSLAPICFG; set LSLAPICFG yourself")
    os.environ[ENV] = str(local_config_path())
    return os.environ[ENV]


def require_pylsl() -> None:
    """Import pylsl, or raise a one-line :class:`ConfigError` saying how to install it."""
    try:
        import pylsl  # noqa: F401
    except (ImportError, RuntimeError) as e:  # pylsl raises RuntimeError when its liblsl cannot be loaded
        raise ConfigError(f"live decoding needs pylsl with liblsl ({e}); install it with `pip install eegalign[realtime]`") from None


def add_local_option(parser: argparse.ArgumentParser, without: str) -> None:
    """The ``--local`` flag of ``replay`` and ``stream``; ``without`` says what LSL does without it."""
    parser.add_argument("--local", action="store_true",
                        help=f"keep LSL on this machine (loopback-only liblsl config, unless {ENV} is set); without it {without}")


def load_pylsl(local: bool) -> None:
    """Apply ``--local`` (before pylsl is imported), then import pylsl or raise a one-line :class:`ConfigError`."""
    if local:
        use_local_config()
    require_pylsl()
