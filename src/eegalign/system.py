"""The training system: encoder + loss + optimiser + validation metrics, as a LightningModule.

:class:`AlignmentModule` receives the encoder (any ``nn.Module`` mapping ``(B, C, T) -> (B,
*target_shape)``) and the loss (an ``eegalign.losses`` module returning a dict of named terms)
as objects, so both are chosen in YAML / on the command line (``--model.encoder``,
``--model.loss``). Batches are the dicts of :class:`eegalign.data.datamodule.EEGDataModule`:
``eeg`` (B, C, T), ``target`` (B, *target_shape), ``label``, ``subject``, ``index`` (B,).

Checkpoints load with ``torch.load(path, weights_only=True)``: the hyperparameters hold plain
values only, and the key ``"eegalign"`` holds the encoder's :func:`encoder_config`, the loss
config, route, cache and the RNG states (so that a resumed run continues the same random
stream). :func:`eegalign.checkpoints.load_encoder` rebuilds an encoder from such a checkpoint
without importing Lightning (it is re-exported here, as are ``read_checkpoint`` and
``ResidualEncoder``).
"""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor, nn

from eegalign.checkpoints import CHECKPOINT_KEY, ResidualEncoder, load_encoder, read_checkpoint
from eegalign.errors import ConfigError

FORMAT_VERSION = 1


class AlignmentModule(pl.LightningModule):
    """Train an EEG encoder to regress CLIP targets.

    Args:
        encoder: the network, ``(B, C, T) -> (B, *target_shape)``.
        loss: an alignment loss (see :mod:`eegalign.losses`); its learnable parameters (e.g. the
            InfoNCE temperature) are optimised with the encoder's.
        lr, weight_decay, betas: AdamW.
        t_max: cosine annealing period in epochs (default: ``trainer.max_epochs``); stepped once per
            epoch like the reference. The learning rate follows a cosine with period ``2 * t_max``
            if training runs longer (the EEGFormer reference's T_max=100 over 310 epochs).
        eta_min: the minimum learning rate of the cosine schedule.
        warmup_epochs: linear warm-up epochs (from ``lr / (warmup_epochs + 1)``) before the cosine.
        route: ``"image"`` or ``"text"`` (linked from ``--data.route``; inferred from the target
            shape when not given). For the text route, retrieval subtracts the train-target mean.
        cache: the cache directory (linked from ``--data.cache``), recorded in checkpoints.
        fused_adamw: use PyTorch's fused AdamW kernel where the device supports it (CPU, CUDA): the same
            update as the default implementation (up to float rounding), one kernel instead of many; it
            roughly halves the optimiser step of the 63 M-parameter EEGNetTransformer on CPU.
        predict_residual: the encoder predicts the deviation from the train-split mean target, which
            is added to its output (``forward = encoder(x) + mean``; the mean is stored in checkpoints
            and :func:`load_encoder` applies it). Off in the reference configs. On raw CLIP text states
            (large, nearly constant start/padding tokens) a network whose output starts near 0 can
            collapse to predicting the mean; starting from the mean it learns the deviations.
        cpu_kernels: swap eegalign's CPU training kernels into the encoder
            (:func:`eegalign.models.use_cpu_kernels`: same state dict, same function; faster on an
            idle CPU, slower when other processes compete for the cores; docs/performance.md).
            Off by default; the kernels step aside by themselves on GPUs and under autocast.
    """

    def __init__(
        self,
        encoder: nn.Module,
        loss: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
        t_max: int | None = None,
        eta_min: float = 0.0,
        warmup_epochs: int = 0,
        route: str | None = None,
        cache: str | None = None,
        fused_adamw: bool = True,
        predict_residual: bool = False,
        cpu_kernels: bool = False,
    ) -> None:
        super().__init__()
        _check_optimiser_settings(lr, weight_decay, betas, eta_min, warmup_epochs)
        # encoder/loss are objects: recorded as plain configs in on_save_checkpoint instead.
        self.save_hyperparameters(ignore=["encoder", "loss"])
        if cpu_kernels:
            from eegalign.models.cpu_kernels import use_cpu_kernels

            use_cpu_kernels(encoder)
        self.encoder = encoder
        self.loss = loss
        self.route = route
        self.cache = None if cache is None else str(cache)
        self.preprocessing: dict[str, Any] | None = None  # the training cache's preprocessing record, from setup()
        self.subjects: dict[str, Any] | None = None  # the datamodule's subject protocol, from setup()
        self.cache_fingerprint: str | None = None  # the training cache's manifest fingerprint, from setup()
        self._outputs: list[dict[str, Tensor]] = []
        self._center: np.ndarray | None = None
        # (target_shape) when predict_residual, filled in setup() from the datamodule; empty otherwise
        self.register_buffer("target_offset", torch.zeros(0))

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if self.route is None and getattr(dm, "route", None) in ("image", "text"):
            self.route = dm.route
        if self.cache is None and isinstance(getattr(dm, "cache", None), (str, os.PathLike)):
            self.cache = str(dm.cache)
        if stage == "fit" and isinstance(getattr(getattr(dm, "cache", None), "manifest", None), dict):
            from eegalign.data.preprocessing_record import preprocessing_record

            self.preprocessing = preprocessing_record(dm.cache.manifest)  # recorded in every checkpoint
            self.subjects = _subject_protocol(dm)
            self.cache_fingerprint = dm.cache.manifest.get("fingerprint")  # whose train statistics export copies
        if self.hparams.get("predict_residual") and self.target_offset.numel() == 0:
            if dm is None or not hasattr(dm, "train_target_mean"):
                raise ConfigError("predict_residual needs a datamodule with train_target_mean() (EEGDataModule)")
            # a resumed run then loads the stored offset over this one (same shape)
            self.target_offset = torch.as_tensor(np.asarray(dm.train_target_mean(), dtype=np.float32))

    # ------------------------------------------------------------------ forward / steps
    def forward(self, eeg: Tensor) -> Tensor:
        out = self.encoder(eeg)  # (B, C, T) -> (B, *target_shape)
        return out + self.target_offset if self.target_offset.numel() else out

    def on_train_epoch_start(self) -> None:
        # A shuffling sampler seeded by (seed, epoch) must see the loop's epoch, also after a resume.
        # Lightning calls set_epoch() where it exists; a sampler that only keeps an `epoch` counter
        # is set here so that a resumed run draws the same permutation as an uninterrupted one.
        loader = self.trainer.train_dataloader
        for name in ("sampler", "batch_sampler"):
            sampler = getattr(loader, name, None)
            if sampler is not None and not callable(getattr(sampler, "set_epoch", None)) and isinstance(
                getattr(sampler, "epoch", None), int
            ):
                sampler.epoch = self.current_epoch

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        terms = self.loss(self(batch["eeg"]), batch["target"])
        bs = batch["eeg"].shape[0]
        self.log("train/loss", terms["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        for name, value in terms.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=bs)
        return terms["loss"]

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> None:
        pred = self(batch["eeg"])
        terms = self.loss(pred, batch["target"])
        bs = batch["eeg"].shape[0]
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss", on_epoch=True, sync_dist=True, batch_size=bs)
        self._outputs.append(
            {"pred": pred.detach().float(), "target": batch["target"].detach().float(), "index": batch["index"].detach()}
        )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        """Everything a predictions file needs, on the CPU: pred, target, label, subject, index."""
        return {
            "pred": self(batch["eeg"]).detach().float().cpu(),
            "target": batch["target"].detach().float().cpu(),
            "label": batch["label"].cpu(),
            "subject": batch["subject"].cpu(),
            "index": batch["index"].cpu(),
        }

    # ------------------------------------------------------------------ epoch metrics
    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_metrics("test")

    def _gathered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """pred, target, index of the whole evaluation set: gathered over all ranks, de-duplicated."""
        pred = torch.cat([o["pred"] for o in self._outputs])
        target = torch.cat([o["target"] for o in self._outputs])
        index = torch.cat([o["index"] for o in self._outputs])
        self._outputs = []
        if self.trainer.world_size > 1:
            # every rank holds the same number of trials (DistributedSampler pads by repeating some)
            pred, target, index = (self.all_gather(t).flatten(0, 1) for t in (pred, target, index))
        index_np = index.cpu().numpy()
        _, first = np.unique(index_np, return_index=True)  # drop the sampler's padding duplicates
        first = np.sort(first)
        return pred.cpu().numpy()[first], target.cpu().numpy()[first], index_np[first]

    def _epoch_metrics(self, stage: str) -> None:
        if self.trainer.sanity_checking or not self._outputs:
            self._outputs = []
            return
        from eegalign.metrics import cosine_per_trial, retrieval_topk

        pred, target, index = self._gathered()
        ids = self._image_ids(index, target)
        center = self._train_center() if self._route(target) == "text" else None
        top = retrieval_topk(pred, target, ids, ks=(1, 5), center=center)
        metrics = {"cosine": float(cosine_per_trial(pred, target).mean()), "top1": top["top1"], "top5": top["top5"]}
        metrics["chance_top1"] = 1.0 / len(set(ids))
        metrics["n_trials"] = float(len(index))  # all ranks' trials: the metrics are not per-rank
        for name, value in metrics.items():
            # identical on every rank (computed on the gathered set): sync_dist only averages equal values
            self.log(f"{stage}/{name}", value, prog_bar=name == "top1", sync_dist=True)

    def _route(self, target: np.ndarray) -> str:
        if self.route is None:
            self.route = "text" if target.ndim == 3 else "image"
        return self.route

    def _train_center(self) -> np.ndarray | None:
        """The train-split mean target (text-route retrieval subtracts it), from the datamodule."""
        if self._center is None:
            dm = getattr(self.trainer, "datamodule", None)
            if dm is not None and hasattr(dm, "train_target_mean"):
                self._center = np.asarray(dm.train_target_mean(), dtype=np.float32)
        return self._center

    def _image_ids(self, index: np.ndarray, target: np.ndarray) -> list[str]:
        """Image id of each trial: from the datamodule's cache when it has one, else by target identity."""
        dm = getattr(self.trainer, "datamodule", None)
        meta = getattr(getattr(dm, "cache", None), "meta", None)  # EEGDataModule.cache is a Cache
        if meta is not None and "image_id" in meta:
            return [str(x) for x in meta["image_id"].to_numpy()[index]]
        # trials with the same stimulus have bit-identical targets
        return [hashlib.sha1(np.ascontiguousarray(row).tobytes()).hexdigest() for row in target]

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]  # encoder + learnable loss terms
        hp = self.hparams
        kw = dict(lr=hp.lr, weight_decay=hp.weight_decay, betas=tuple(hp.betas))
        fused = bool(hp.get("fused_adamw", False)) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        try:
            opt = torch.optim.AdamW(params, fused=fused, **kw)
        except (RuntimeError, TypeError):  # an older torch or a device without the fused kernel
            opt = torch.optim.AdamW(params, **kw)
        t_max = hp.t_max or (self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 100)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(t_max)), eta_min=hp.eta_min)
        if hp.warmup_epochs > 0:
            warm = torch.optim.lr_scheduler.LinearLR(
                opt, start_factor=1.0 / (hp.warmup_epochs + 1), total_iters=hp.warmup_epochs
            )
            sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], milestones=[hp.warmup_epochs])
        else:
            sched = cosine
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch", "frequency": 1}}

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {
            "format_version": FORMAT_VERSION,
            "encoder": _encoder_config(self.encoder),
            "loss": _loss_config(self.loss),
            "route": self.route,
            "cache": self.cache,
            "preprocessing": self.preprocessing,
            "subjects": self.subjects,
            "cache_fingerprint": self.cache_fingerprint,
            "rng": _rng_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get(CHECKPOINT_KEY) or {}
        if self.preprocessing is None and isinstance(info.get("preprocessing"), dict):
            self.preprocessing = info["preprocessing"]  # kept when a validate/test run saves again
        if self.subjects is None and isinstance(info.get("subjects"), dict):
            self.subjects = info["subjects"]
        if self.cache_fingerprint is None and isinstance(info.get("cache_fingerprint"), str):
            self.cache_fingerprint = info["cache_fingerprint"]
        if info.get("rng"):
            _set_rng_state(info["rng"])


# ---------------------------------------------------------------------- helpers
def _check_optimiser_settings(lr: float, weight_decay: float, betas: Any, eta_min: float, warmup_epochs: int) -> None:
    """One ConfigError line for a learning rate or optimiser setting AdamW would reject mid-setup."""
    import math

    def bad(x: Any) -> bool:
        return isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)

    if bad(lr) or lr < 0:  # 0 is allowed (a frozen model, as AdamW allows)
        raise ConfigError(f"model.lr must be a finite number >= 0, got {lr!r}")
    if bad(weight_decay) or weight_decay < 0:
        raise ConfigError(f"model.weight_decay must be a finite number >= 0, got {weight_decay!r}")
    if len(tuple(betas)) != 2 or any(bad(b) or not 0 <= b < 1 for b in betas):
        raise ConfigError(f"model.betas must be two numbers in [0, 1), got {betas!r}")
    if bad(eta_min) or eta_min < 0:
        raise ConfigError(f"model.eta_min must be a finite number >= 0, got {eta_min!r}")
    if bad(warmup_epochs) or warmup_epochs < 0:
        raise ConfigError(f"model.warmup_epochs must be >= 0, got {warmup_epochs!r}")


def _encoder_config(encoder: nn.Module) -> dict[str, Any]:
    try:
        from eegalign.models import encoder_config

        return encoder_config(encoder)
    except Exception:  # noqa: BLE001 - a custom encoder outside the registry: record what it is
        cls = type(encoder)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}"}


def _loss_config(loss: nn.Module) -> dict[str, Any]:
    from eegalign.losses import loss_config

    return loss_config(loss)


def _rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as weights_only-loadable values (tensors, ints, lists)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


__all__ = ["CHECKPOINT_KEY", "AlignmentModule", "ResidualEncoder", "load_encoder", "read_checkpoint"]


def _subject_protocol(dm: Any) -> dict[str, Any] | None:
    """Which subjects a run trained and is tested on (``evaluate --ckpt`` tests the same ones by default).

    ``{"protocol": "all" | "subjects" | "leave-one-subject-out", "train": [...], "test": [...]}``, or
    None for a datamodule without subject selection.
    """
    if not callable(getattr(dm, "indices", None)) or "subject" not in getattr(dm.cache, "meta", {}):
        return None
    subject = dm.cache.meta["subject"].to_numpy()

    def of(split: str) -> list[int]:
        return sorted(int(s) for s in np.unique(subject[dm.indices(split)]))

    if getattr(dm, "leave_out_subject", None) is not None:
        protocol = "leave-one-subject-out"
    else:
        protocol = "all" if getattr(dm, "subjects", None) is None else "subjects"
    return {"protocol": protocol, "train": of("train"), "test": of("test")}
