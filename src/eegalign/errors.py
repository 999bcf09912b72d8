"""User-facing errors.

Raise :class:`EEGAlignError` (or a subclass) for anything a user can fix: a missing file, a
wrong shape, a missing weight. The CLI prints its message as one line on stderr and exits
with status 2; any other exception is a bug and is shown with its traceback only under
``--debug``.
"""

from __future__ import annotations

import re


class EEGAlignError(Exception):
    """An error caused by the user's input or environment, with a one-line explanation."""


class DataError(EEGAlignError):
    """Bad or missing data: wrong schema, shape, empty split, corrupt file."""


class WeightsError(EEGAlignError):
    """Model weights that cannot be found, loaded, or trusted."""


class ConfigError(EEGAlignError):
    """An unknown model, option, or an inconsistent configuration."""


def missing_weights_message(what: str, model_id: str, option: str) -> str:
    """The one sentence a user sees when weights are not available offline."""
    return (
        f"could not load the {what} '{model_id}': it is neither a local directory nor in the "
        f"Hugging Face cache, and the hub is unreachable; download it on a machine with internet "
        f"access and pass its local directory with {option} PATH"
    )


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")  # terminal colour/cursor codes
UNSAFE_LOAD = "needs unpickling of Python objects (which can run arbitrary code), and eegalign never unpickles files"


def clean_message(text: str) -> str:
    """A message fit for one terminal line: no ANSI codes, never torch's advice to load a file unsafely."""
    text = _ANSI.sub("", text)
    if "Weights only load failed" in text:  # torch.load(weights_only=True) refused a pickle: keep no advice
        return f"the file {UNSAFE_LOAD}"
    return text


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none), for one-line errors."""
    text = clean_message(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
