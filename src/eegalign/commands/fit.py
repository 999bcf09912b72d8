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
#: shown at the top of `eegalign fit --help`
ENCODER_HELP = (
    "Encoders: eegalign.models.NervFormer, EEGFormer, EEGNetTransformer, NICE, MLPEncoder, Braindecode* "
    "(`eegalign models` lists them). One encoder's hyperparameters, each typed with its default and a "
    "line of documentation: `eegalign fit --model.encoder.help eegalign.models.NervFormer`; set one with "
    "`--model.encoder.init_args.NAME VALUE` (e.g. --model.encoder.init_args.n_heads 4). "
    "`--model.cpu_kernels true` swaps in the CPU training kernels (same weights; docs/performance.md)."
)


def _cli_class() -> type:
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    class EEGAlignCLI(LightningCLI):
        """LightningCLI with eegalign's links, checkpointing and loggers."""

        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.description = ENCODER_HELP
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
            # Default loggers: CSV + TensorBoard writing into the run directory itself (no
            # version_N subfolder), so `--ckpt_path last` finds the run's last.ckpt again.
            cfg = self._get(self.config_init, "trainer", default={})
            if cfg.get("logger") in (None, True):
                from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

                root = cfg.get("default_root_dir") or os.getcwd()
                resuming = bool(self._get(self.config, "ckpt_path", default=None)) and self.subcommand == "fit"
                csv_cls = _appending_csv_logger() if resuming else CSVLogger
                cfg["logger"] = [
                    TensorBoardLogger(save_dir=root, name="", version="", default_hp_metric=False),
                    csv_cls(save_dir=root, name="", version=""),
                ]
            return super().instantiate_trainer(**kwargs)

    return EEGAlignCLI


def _appending_csv_logger() -> type:
    """A CSVLogger that appends to the run's metrics.csv (a resumed run keeps its history).

    Lightning's CSVLogger deletes an existing metrics.csv; when resuming (``--ckpt_path``) the rows
    of the interrupted run are kept and new columns are merged into the header.
    """
    import csv

    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class _AppendingWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:  # keep the interrupted run's metrics.csv
            if self._fs.isfile(self.metrics_file_path):
                with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                    self.metrics_keys = sorted(next(csv.reader(f), []))

    class AppendingCSVLogger(CSVLogger):
        @property
        @rank_zero_experiment
        def experiment(self) -> ExperimentWriter:
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = _AppendingWriter(log_dir=self.log_dir)
            return self._experiment

    return AppendingCSVLogger


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
    try:
        cli = _cli_class()(
            AlignmentModule,
            EEGDataModule,
            subclass_mode_model=False,
            subclass_mode_data=False,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            parser_kwargs={"prog": "eegalign", "description": DESCRIPTION, "exit_on_error": False},
            args=[subcommand, *argv],
            run=True,
        )
    except argparse.ArgumentError as e:
        raise ConfigError(_one_line_config_error(str(e), subcommand)) from e
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
