"""``eegalign fit|validate|test|predict``: LightningCLI over AlignmentModule + EEGDataModule.

Everything is configurable from YAML (``--config configs/<run>.yaml``) and the command line
(``--model.encoder.init_args.preset small``, ``--data.cache DIR``, ``--trainer.max_epochs 5``).
The data module's ``n_chans``, ``n_times`` and ``target_shape`` are linked to the encoder's
``n_chans``, ``n_times`` and ``out_shape`` (so a config never repeats them), and its ``route``
and ``cache`` are recorded in the model (and so in every checkpoint).

The run directory is ``--trainer.default_root_dir``: it receives ``config.yaml`` (the resolved
configuration), ``metrics.csv`` and the TensorBoard event files (both loggers by default, in the
same directory), ``hparams.yaml`` and ``checkpoints/`` (best-k on ``val/loss`` plus
``last.ckpt``). Re-running the same command with ``--ckpt_path last`` resumes there.
"""

from __future__ import annotations

import os
from typing import Any

DESCRIPTION = "Train (fit), validate, test or predict with an EEG -> CLIP encoder (LightningCLI)."
#: shown at the top of `eegalign fit --help`; every encoder's hyperparameters are listed at its end
ENCODER_HELP = (
    "Encoders: eegalign.models.NervFormer, EEGFormer, EEGNetTransformer, NICE, MLPEncoder, Braindecode* "
    "(`eegalign models` lists them). Every encoder's hyperparameters, typed, with their defaults and a line "
    "of documentation, are listed at the end of this help (also: `eegalign fit --model.encoder.help "
    "eegalign.models.NervFormer`); set one with `--model.encoder.init_args.NAME VALUE` (e.g. "
    "--model.encoder.init_args.n_heads 4). `--model.cpu_kernels true` swaps in the CPU training kernels "
    "(same weights; docs/performance.md). A --ckpt_path trained on a cache prepared differently from "
    "--data.cache is refused; --allow-preprocessing-mismatch goes on anyway. So is one whose run used other "
    "subjects than this --data.subjects / --data.leave_out_subject selection; --allow-subject-mismatch goes on anyway."
)


def _encoders_epilog() -> str:
    """The help's epilog, generated from the registered encoders' constructors."""
    from eegalign.models import list_models, model_class
    from eegalign.models.hyperparameters import encoders_help

    return encoders_help([model_class(name) for name in list_models()])


def _line_keeping_formatter(base: type) -> type:
    """``base`` (jsonargparse's help formatter) keeping the line breaks of a multi-line description or epilog.

    Each line is wrapped on its own to the terminal width (an indented line continues at column
    6, under a hyperparameter's documentation), so the epilog's per-encoder layout survives; one-line texts are filled as before.
    """
    import textwrap

    class LineKeepingHelpFormatter(base):  # type: ignore[misc, valid-type]
        def _fill_text(self, text: str, width: int, indent: str) -> str:
            if "\n" not in text.strip():
                return super()._fill_text(text, width, indent)
            out = []
            for line in text.splitlines():
                depth = len(line) - len(line.lstrip())
                pad, more = indent + " " * depth, indent + " " * (max(depth, 6) if depth else 0)
                out.append(textwrap.fill(line.strip(), width, initial_indent=pad, subsequent_indent=more))
            return "\n".join(out)

    return LineKeepingHelpFormatter


def _cli_class() -> type:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    class EEGAlignCLI(LightningCLI):
        """LightningCLI with eegalign's links, checkpointing and loggers."""

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.description = ENCODER_HELP
            parser.epilog = _encoders_epilog()
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults(
                {
                    "checkpoint.monitor": "val/loss",
                    "checkpoint.mode": "min",
                    "checkpoint.save_top_k": 1,
                    "checkpoint.save_last": True,
                    "checkpoint.filename": "epoch{epoch:03d}-val_loss{val/loss:.4f}",
                    "checkpoint.auto_insert_metric_name": False,
                }
            )
            parser.link_arguments("data.n_chans", "model.encoder.init_args.n_chans", apply_on="instantiate")
            parser.link_arguments("data.n_times", "model.encoder.init_args.n_times", apply_on="instantiate")
            parser.link_arguments(
                "data.target_shape", "model.encoder.init_args.out_shape", compute_fn=list, apply_on="instantiate"
            )
            parser.link_arguments("data.route", "model.route")
            parser.link_arguments("data.cache", "model.cache")

        def instantiate_trainer(self, **kwargs: Any) -> Any:
            # The run directory's rules (eegalign.rundir) before anything is written into it, then the
            # default loggers: CSV + TensorBoard writing into the run directory itself (no version_N
            # subfolder), so `--ckpt_path last` finds the run's last.ckpt again; checkpoints saved atomically.
            from pathlib import Path

            from eegalign.checkpoint_io import AtomicCheckpointIO
            from eegalign.rundir import RunRecords, is_secondary_rank

            cfg = self._get(self.config_init, "trainer", default={})
            root = Path(cfg.get("default_root_dir") or os.getcwd())
            managed = self.subcommand is not None and not is_secondary_rank()  # run=False: nothing is written
            if managed:
                _check_before_writing(self, root)
            records = _open_run_dir(self, root) if managed else RunRecords()
            self.save_config_kwargs["config_filename"] = records.config
            if cfg.get("logger") in (None, True):
                from lightning.pytorch.loggers import TensorBoardLogger

                tensorboard = TensorBoardLogger(save_dir=str(root), name="", version="", default_hp_metric=False)
                # it writes its hyperparameters file (in place) only if absent: name it as the CSV logger's,
                # which writes it atomically first, so no stray or half-written hparams.yaml appears
                tensorboard.NAME_HPARAMS_FILE = records.hparams
                cfg["logger"] = [tensorboard, _safe_csv_logger()(save_dir=str(root), name="", version="", records=records)]
            plugins = cfg.get("plugins") or []
            plugins = plugins if isinstance(plugins, list) else [plugins]
            if not any(hasattr(p, "save_checkpoint") for p in plugins):
                cfg["plugins"] = [*plugins, AtomicCheckpointIO()]
            return super().instantiate_trainer(**kwargs)

    return EEGAlignCLI


def _atomic_save_config() -> type:
    """LightningCLI's SaveConfigCallback writing the resolved configuration atomically (rank 0 only)."""
    from lightning.pytorch.cli import SaveConfigCallback

    from eegalign.io import atomic_file

    class AtomicSaveConfig(SaveConfigCallback):
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            if self.already_saved:
                return
            log_dir = trainer.log_dir if self.save_to_log_dir else None  # a collective: every rank asks
            if log_dir is not None and trainer.is_global_zero:
                with atomic_file(os.path.join(log_dir, self.config_filename)) as tmp:
                    self.parser.save(self.config, str(tmp), skip_none=False, overwrite=True, multifile=False)
            if trainer.is_global_zero:
                self.save_config(trainer, pl_module, stage)
                self.already_saved = True
            self.already_saved = trainer.strategy.broadcast(self.already_saved)

    return AtomicSaveConfig


_HELD_LOCKS: list[Any] = []
_INTERRUPTED: list[bool] = []
_ALLOW_MISMATCH: list[bool] = []  # --allow-preprocessing-mismatch given (eegalign's flag, not Lightning's)
_ALLOW_SUBJECTS: list[bool] = []  # --allow-subject-mismatch given (idem)
SUBJECTS_FLAG = "--allow-subject-mismatch"


def _interrupt_flag() -> Any:
    """A callback noting a Ctrl-C: Lightning handles it and exits with status 1; eegalign exits with 130."""
    from lightning.pytorch.callbacks import Callback

    class InterruptFlag(Callback):
        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if isinstance(exception, KeyboardInterrupt):
                _INTERRUPTED.append(True)

    return InterruptFlag()


def _check_before_writing(cli: Any, root: Any) -> None:
    """Before anything is written: the run directory is not in the input cache, the checkpoint to resume is
    intact and fits the model, the checkpoint's preprocessing matches the cache, there is room."""
    from pathlib import Path

    from eegalign.checkpoint_io import check_resume, checkpoint_size_estimate
    from eegalign.errors import ConfigError
    from eegalign.outputs import check_writable

    cache_dir = getattr(cli.datamodule, "cache_path", None)
    if cache_dir and Path(cache_dir).resolve() in (Path(root).resolve(), *Path(root).resolve().parents):
        raise ConfigError(f"--trainer.default_root_dir {root} is, or is inside, --data.cache {cache_dir}: a run never writes "
                          f"into its input cache (a later `data prepare --overwrite` would delete it); choose a "
                          f"directory outside the cache")
    callback = cli._get(cli.config_init, "checkpoint", default=None)
    ckpt_dir = Path(getattr(callback, "dirpath", None) or Path(root) / "checkpoints")
    ckpt_path = cli._get(cli.config, "ckpt_path", default=None)
    if cli.subcommand == "fit" and ckpt_path:
        _check_something_to_resume(str(ckpt_path), Path(root), ckpt_dir)
        check_resume(str(ckpt_path), ckpt_dir, cli.model)
    if ckpt_path:
        _check_ckpt_preprocessing(cli, str(ckpt_path), ckpt_dir)
    if cli.subcommand == "fit":
        top_k = getattr(callback, "save_top_k", 1)
        copies = (top_k if top_k > 0 else 0) + 2  # best-k, last, and the temporary file of a save
        check_writable(ckpt_dir, need_bytes=copies * checkpoint_size_estimate(cli.model),
                       option="--trainer.default_root_dir")


def _check_something_to_resume(ckpt_path: str, root: Any, ckpt_dir: Any) -> None:
    """``--ckpt_path last`` into a run that saved no checkpoint: refused (Lightning would quietly start from scratch
    beside the stopped run's records). Into a new or empty directory it starts a run, as Lightning does."""
    from eegalign.checkpoint_io import resolve_last
    from eegalign.errors import ConfigError
    from eegalign.outputs import output_kind
    from eegalign.rundir import RUN_KIND

    if ckpt_path == "last" and resolve_last(ckpt_dir) is None and output_kind(root) == RUN_KIND:
        raise ConfigError(f"--ckpt_path last: run directory {root} holds no checkpoint to resume in {ckpt_dir} (its "
                          f"run stopped before the first); start a new run in another --trainer.default_root_dir")


def _check_ckpt_preprocessing(cli: Any, ckpt_path: str, ckpt_dir: Any) -> None:
    """Refuse (one line) a ``--ckpt_path`` trained on a cache prepared differently from ``--data.cache``."""
    from pathlib import Path

    from eegalign.checkpoint_io import resolve_last
    from eegalign.checkpoints import CHECKPOINT_KEY, read_checkpoint
    from eegalign.data.preprocessing_record import check_preprocessing

    path = resolve_last(Path(ckpt_dir)) if ckpt_path == "last" else Path(ckpt_path)
    manifest = getattr(getattr(cli.datamodule, "cache", None), "manifest", None)
    if path is None or not path.is_file() or not isinstance(manifest, dict):
        return  # "best"/"hpc"/"registry", nothing to resume, or a datamodule without an eegalign cache
    meta = read_checkpoint(path).get(CHECKPOINT_KEY)
    if not isinstance(meta, dict):
        return  # not written by eegalign fit: no record to compare (Lightning loads it as it is)
    doing = {"fit": "resume"}.get(cli.subcommand, cli.subcommand)
    check_preprocessing(meta.get("preprocessing"), manifest, f"checkpoint {path}", bool(_ALLOW_MISMATCH), doing)
    _check_ckpt_subjects(cli, meta.get("subjects"), path, doing)


def _check_ckpt_subjects(cli: Any, recorded: Any, path: Any, doing: str) -> None:
    """Refuse (one line) to test/validate/predict/resume a checkpoint on other subjects than its run's.

    A leave-one-subject-out checkpoint tested with the default subject selection would be scored on
    its training subjects too, silently. The run's record (None in older checkpoints) decides.
    """
    import sys

    from eegalign.errors import ConfigError
    from eegalign.system import _subject_protocol

    now = _subject_protocol(cli.datamodule)
    if not isinstance(recorded, dict) or now is None:
        return
    split = {"test": "test", "predict": getattr(cli.datamodule, "predict_split", "test")}.get(cli.subcommand, "train")
    key = "test" if split == "test" else "train"  # validation trials come from the training subjects
    if list(recorded.get(key) or []) == now[key] and (key == "test" or recorded.get("test") == now["test"]):
        return
    text = (f"checkpoint {path} was trained with subjects {recorded.get('train')} and tested on {recorded.get('test')} "
            f"({recorded.get('protocol')}), but this {doing} uses {now[key]} for its {split} split")
    if _ALLOW_SUBJECTS:
        print(f"eegalign: warning: {text}", file=sys.stderr)
        return
    raise ConfigError(f"{text}; pass the run's --data.subjects / --data.leave_out_subject, or {SUBJECTS_FLAG} "
                      f"to {doing} on these subjects anyway")


def _open_run_dir(cli: Any, root: Any) -> Any:
    """Lock ``root`` for this process and apply the run-directory rules; return where records go."""
    from eegalign.outputs import read_marker, write_marker
    from eegalign.rundir import RunLock, plan_records

    lock = RunLock(root, cli.subcommand).acquire()
    _HELD_LOCKS.append(lock)
    resuming = cli.subcommand == "fit" and bool(cli._get(cli.config, "ckpt_path", default=None))
    records = plan_records(root, cli.subcommand, resuming)
    if cli.subcommand == "fit" and read_marker(root) is None:
        write_marker(root, "run", "eegalign fit")
    return records


def _safe_experiment_writer() -> type:
    """Lightning's ExperimentWriter made safe: it keeps an existing metrics file (its rows and header),
    rewrites the whole file atomically at every flush, and writes the hyperparameters atomically; both
    file names come from the run's records (:func:`eegalign.rundir.plan_records`)."""
    import csv
    import io as _io

    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    from eegalign.io import atomic_file

    class _SafeWriter(ExperimentWriter):
        def __init__(self, log_dir: str, records: Any) -> None:
            """``records`` names the files: ``records.metrics`` (CSV) and ``records.hparams`` (YAML)."""
            self.NAME_METRICS_FILE, self.NAME_HPARAMS_FILE = records.metrics, records.hparams
            super().__init__(log_dir=log_dir)

        def _check_log_dir_exists(self) -> None:  # keep what is there
            """Adopt the header of an existing metrics file instead of deleting it."""
            if os.path.isfile(self.metrics_file_path):
                with open(self.metrics_file_path, newline="") as f:
                    self.metrics_keys = sorted(next(csv.reader(f), []))

        def save(self) -> None:
            """Old rows + buffered rows under the merged header, written atomically; empties the buffer."""
            if not self.metrics:
                return
            self._record_new_keys()
            old: list[dict[str, str]] = []
            if os.path.isfile(self.metrics_file_path):
                with open(self.metrics_file_path, newline="") as f:
                    old = list(csv.DictReader(f))
            text = _io.StringIO()
            writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows([*old, *self.metrics])
            with atomic_file(self.metrics_file_path) as tmp:
                tmp.write_text(text.getvalue())
            self.metrics = []

        def log_hparams(self, params: dict[str, Any]) -> None:
            """Merge ``params`` into the hyperparameters and rewrite their YAML file atomically."""
            from lightning.pytorch.core.saving import save_hparams_to_yaml

            self.hparams.update(params)
            with atomic_file(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)) as tmp:
                save_hparams_to_yaml(str(tmp), self.hparams)

    return _SafeWriter


def _safe_csv_logger() -> type:
    """A CSVLogger that never deletes or truncates a file: records named per invocation, atomic rewrites.

    Lightning's CSVLogger deletes an existing metrics.csv and appends in place; this one keeps the
    rows already there (a resumed run keeps its history), merges new columns into the header and
    rewrites the whole file atomically at every flush, and writes the hyperparameters atomically to
    the name :func:`eegalign.rundir.plan_records` chose (see :func:`_safe_experiment_writer`).
    """
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    safe_writer = _safe_experiment_writer()

    class SafeCSVLogger(CSVLogger):
        def __init__(self, *args: Any, records: Any, **kwargs: Any) -> None:
            """CSVLogger's arguments, plus the run's ``records`` (file names for the writer)."""
            super().__init__(*args, **kwargs)
            self._records = records

        @property
        @rank_zero_experiment
        def experiment(self) -> ExperimentWriter:
            """The safe writer, created (with its directory) on first use."""
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = safe_writer(log_dir=self.log_dir, records=self._records)
            return self._experiment

    return SafeCSVLogger


def _drop_lightning_tips(record) -> bool:
    """A ``logging`` filter: False for Lightning's product tips (e.g. "💡 Tip: ... try installing litlogger")."""
    return "💡 Tip:" not in record.getMessage()


def run_lightning(subcommand: str, argv: list[str]) -> int:
    """Run ``LightningCLI`` for ``subcommand`` (fit/validate/test/predict) with ``argv``; return 0.

    A configuration error (unknown key, unknown class, bad value) becomes one ConfigError line
    (exit status 2) instead of jsonargparse's full usage text.
    """
    import argparse
    import logging
    import warnings

    from jsonargparse import DefaultHelpFormatter

    from eegalign.errors import ConfigError

    from eegalign.data.datamodule import EEGDataModule
    from eegalign.system import AlignmentModule

    # Lightning's advice for interactive clusters and its num_workers hint are noise for this CLI.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    warnings.filterwarnings("ignore", message=".*Experiment logs directory .* exists and is not empty.*")
    # Lightning's own use of a torch pytree API that torch 2.13 deprecates: nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_drop_lightning_tips)
    from eegalign.data.preprocessing_record import ALLOW_FLAG

    _ALLOW_MISMATCH.clear()
    if ALLOW_FLAG in argv:
        _ALLOW_MISMATCH.append(True)
        argv = [a for a in argv if a != ALLOW_FLAG]
    _ALLOW_SUBJECTS.clear()
    if SUBJECTS_FLAG in argv:
        _ALLOW_SUBJECTS.append(True)
        argv = [a for a in argv if a != SUBJECTS_FLAG]
    try:
        cli = _cli_class()(
            AlignmentModule,
            EEGDataModule,
            subclass_mode_model=False,
            subclass_mode_data=False,
            save_config_callback=_atomic_save_config(),
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            trainer_defaults={"callbacks": [_interrupt_flag()]},
            parser_kwargs={"prog": "eegalign", "description": DESCRIPTION, "exit_on_error": False,
                           "formatter_class": _line_keeping_formatter(DefaultHelpFormatter)},
            args=[subcommand, *argv],
            run=True,
        )
    except argparse.ArgumentError as e:
        raise ConfigError(_one_line_config_error(str(e), subcommand)) from e
    except SystemExit:
        if _INTERRUPTED:  # Lightning's graceful shutdown after Ctrl-C ends in sys.exit(1)
            _INTERRUPTED.clear()
            raise KeyboardInterrupt from None
        raise
    finally:
        while _HELD_LOCKS:
            _HELD_LOCKS.pop().release()
    del cli
    return 0


def _one_line_config_error(message: str, subcommand: str) -> str:
    """jsonargparse's multi-line explanation folded into one line, with where to look next."""
    parts = [ln.strip(" -") for ln in message.splitlines() if ln.strip(" -")]
    text = "".join(p + (" " if p.endswith(":") else "; ") for p in parts).rstrip("; ").replace(f"unrecognized arguments: {subcommand} ", "unrecognized arguments: ")
    hint = f"see `eegalign {subcommand} --help`"
    if "class_path" in text:
        hint += " and `eegalign models` for the encoders"
    return f"invalid configuration: {text} ({hint})"
