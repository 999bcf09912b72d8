"""Where live results go: a JSON-lines log written line by line, and an LSL outlet.

The log is an append-only record of a session, readable while it grows: each line is one
``write`` of a complete JSON object, flushed at once (fsynced when the log closes), so a crash or
Ctrl-C leaves every earlier line intact. An existing file is never replaced unless ``overwrite``;
the log is never one of the command's inputs, nor a directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from eegalign.errors import ConfigError


def check_log_path(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], overwrite: bool) -> Path:
    """Refuse (one line) a log path that exists (unless ``overwrite``), is a directory, an input or inside one."""
    from eegalign.outputs import check_not_input, check_writable

    path = Path(out)
    inputs = [Path(i) for i in inputs if i]
    check_not_input(path, inputs)
    real = path.resolve()
    for item in inputs:  # a file of an input (a model directory's config.json, the gallery file) is an input too
        src = item.resolve()
        if real == src or src in real.parents:
            raise ConfigError(f"--out {out} is (inside) an input of this command ({src}); choose another file")
    if path.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name (results are JSON lines)")
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise ConfigError(f"--out {out} already exists (pass --overwrite to replace it, or choose another file)")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ConfigError(f"--out {out} is not a regular file; --overwrite replaces only a file")
    check_writable(path.parent if str(path.parent) else Path("."))
    return path


class ResultLog:
    """A JSON-lines file opened exclusively (``O_EXCL``); use as a context manager."""

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.path = Path(path)
        if overwrite and self.path.is_file() and not self.path.is_symlink():
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        self._file = os.fdopen(fd, "w", encoding="utf-8", buffering=1)
        self.lines = 0

    def write(self, record: dict[str, Any]) -> str:
        """Append ``record`` as one line (flushed); return the line without its newline."""
        line = json.dumps(record, allow_nan=False, separators=(",", ":"))
        self._file.write(line + "\n")
        self._file.flush()
        self.lines += 1
        return line

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> "ResultLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResultOutlet:
    """An LSL string stream (type ``Markers``) carrying the same JSON line per trial, for the experiment software."""

    def __init__(self, name: str, source_id: str):
        import pylsl

        self._pylsl = pylsl
        info = pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, source_id)
        info.desc().append_child_value("content", "eegalign stream results: one JSON object per trial")
        self.outlet = pylsl.StreamOutlet(info)

    def push(self, line: str, timestamp: float) -> None:
        self.outlet.push_sample([line], timestamp)

    def linger(self, seconds: float = 0.5) -> None:
        """Give connected consumers ``seconds`` to receive the last results before the outlet goes."""
        import time

        if self.outlet.have_consumers():
            time.sleep(seconds)
