"""The predictions file (``predictions.safetensors``): the hand-off between models and metrics.

Tensors: ``pred`` (N, D) or (N, 77, 768); ``true`` (same shape); ``label`` (N,) int64;
``subject`` (N,) int64. Metadata (str -> str): ``image_ids`` (JSON list of N strings),
``route`` (``image``/``text``), ``model``, ``split``; optional: ``classes`` (JSON list of the
wnid of each integer label), ``cache`` (the cache directory the trials came from).

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
        if not (np.isfinite(self.pred).all() and np.isfinite(self.true).all()):
            raise DataError("predictions contain NaN or Inf values")

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
            image_ids = [str(x) for x in json.loads(meta.pop("image_ids"))]
            classes = json.loads(meta.pop("classes")) if "classes" in meta else None
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: metadata is not valid JSON ({e})") from e
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
