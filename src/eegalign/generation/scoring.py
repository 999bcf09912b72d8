"""Scores of a generation output directory: N-way top-k accuracy and the reconstruction metrics.

* :func:`score_nway`: an ImageNet-1k classifier's logits for every image set, then N-way top-k for
  both true-class conventions (``wnid``, ``gwit``) and the ``eeg_shuffled`` baseline; the logits go
  to ``nway_logits.safetensors``.
* :func:`score_reconstruction`: :func:`eegalign.generation.recon.reconstruction_metrics` of the
  generated sets against the originals (trials with an original only); the per-image values go to
  ``reconstruction_per_image.json`` (what ``eegalign compare`` pairs trial by trial).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegalign.generation.settings import GENERATED_SETS, IMAGE_SETS, NWaySettings, ReconSettings

LOGITS_FILE = "nway_logits.safetensors"
RECON_PER_IMAGE_FILE = "reconstruction_per_image.json"


# ----------------------------------------------------------------------------- N-way


def classify_sets(out: Path, trials: list[dict[str, Any]], cfg: NWaySettings) -> tuple[dict, dict, dict]:
    """Classify every image set; each trial gets its top-1 per set.

    Returns:
        logits: {set: (M_set, 1000) one row per trial that has that image};
        positions: {set: (M_set,) positions in ``trials`` of those rows};
        id2label: the classifier's class names.
    """
    from eegalign.devices import resolve_device
    from eegalign.generation.classify import classify_images, load_classifier

    model, processor = load_classifier(cfg.classifier, resolve_device(cfg.device, allow_mps=True))
    id2label = getattr(model.config, "id2label", {}) or {}
    logits: dict[str, np.ndarray] = {}
    positions: dict[str, np.ndarray] = {}
    for image_set in IMAGE_SETS:
        pos = np.array([t for t, r in enumerate(trials) if r.get(image_set)], dtype=np.int64)
        if pos.size == 0:
            continue
        paths = [trials[t][image_set] for t in pos]
        unique = sorted(set(paths))  # originals are shared by the trials of one image: classify once
        set_logits = classify_images(model, processor, [out / rel for rel in unique], batch_size=cfg.batch_size,
                                     desc=f"classify {image_set}")
        row_of = {rel: j for j, rel in enumerate(unique)}
        logits[image_set] = set_logits[[row_of[p] for p in paths]]
        positions[image_set] = pos
        for t, top in zip(pos, logits[image_set].argmax(axis=1)):
            trials[t].setdefault("top1", {})[image_set] = {"index": int(top), "name": id2label.get(int(top), str(top))}
    return logits, positions, id2label


def true_class_conventions(trials: list[dict[str, Any]], logits: dict, positions: dict) -> tuple[dict, list[str]]:
    """{convention: (T,) true ImageNet class per trial, -1 if unknown} and notes on what was skipped."""
    from eegalign.data.classes import wnid_to_imagenet_index

    notes: list[str] = []
    conventions: dict[str, np.ndarray] = {}
    table = wnid_to_imagenet_index()
    wnid_class = np.array([table.get(r.get("wnid") or "", -1) for r in trials], dtype=np.int64)
    if (wnid_class >= 0).any():
        conventions["wnid"] = wnid_class
    else:
        notes.append("wnid convention skipped: no trial's class is in the CVPR40 class table (classes unknown).")
    if "original" in logits:
        gwit_class = np.full(len(trials), -1, dtype=np.int64)
        gwit_class[positions["original"]] = logits["original"].argmax(axis=1)
        conventions["gwit"] = gwit_class
    else:
        notes.append("gwit convention and the original set skipped: no original stimuli found (pass --images DIR).")
    if (wnid_class < 0).any() and (wnid_class >= 0).any():
        notes.append(f"{int((wnid_class < 0).sum())} trials without a known ImageNet class are left out of the wnid rows.")
    return conventions, notes


def nway_rows(conventions: dict, logits: dict, positions: dict, cfg: NWaySettings) -> list[dict[str, Any]]:
    """One result per (convention, N, k, set), plus the ``eeg_shuffled`` baseline after each ``eeg`` row."""
    from eegalign.generation.nway import nway_summary

    common = dict(draws=cfg.draws, seed=cfg.seed, n_boot=cfg.n_boot)
    results = []
    for convention, true_class in conventions.items():
        for n in cfg.ns:
            for k in cfg.ks:
                for image_set in (s for s in IMAGE_SETS if s in logits):
                    classes = true_class[positions[image_set]]
                    known = classes >= 0
                    if not known.any():
                        continue
                    set_logits = logits[image_set][known]
                    summary = nway_summary(set_logits, classes[known], n=n, k=k, **common)
                    results.append({"convention": convention, "set": image_set, **summary})
                    if image_set == "eeg":  # baseline: the same images scored against other trials' classes
                        shuffled = np.random.default_rng(cfg.seed).permutation(classes[known])
                        summary = nway_summary(set_logits, shuffled, n=n, k=k, **common)
                        results.append({"convention": convention, "set": "eeg_shuffled", **summary})
    return results


def score_nway(out: Path, trials: list[dict[str, Any]], cfg: NWaySettings) -> dict[str, Any]:
    """Classify every image set of ``trials`` and compute N-way top-k accuracy for both conventions."""
    from eegalign.io import save_tensors

    logits, positions, _ = classify_sets(out, trials, cfg)
    save_tensors(out / LOGITS_FILE, {f"{k}_logits": v for k, v in logits.items()}
                 | {f"{k}_trials": v for k, v in positions.items()}, {"classifier": cfg.classifier})
    conventions, notes = true_class_conventions(trials, logits, positions)
    return {"classifier": cfg.classifier, "draws": cfg.draws, "seed": cfg.seed, "n_boot": cfg.n_boot,
            "results": nway_rows(conventions, logits, positions, cfg), "notes": notes}


# ----------------------------------------------------------------------------- reconstruction


def _open_rgb(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def score_reconstruction(out: Path, trials: list[dict[str, Any]], cfg: ReconSettings) -> dict[str, Any]:
    """Reconstruction metrics of the generated sets against the originals; writes the per-image record.

    Returns:
        {"summary": {set: {metric: {"value", "ci95", "chance"}}}, "notes": [...], "n_trials": scored trials}.
    """
    from eegalign.generation.recon import reconstruction_metrics
    from eegalign.io import write_json

    scored = [r for r in trials if r.get("original")]
    sets = [s for s in GENERATED_SETS if scored and all(r.get(s) for r in scored)]
    notes: list[str] = []
    if len(scored) < len(trials):
        notes.append(f"{len(trials) - len(scored)} of {len(trials)} trials have no original stimulus and are left out.")
    if not scored or not sets:
        notes.append("reconstruction metrics skipped: no trial has both an original and a generated image.")
        return {"summary": {}, "notes": notes, "n_trials": 0}
    originals = [_open_rgb(out / r["original"]) for r in scored]
    generated = {s: [_open_rgb(out / r[s]) for r in scored] for s in sets}
    result = reconstruction_metrics(originals, generated, cfg.models_dir, device=cfg.device, n_boot=cfg.n_boot,
                                    seed=cfg.seed)
    write_json(out / RECON_PER_IMAGE_FILE, result.per_image_record([r["index"] for r in scored]))
    return {"summary": result.summary, "notes": notes + result.notes, "n_trials": len(scored)}
