"""Checks of ``eegalign fit|validate|test|predict`` inputs before LightningCLI sees them.

LightningCLI reports some bad inputs with internal errors: a ``--config`` file that is not text
(``UnicodeDecodeError``), or a ``--ckpt_path`` holding pickled objects (torch's advice to load it
unsafely, in ANSI colours). These checks turn them into one ``eegalign: error:`` line each.
"""

from __future__ import annotations

from pathlib import Path

from eegalign.errors import ConfigError

SPECIAL_CKPT = ("last", "best", "hpc", "registry")  # names Lightning resolves itself


def option_values(argv: list[str], name: str) -> list[str]:
    """Every value of ``--name VALUE`` or ``--name=VALUE`` in ``argv``."""
    out = []
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith(name + "="):
            out.append(a[len(name) + 1 :])
    return out


def check_config_file(path: str) -> None:
    """A ``--config`` file must be readable UTF-8 YAML holding a mapping."""
    import yaml

    p = Path(path)
    if not p.is_file():
        return  # jsonargparse also accepts inline YAML; a missing file is reported by it in one line
    try:
        data = yaml.safe_load(p.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path} is not a text file (expected UTF-8 YAML, e.g. one of eegalign/configs/*.yaml)") from None
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"--config {path} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a YAML mapping (model:, data:, trainer: ...), not {type(data).__name__}")


def check_ckpt_path(path: str) -> None:
    """A ``--ckpt_path`` file must load with ``weights_only=True`` (never unpickled), as a Lightning checkpoint."""
    if path in SPECIAL_CKPT or path.startswith("registry:"):
        return
    if not Path(path).is_file():  # Lightning notices only after it has written the run's records
        raise ConfigError(f"--ckpt_path {path}: no such checkpoint file (a checkpoint of `eegalign fit`, e.g. "
                          f"RUN/checkpoints/last.ckpt)")
    from eegalign.checkpoints import read_checkpoint

    read_checkpoint(path)  # WeightsError, one line, for pickles, truncated and foreign files


def check_argv(argv: list[str], subcommand: str | None = None) -> None:
    """Check every ``--config`` and ``--ckpt_path`` of a Lightning subcommand's arguments.

    ``validate``/``test``/``predict`` also need a ``--ckpt_path`` (on the command line or in a
    ``--config``): without one they would score the untrained, randomly initialised model and exit 0.
    """
    configs = option_values(argv, "--config")
    for cfg in configs:
        check_config_file(cfg)
    ckpts = option_values(argv, "--ckpt_path")
    for ckpt in ckpts:
        check_ckpt_path(ckpt)
    asks_help = any(a in ("-h", "--help") or a.endswith(".help") or a.startswith("--print_config") for a in argv)
    if (subcommand in ("validate", "test", "predict") and not asks_help and not ckpts
            and not any(_config_has_ckpt(c) for c in configs)):
        raise ConfigError(f"eegalign {subcommand} needs --ckpt_path (a checkpoint of `eegalign fit`, e.g. "
                          f"RUN/checkpoints/last.ckpt): without one it would score an untrained, randomly initialised model")


def _config_has_ckpt(path: str) -> bool:
    """True if the ``--config`` file (already checked to be a YAML mapping) sets ``ckpt_path``."""
    import yaml

    p = Path(path)
    return p.is_file() and bool((yaml.safe_load(p.read_text()) or {}).get("ckpt_path"))


def misconfiguration_message(exc: BaseException) -> str:
    """Lightning's MisconfigurationException (e.g. ``--trainer.accelerator gpu`` without a GPU) as one sentence."""
    from eegalign.errors import first_line

    text = first_line(exc).rstrip(".!")
    hint = ""
    if any(w in text.lower() for w in ("gpu", "cuda", "accelerator", "mps", "tpu", "devices")):
        hint = "; this machine has no such device: use --trainer.accelerator cpu (or auto)"
    return f"trainer: {text}{hint}"
