"""Run directories (``--trainer.default_root_dir``): one writer at a time, and nothing of an earlier run lost.

Rules, applied before Lightning writes anything (see docs/guarantees.md):

- **Single writer.** ``RUN/.eegalign-run.lock`` holds the writer's PID and host and an exclusive
  ``flock``; a second ``fit``/``validate``/``test``/``predict`` into the same directory is refused.
  The kernel drops the lock when its process dies, so a lock file left by a killed run is taken
  over, never obeyed.
- **A fresh ``fit``** (no ``--ckpt_path``) starts only in a new or empty directory: a directory
  holding a run (or anything else) is refused, with the two ways out (resume, or a new directory).
- **A resumed ``fit``** (``--ckpt_path``) continues the run in place: ``metrics.csv`` is appended
  to (rewritten atomically), checkpoints are replaced atomically, and its configuration and
  hyperparameters go to ``config-resume-K.yaml`` / ``hparams-resume-K.yaml`` (K = 1, 2, ...):
  the first run's ``config.yaml`` and ``hparams.yaml`` are never rewritten.
- **``validate``/``test``/``predict``** into a directory that already holds files write their
  records as ``config-<command>-K.yaml``, ``metrics-<command>-K.csv``, ``hparams-<command>-K.yaml``.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from eegalign.errors import ConfigError

LOCK_NAME = ".eegalign-run.lock"
RUN_KIND = "run"


@dataclass(frozen=True)
class RunRecords:
    """File names (in the run directory) this invocation writes its records to."""

    config: str = "config.yaml"
    hparams: str = "hparams.yaml"
    metrics: str = "metrics.csv"


def is_secondary_rank() -> bool:
    """True in a DDP worker other than global rank 0 (its rank 0 holds the lock and writes the records)."""
    return any(os.environ.get(v, "0") not in ("", "0") for v in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"))


class RunLock:
    """An exclusive, PID-stamped lock on a run directory, released by :meth:`release` or the process's death.

    Args:
        root: the run directory (created if missing).
        command: what holds the lock, for the refusal message (e.g. ``fit``).
    """

    def __init__(self, root: Path, command: str) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.root.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise ConfigError(f"run directory {self.root} is in use ({holder}); wait for that run to end or "
                                  f"choose another --trainer.default_root_dir") from None
            # the file may have been removed by its previous holder between our open and flock: retry then
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{self.command} PID {os.getpid()} on {socket.gethostname()} since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it (see the inode check in acquire)
        finally:
            os.close(self._fd)
            self._fd = None


def _contents(root: Path) -> list[str]:
    from eegalign.outputs import MARKER

    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.name not in (LOCK_NAME, MARKER))


def _next_free(root: Path, stem: str, suffix: str) -> int:
    k = 1
    while (root / f"{stem}-{k}{suffix}").exists():
        k += 1
    return k


def plan_records(root: Path, subcommand: str, resuming: bool) -> RunRecords:
    """Apply the rules above to ``root`` (already locked); return where this invocation's records go."""
    from eegalign.outputs import output_kind

    present = _contents(root)
    if subcommand != "fit":
        if not present:
            return RunRecords()
        k = max(_next_free(root, f"config-{subcommand}", ".yaml"), _next_free(root, f"metrics-{subcommand}", ".csv"))
        return RunRecords(f"config-{subcommand}-{k}.yaml", f"hparams-{subcommand}-{k}.yaml", f"metrics-{subcommand}-{k}.csv")
    if not present:
        return RunRecords()
    is_run = output_kind(root) == RUN_KIND
    shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
    if not resuming:
        if is_run and not list((root / "checkpoints").glob("*.ckpt")):
            raise ConfigError(f"run directory {root} holds the records of a run that saved no checkpoint in checkpoints/ "
                              f"({shown}: it failed or was stopped before its first); start the new run in another "
                              f"--trainer.default_root_dir, or delete {root} yourself (nothing was changed)")
        if is_run:
            raise ConfigError(f"run directory {root} already holds a run ({shown}); resume it with --ckpt_path last, "
                              f"or start a new run with another --trainer.default_root_dir (nothing was changed)")
        raise ConfigError(f"--trainer.default_root_dir {root} is not empty and is not a run directory ({shown}); "
                          f"fit writes config.yaml, metrics.csv and checkpoints/ there: choose a new directory")
    if not is_run:
        raise ConfigError(f"--trainer.default_root_dir {root} is not a run directory ({shown}); --ckpt_path resumes "
                          f"a run in the directory that run wrote")
    if not (root / "config.yaml").exists():  # the first part stopped before writing its configuration
        return RunRecords(hparams="hparams.yaml" if not (root / "hparams.yaml").exists() else
                          f"hparams-resume-{_next_free(root, 'hparams-resume', '.yaml')}.yaml")
    k = max(_next_free(root, "config-resume", ".yaml"), _next_free(root, "hparams-resume", ".yaml"))
    return RunRecords(f"config-resume-{k}.yaml", f"hparams-resume-{k}.yaml", "metrics.csv")
