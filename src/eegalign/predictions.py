"""The predictions file (``predictions.safetensors``): the hand-off between models and metrics.

Tensors: ``pred`` (N, D) or (N, 77, 768); ``true`` (same shape); ``label`` (N,) int64;
``subject`` (N,) int64. Metadata (str -> str): ``image_ids`` (JSON list of N strings),
``route`` (``image``/``text``), ``model``, ``split``; optional: ``classes`` (JSON list of the
wnid of each integer label), ``cache`` (the cache directory the trials came from),
``train_target_norm`` (JSON: the mean L2 norm of the training targets, a number on the image route,
one per token position on the text route; written by ``evaluate`` when it knows the train split),
``loss`` (JSON: the training loss config of the checkpoint, ``{"class_path", "init_args"}``).

Any decoder can write this file and be evaluated with ``eegalign evaluate --predictions``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eegalign.errors import DataError
from eegalign.io import load_tensors, save_tensors

ROUTES = ("image", "text")
TRAIN_NORM_KEY = "train_target_norm"
LOSS_KEY = "loss"


def mean_target_norm(targets: np.ndarray) -> np.ndarray:
    """Mean L2 norm of (M, D) targets -> () array, or of (M, S, D) targets -> (S,) (per token position)."""
    return np.linalg.norm(np.asarray(targets, dtype=np.float64), axis=-1).mean(axis=0)


@dataclass
class Predictions:
    pred: np.ndarray  # (N, D) or (N, S, D) float32
    true: np.ndarray  # same shape as pred
    label: np.ndarray  # (N,) int64
    subject: np.ndarray  # (N,) int64
    image_ids: list[str]  # N strings
    route: str = "image"
    model: str = "unknown"
    split: str = "test"
    classes: list[str] | None = None  # wnid of label i, if known
    cache: str | None = None  # cache directory the trials came from, if known
    extra: dict[str, str] = field(default_factory=dict)  # any other metadata, kept as is

    def __post_init__(self) -> None:
        self.validate()

    @property
    def n(self) -> int:
        return int(self.pred.shape[0])

    def validate(self) -> None:
        n = self.pred.shape[0]
        if self.route not in ROUTES:
            raise DataError(f"predictions route must be one of {ROUTES}, got {self.route!r}")
        if self.pred.shape != self.true.shape:
            raise DataError(f"pred {tuple(self.pred.shape)} and true {tuple(self.true.shape)} differ in shape")
        expected_ndim = 2 if self.route == "image" else 3
        if self.pred.ndim != expected_ndim:
            raise DataError(
                f"route {self.route!r} expects {expected_ndim}-D predictions, got shape {tuple(self.pred.shape)}"
            )
        if n == 0:
            raise DataError("the predictions file holds no trials")
        for name, arr in (("label", self.label), ("subject", self.subject)):
            if arr.shape != (n,):
                raise DataError(f"{name} has shape {tuple(arr.shape)}, expected ({n},)")
        if len(self.image_ids) != n:
            raise DataError(f"image_ids has {len(self.image_ids)} entries, expected {n}")
        if not all(isinstance(i, str) for i in self.image_ids):
            raise DataError("image_ids must be a list of strings (one image id per trial)")
        for name, arr in (("pred", self.pred), ("true", self.true)):
            if not np.issubdtype(arr.dtype, np.floating):
                raise DataError(f"{name} must hold floating-point values, not {arr.dtype}")
        if not (np.isfinite(self.pred).all() and np.isfinite(self.true).all()):
            raise DataError("predictions contain NaN or Inf values")
        if self.classes is not None and n and (self.label.min() < 0 or self.label.max() >= len(self.classes)):
            raise DataError(f"labels span {int(self.label.min())}..{int(self.label.max())} but 'classes' names "
                            f"{len(self.classes)} classes (labels 0..{len(self.classes) - 1})")
        _check_one_target_per_image(self.true, self.label, self.image_ids)

    @property
    def train_target_norm(self) -> np.ndarray | None:
        """The recorded mean norm of the training targets (() or (S,) float64), or None if not recorded."""
        if TRAIN_NORM_KEY not in self.extra:
            return None
        try:
            return np.asarray(json.loads(self.extra[TRAIN_NORM_KEY]), dtype=np.float64)
        except (json.JSONDecodeError, TypeError, ValueError) as e:
            raise DataError(f"predictions metadata {TRAIN_NORM_KEY!r} is not a number or a list of numbers ({e})") from e

    def record_train_norm(self, train_targets: np.ndarray) -> None:
        """Store the mean norm of ``train_targets`` (same trailing shape as ``pred``) in the metadata."""
        self.extra[TRAIN_NORM_KEY] = json.dumps(mean_target_norm(train_targets).tolist())

    @property
    def training_loss(self) -> str | None:
        """The class name of the recorded training loss (e.g. ``InfoNCELoss``), or None if not recorded."""
        try:
            config = json.loads(self.extra.get(LOSS_KEY, "null"))
        except json.JSONDecodeError:
            return None
        path = config.get("class_path") if isinstance(config, dict) else config
        return str(path).rsplit(".", 1)[-1] if path else None

    def metadata(self) -> dict[str, str]:
        meta = dict(self.extra)
        meta.update(
            image_ids=json.dumps(list(self.image_ids)), route=self.route, model=self.model, split=self.split
        )
        if self.classes is not None:
            meta["classes"] = json.dumps(list(self.classes))
        if self.cache is not None:
            meta["cache"] = str(self.cache)
        return meta

    def save(self, path: str | os.PathLike) -> None:
        save_tensors(
            path,
            {
                "pred": self.pred.astype(np.float32, copy=False),
                "true": self.true.astype(np.float32, copy=False),
                "label": self.label.astype(np.int64, copy=False),
                "subject": self.subject.astype(np.int64, copy=False),
            },
            self.metadata(),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Predictions":
        arrays, meta = load_tensors(path)
        missing = [k for k in ("pred", "true", "label", "subject") if k not in arrays]
        if missing:
            raise DataError(f"{path} is not a predictions file: missing tensors {missing}")
        if "image_ids" not in meta:
            raise DataError(f"{path} is not a predictions file: metadata has no 'image_ids'")
        try:
            image_ids = json.loads(meta.pop("image_ids"))
            classes = json.loads(meta.pop("classes")) if "classes" in meta else None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: metadata is not valid JSON ({e})") from e
        if not isinstance(image_ids, list) or not all(isinstance(i, str) for i in image_ids):
            raise DataError(f"{path}: metadata 'image_ids' must be a JSON list of strings (one image id per trial)")
        if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
            raise DataError(f"{path}: metadata 'classes' must be a JSON list of strings (the name of each label)")
        for name in ("pred", "true", "label", "subject"):
            want = np.floating if name in ("pred", "true") else np.integer
            if not np.issubdtype(arrays[name].dtype, want):
                kind = "floating-point" if want is np.floating else "integer"
                raise DataError(f"{path}: tensor {name!r} must hold {kind} values, not {arrays[name].dtype}")
        kw: dict[str, Any] = dict(
            pred=arrays["pred"].astype(np.float32, copy=False),
            true=arrays["true"].astype(np.float32, copy=False),
            label=arrays["label"].astype(np.int64, copy=False),
            subject=arrays["subject"].astype(np.int64, copy=False),
            image_ids=image_ids,
            route=meta.pop("route", "image" if arrays["pred"].ndim == 2 else "text"),
            model=meta.pop("model", "unknown"),
            split=meta.pop("split", "test"),
            classes=classes,
            cache=meta.pop("cache", None),
        )
        return cls(**kw, extra=meta)


def _check_one_target_per_image(true: np.ndarray, label: np.ndarray, image_ids: list[str], chunk: int = 1024) -> None:
    """Trials of one image id must share one target and one label: else ids and targets are misaligned."""
    _, first, inverse = np.unique(np.asarray(image_ids, dtype=str), return_index=True, return_inverse=True)
    ref = first[inverse.reshape(-1)]  # (N,) the first trial of each trial's image
    bad_label = np.flatnonzero(label != label[ref])
    if len(bad_label):
        i = int(bad_label[0])
        raise DataError(f"image id {image_ids[i]!r} has two different labels ({int(label[ref[i]])} and {int(label[i])}): "
                        "ids and labels are misaligned")
    chunk = max(1, min(chunk, 2_000_000 // max(1, int(np.prod(true.shape[1:])))))  # ~2 M values per block
    for s in range(0, len(ref), chunk):
        a, b = true[s : s + chunk], true[ref[s : s + chunk]]  # (b, ...) each
        same = np.isclose(a, b, rtol=1e-5, atol=1e-6).reshape(len(a), -1).all(axis=1)
        if not same.all():
            i = s + int(np.flatnonzero(~same)[0])
            raise DataError(f"image id {image_ids[i]!r} has two different targets (trials {int(ref[i])} and {i}): "
                            "ids and targets are misaligned")
