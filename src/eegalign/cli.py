"""The ``eegalign`` command line.

``eegalign --help`` lists the commands without importing torch. Each command lives in its own
module ``eegalign.commands.<name>`` exposing ``add_arguments(parser)`` and ``run(args) -> int``;
the module is imported only when its command runs. ``fit``/``validate``/``test``/``predict`` are
handed to LightningCLI untouched.

Errors a user can fix (:class:`eegalign.errors.EEGAlignError`, missing files, bad values) are
printed as one line on stderr with exit status 2; anything else is a bug, printed as one line
with exit status 1, and with its traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("eegalign.commands.data", "make a synthetic data set (synth) or prepare a source into a cache (prepare)"),
    "embed": ("eegalign.commands.embed", "compute CLIP image/text targets for every image of a cache"),
    "fit": ("eegalign.commands.fit", "train an encoder (LightningCLI; see `eegalign fit --help`)"),
    "validate": ("eegalign.commands.fit", "run validation of a checkpoint (LightningCLI)"),
    "test": ("eegalign.commands.fit", "run the test loop of a checkpoint (LightningCLI)"),
    "predict": ("eegalign.commands.fit", "run prediction with a checkpoint (LightningCLI)"),
    "baseline": ("eegalign.commands.baseline", "fit a closed-form baseline (ridge) and write its predictions"),
    "audit": ("eegalign.commands.audit", "leakage audit of a cache: confound probes and split hygiene"),
    "evaluate": ("eegalign.commands.evaluate", "metrics, baselines and an HTML report for a checkpoint or predictions file"),
    "compare": ("eegalign.commands.compare", "put several runs' metrics side by side"),
    "generate": ("eegalign.commands.generate", "Stable Diffusion images from predicted embeddings + N-way accuracy"),
    "demo": ("eegalign.commands.demo", "synthetic data -> prepare -> train -> evaluate -> report, on CPU"),
    "models": ("eegalign.commands.models", "list the registered encoders and their presets"),
    "export": ("eegalign.commands.export", "a checkpoint -> a self-contained model directory (safetensors, ONNX, hub)"),
    "convert-seed": ("eegalign.commands.convert_seed", "a seed (original project) checkpoint -> a model directory"),
    "replay": ("eegalign.commands.replay", "publish a cache's trials as live LSL EEG + marker streams"),
    "stream": ("eegalign.commands.stream", "decode live LSL EEG at each marker with a model directory (JSON lines)"),
}

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


class OneLineParser(argparse.ArgumentParser):
    """argparse with its usage errors as one ``eegalign: error:`` line (and a pointer to --help), not the usage text.

    Sub-parsers (``eegalign data synth``) inherit the class.
    """

    def error(self, message: str) -> NoReturn:
        from eegalign.errors import clean_message

        text = " ".join(clean_message(message).split())
        self.exit(2, f"eegalign: error: {text} (see `{self.prog} --help`)\n")


def _top_parser() -> argparse.ArgumentParser:
    from eegalign import __version__

    epilog = "commands:\n" + "\n".join(f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items())
    epilog += "\n\nRun `eegalign COMMAND --help` for a command's options. Add --debug anywhere for tracebacks."
    p = OneLineParser(
        prog="eegalign",
        description="Decode what a person sees from EEG: CLIP-aligned encoders, honest metrics, image generation.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"eegalign {__version__}")
    p.add_argument("command", nargs="?", choices=list(COMMANDS), metavar="COMMAND", help="one of the commands below")
    return p


def _close_progress_bars() -> None:
    """Finish any progress bar an interrupted stage left open, so the error starts on its own line."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        bar.close()


_FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk or quota


def _is_disk_error(exc: BaseException) -> bool:
    """A full disk, a quota or a read-only file system: the user's to fix, reported in one line."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def _report_error(exc: BaseException, debug: bool) -> int:
    from eegalign.errors import EEGAlignError, clean_message

    _close_progress_bars()

    if debug:
        import traceback

        traceback.print_exception(exc)
    user_errors: tuple[type[BaseException], ...] = (EEGAlignError, FileNotFoundError, NotADirectoryError, PermissionError)
    if type(exc).__name__ == "MisconfigurationException":  # Lightning: e.g. an accelerator this machine lacks
        from eegalign.commands.lightning_checks import misconfiguration_message

        exc = EEGAlignError(misconfiguration_message(exc))
    if isinstance(exc, user_errors) or _is_disk_error(exc):
        msg = str(exc) if not isinstance(exc, OSError) or not exc.filename else f"{exc.strerror}: {exc.filename}"
        if _is_disk_error(exc) and exc.errno in _FULL:  # e.g. pyarrow's "[Errno 28] Error writing bytes to file"
            where = f": {exc.filename}" if exc.filename else ""
            msg = f"{os.strerror(exc.errno)}{where}; free some space (or choose another output place) and run the command again"
        elif _is_disk_error(exc) and exc.errno == errno.EROFS:
            msg += "; choose an output place on a writable file system"
        msg = " ".join(clean_message(msg).split())  # one line, no ANSI codes
        print(f"eegalign: error: {msg}", file=sys.stderr)
        return 2
    text = clean_message(str(exc)).strip()
    msg = text.splitlines()[0] if text else ""
    print(
        f"eegalign: internal error: {type(exc).__name__}: {msg} (rerun with --debug for the traceback)",
        file=sys.stderr,
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if debug:
        os.environ["EEGALIGN_DEBUG"] = "1"
    else:
        # transformers/diffusers log warnings (e.g. the PIL fallback of image processors when torchvision
        # is absent) that are noise on a command line; --debug keeps them.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

    if not argv or argv[0] not in COMMANDS:
        _top_parser().parse_args(argv or ["--help"])  # prints help / version / error and exits
        return 2
    command, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[command]
    try:
        module = importlib.import_module(module_name)
        if command in LIGHTNING_COMMANDS:
            from eegalign.commands.lightning_checks import check_argv

            check_argv(rest, command)  # binary --config, pickled --ckpt_path: one line, before Lightning starts
            return int(module.run_lightning(command, rest) or 0)
        parser = OneLineParser(prog=f"eegalign {command}", description=help_text)
        module.add_arguments(parser)
        args = parser.parse_args(rest)
        args.debug = debug
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        _close_progress_bars()  # so that the message starts its own line
        print("eegalign: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        return _report_error(exc, debug)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
