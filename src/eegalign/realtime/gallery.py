"""What a live prediction is compared with: class prototypes of a cache, or an image-target file.

* ``prototypes``: the mean train-split target of each class (as :func:`eegalign.metrics.class_prototypes`
  computes them for evaluation), named by the class id; the cache is the one preprocess.json
  records, or the one given.
* a file: a safetensors file with ``embeddings`` (M, ...) and either ``image_ids`` metadata (the
  layout of a cache's ``targets/image.safetensors``) or a ``label`` tensor (M,).

Scores are cosine similarities (:func:`eegalign.metrics.similarity_matrix`); on the text route
(77 x 768 targets) the gallery's mean is subtracted first, as evaluation centres retrieval.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegalign.errors import DataError


@dataclass
class Gallery:
    """``names`` (M) and ``embeddings`` (M, ...) to rank, the centre subtracted before the cosine, and the source.

    The gallery side of the cosine (scaled rows and their norms) is computed once; :meth:`top` gives
    the same scores as ``similarity_matrix(embedding[None], embeddings, center)``.
    """

    names: list[str]
    embeddings: np.ndarray
    center: np.ndarray | None
    source: str
    note: str = ""  # a warning for the user (prototypes that cannot name the test images), '' if none

    def __post_init__(self) -> None:
        from eegalign.metrics.similarity import row_norms, scaled_rows

        self._rows, _ = scaled_rows(self.embeddings, self.center)  # (M, F) in [-1, 1]
        self._norms = row_norms(self._rows)  # (M,)

    def scores(self, embedding: np.ndarray) -> np.ndarray:
        """Cosine of one ``embedding`` (output-shaped) with every item: ``(M,)`` float32 (NaN/Inf -> -inf)."""
        from eegalign.metrics.similarity import EPS, row_norms, scaled_rows

        p, _ = scaled_rows(embedding[None], self.center)  # (1, F)
        dots = (p @ self._rows.T).astype(np.float64)[0]  # (M,)
        with np.errstate(invalid="ignore"):
            sim = (dots / np.maximum(row_norms(p)[0] * self._norms, EPS)).astype(np.float32)
        return np.where(np.isfinite(sim), sim, -np.inf).astype(np.float32)

    def top(self, embedding: np.ndarray, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` best gallery items for one ``embedding``, best first, with scores."""
        sim = self.scores(embedding)
        order = np.argsort(-sim, kind="stable")[:k]
        return [(self.names[i], float(sim[i])) for i in order]


def _centred(names: list[str], emb: np.ndarray, source: str) -> Gallery:
    emb = np.asarray(emb, dtype=np.float32)
    if len(emb) == 0 or not np.isfinite(emb).all():
        raise DataError(f"gallery {source} is empty or holds NaN/Inf values")
    center = emb.astype(np.float64).mean(axis=0).astype(np.float32) if emb.ndim == 3 else None
    return Gallery(names, emb, center, source)


def prototypes(cache_dir: str | os.PathLike, route: str) -> Gallery:
    """Class prototypes of the train split of a cache, named by class id."""
    from eegalign.data.cache import Cache
    from eegalign.evaluate import train_targets_from_cache
    from eegalign.metrics import class_prototypes

    cache = Cache.open(cache_dir)
    train = train_targets_from_cache(cache, route)
    classes, protos = class_prototypes(train.embeddings, train.labels)
    names = [cache.classes[int(c)] if int(c) < len(cache.classes) else str(int(c)) for c in classes]
    gallery = _centred(names, protos, f"class prototypes of {train.source}")
    split = cache.meta["split"].to_numpy()
    labels = cache.meta["label"].to_numpy()
    gallery.note = zero_shot_note(labels[split == "train"], labels[split == "test"], str(cache.path),
                                  str(cache.manifest.get("format") or ""))
    return gallery


def zero_shot_note(train_labels: np.ndarray, test_labels: np.ndarray, cache: str, fmt: str = "") -> str:
    """A warning when test classes have no training trial, so class prototypes cannot contain them ('' otherwise).

    THINGS-EEG2 is such a zero-shot split: its 200 test concepts are not among the training concepts,
    so ``--gallery prototypes`` ranks only classes a test image never belongs to.
    """
    test = set(np.unique(test_labels).tolist())
    unseen = test - set(np.unique(train_labels).tolist())
    if not unseen and fmt != "things-eeg2":
        return ""
    what = f"{len(unseen)} of its {len(test)} test classes have no training trial" if unseen else "it is THINGS-EEG2"
    return (f"eegalign: warning: --gallery prototypes ranks the training classes of {cache}, but {what} (a zero-shot "
            "split): a test image's own class is not in the gallery, so test trials are never ranked right; pass "
            "--gallery FILE, an image-target safetensors file holding the candidate images (e.g. the test images' "
            "targets)")


def from_file(path: str | os.PathLike) -> Gallery:
    """Items of an image-target file (``embeddings`` + ``image_ids`` metadata, or a ``label`` tensor)."""
    from eegalign.io import load_tensors

    arrays, meta = load_tensors(path)
    if "embeddings" not in arrays:
        raise DataError(f"gallery {path} has no 'embeddings' tensor")
    emb = arrays["embeddings"]
    if "image_ids" in meta:
        try:
            names = [str(i) for i in json.loads(meta["image_ids"])]
        except ValueError:
            raise DataError(f"gallery {path}: metadata 'image_ids' is not a JSON list") from None
    elif "label" in arrays:
        names = [str(int(v)) for v in np.asarray(arrays["label"]).reshape(-1)]
    else:
        raise DataError(f"gallery {path} names its items neither by 'image_ids' metadata nor by a 'label' tensor")
    if len(names) != len(emb):
        raise DataError(f"gallery {path}: {len(names)} names for {len(emb)} embeddings")
    return _centred(names, emb, str(path))


def load_gallery(spec: str, record: dict, route: str, output_shape: tuple[int, ...],
                 cache: str | None = None) -> Gallery:
    """``spec`` is ``prototypes`` (of ``cache``, else the cache preprocess.json ``record`` names) or a file."""
    if spec == "prototypes":
        cache = cache or (record.get("source_cache") or {}).get("path")
        if not cache or not Path(cache).is_dir():
            raise DataError(f"--gallery prototypes needs the training cache ({cache or 'not recorded'} is not here): "
                            "pass --cache CACHE or --gallery FILE (an image-target file)")
        gallery = prototypes(cache, route)
    else:
        if not Path(spec).is_file():
            raise DataError(f"--gallery {spec}: no such file (give `prototypes` or an image-target safetensors file)")
        gallery = from_file(spec)
    if tuple(gallery.embeddings.shape[1:]) != tuple(output_shape):
        raise DataError(f"gallery {gallery.source} holds {tuple(gallery.embeddings.shape[1:])} embeddings but the "
                        f"model predicts {tuple(output_shape)}: wrong route or file")
    return gallery
