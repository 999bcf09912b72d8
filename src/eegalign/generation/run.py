"""The ``generate`` workflow: select trials -> generate (EEG, true) -> originals -> grids -> N-way -> report.

Output directory (written atomically as a whole; ``--nway-only`` updates its index in place)::

    DIR/generation.json         settings, one record per trial, N-way results
    DIR/generation.html         grids + accuracy table with chance and CIs
    DIR/images/<i>_eeg.png      from the EEG prediction of trial i (row i of the predictions file)
    DIR/images/<i>_true.png     from the true embedding of trial i
    DIR/originals/<id>.png      each original stimulus once
    DIR/grids/grid_<j>.png      rows = trials, columns = original | true | EEG
    DIR/nway_logits.safetensors classifier logits of every image set (if a classifier was given)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.devices import resolve_device, resolve_dtype
from eegalign.errors import ConfigError, DataError
from eegalign.predictions import Predictions

INDEX = "generation.json"
REPORT = "generation.html"
KINDS = ("eeg", "true")
SETS = ("original", "true", "eeg")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass
class GenerationSettings:
    """Everything that determines the generated pixels (stored in ``generation.json``)."""

    sd_model: str
    ip_adapter: str | None = None
    ip_adapter_weight: str | None = None
    ip_adapter_subfolder: str | None = None
    ip_adapter_scale: float = 1.0
    prompt: str = ""
    steps: int = 50
    guidance: float | None = None  # None: the route's default
    size: int = 512
    seed: int = 0
    scheduler: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 4
    safety_checker: bool = False
    skip_true: bool = False
    match_norm: str = "auto"  # auto | train | test | off (eegalign.generation.norms)


@dataclass
class NWaySettings:
    classifier: str
    ns: tuple[int, ...] = (50, 35)
    ks: tuple[int, ...] = (1,)
    draws: int = 50
    seed: int = 0
    n_boot: int = 1000
    batch_size: int = 32
    device: str = "auto"


# --------------------------------------------------------------------------- selection


def select_trials(
    labels: np.ndarray,
    *,
    per_class: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> np.ndarray:
    """Seeded selection of trial indices (sorted): ``per_class`` per label, then at most ``limit``,
    then every n-th for shard (i, n). Without options: every trial."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    idx = np.arange(labels.size)
    if per_class is not None:
        if per_class < 1:
            raise ConfigError(f"--per-class must be >= 1, got {per_class}")
        picked = [rng.choice(idx[labels == c], size=min(per_class, int((labels == c).sum())), replace=False)
                  for c in np.unique(labels)]
        idx = np.sort(np.concatenate(picked))
    if limit is not None:
        if limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {limit}")
        if limit < idx.size:
            idx = np.sort(rng.choice(idx, size=limit, replace=False))
    i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"--shard must be i/n with 0 <= i < n, got {i}/{n}")
    return idx[i::n].astype(np.int64)


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as e:
        raise ConfigError(f"--shard must look like 0/4, got {text!r}") from e
    select_trials(np.zeros(1), shard=(i, n))  # validates the range
    return i, n


# --------------------------------------------------------------------------- class names / originals


def trial_wnids(preds: Predictions) -> list[str | None]:
    """The ImageNet wnid of each trial: from ``preds.classes``, else from the cache's meta.parquet."""
    classes = preds.classes
    if classes is None and preds.cache and (Path(preds.cache) / "meta.parquet").is_file():
        import pandas as pd

        meta = pd.read_parquet(Path(preds.cache) / "meta.parquet", columns=["label", "label_folder"])
        table = dict(zip(meta["label"].astype(int), meta["label_folder"].astype(str)))
        return [table.get(int(lab)) for lab in preds.label]
    if classes is None:
        return [None] * preds.n
    return [classes[int(lab)] if 0 <= int(lab) < len(classes) else None for lab in preds.label]


def find_originals(image_ids: list[str], images_dir: str | os.PathLike | None) -> dict[str, Path]:
    """Map image_id -> stimulus file in ``images_dir`` (``<image_id>.png|.jpg|...``); missing ids are absent."""
    if images_dir is None or not Path(images_dir).is_dir():
        return {}
    wanted = set(image_ids)
    found: dict[str, Path] = {}
    for p in sorted(Path(images_dir).iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in wanted and p.stem not in found:
            found[p.stem] = p
    return found


def _caption(rec: dict[str, Any]) -> str:
    name = rec.get("class_name") or rec.get("wnid") or f"label {rec['label']}"
    return f"#{rec['index']}  {name}  (subject {rec['subject']})"


# --------------------------------------------------------------------------- generation


def generate_images(
    preds: Predictions,
    out: str | os.PathLike,
    settings: GenerationSettings,
    *,
    indices: np.ndarray,
    images_dir: str | os.PathLike | None = None,
    predictions_path: str | None = None,
    selection: dict[str, Any] | None = None,
    nway: NWaySettings | None = None,
    grid_rows: int = 8,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generate, save, grid, (optionally) score, and write the report into ``out`` atomically."""
    import torch
    from tqdm.auto import tqdm

    from eegalign.data.classes import wnid_to_name
    from eegalign.generation import pipelines as P
    from eegalign.io import atomic_dir

    if len(indices) == 0:
        raise DataError("no trials selected: check --limit / --per-class / --shard")
    route = preds.route
    if settings.prompt and route == "text":
        raise ConfigError("--prompt applies to the image route only (the text route's prompt is the prediction)")
    guidance = P.DEFAULT_GUIDANCE[route] if settings.guidance is None else float(settings.guidance)
    if settings.size % 8:
        raise ConfigError(f"--size must be a multiple of 8, got {settings.size}")
    if images_dir is not None and not Path(images_dir).is_dir():
        raise DataError(f"--images {images_dir} is not a directory")
    if images_dir is None and preds.cache:
        images_dir = Path(preds.cache) / "images"
    wanted = sorted({preds.image_ids[i] for i in indices})
    originals = find_originals(wanted, images_dir)
    if len(originals) < len(wanted):
        where = f"in {images_dir}" if images_dir else "(no --images DIR and no cache recorded in the predictions)"
        print(f"eegalign: warning: {len(wanted) - len(originals)} of {len(wanted)} original stimuli not found "
              f"{where}; their grid cells stay empty and the original-image and gwit N-way rows leave them out",
              file=sys.stderr)
    wnids, names = trial_wnids(preds), wnid_to_name()

    device = resolve_device(settings.device, allow_mps=True)
    dtype = resolve_dtype(settings.dtype, device)
    pipe = P.load_sd_pipeline(
        settings.sd_model, device=device, dtype=dtype, scheduler=settings.scheduler,
        safety_checker=settings.safety_checker,
    )
    negative_text = None
    if route == "image":
        dim = P.add_ip_adapter(
            pipe, settings.ip_adapter or P.IP_ADAPTER_REFERENCE, weight_name=settings.ip_adapter_weight,
            subfolder=settings.ip_adapter_subfolder, scale=settings.ip_adapter_scale,
        )
        if preds.pred.shape[1] != dim:
            raise ConfigError(
                f"the predictions are {preds.pred.shape[1]}-d but the IP-Adapter expects {dim}-d CLIP image "
                f"embeddings; use the IP-Adapter matching the CLIP model of the targets"
            )
    else:
        width = int(pipe.unet.config.cross_attention_dim)
        if preds.pred.shape[2] != width:
            raise ConfigError(
                f"the predictions are (…, {preds.pred.shape[1]}, {preds.pred.shape[2]}) but the pipeline's UNet "
                f"expects text states of width {width}; use the Stable Diffusion model whose text encoder made the targets"
            )
        negative_text = P.encode_empty_prompt(pipe, device)

    kinds = ("eeg",) if settings.skip_true else KINDS
    from eegalign.generation.norms import prepare_predictions

    eeg_embeds, norm_record = prepare_predictions(preds, settings.match_norm)
    with atomic_dir(out, overwrite=overwrite, kind="generation", command="eegalign generate") as tmp:
        (tmp / "images").mkdir()
        (tmp / "originals").mkdir()
        trials: list[dict[str, Any]] = []
        for i in indices:
            i = int(i)
            image_id, wnid = preds.image_ids[i], wnids[i]
            rec: dict[str, Any] = {
                "index": i, "image_id": image_id, "label": int(preds.label[i]), "wnid": wnid,
                "class_name": names.get(wnid) if wnid else None, "subject": int(preds.subject[i]),
                "seed": settings.seed + i, "original": None, "true": None, "eeg": None,
            }
            if image_id in originals:
                rel = f"originals/{image_id}.png"
                if not (tmp / rel).exists():
                    from PIL import Image

                    with Image.open(originals[image_id]) as im:
                        im.convert("RGB").save(tmp / rel)
                rec["original"] = rel
            trials.append(rec)

        total = len(trials) * len(kinds)
        with tqdm(total=total, desc=f"generate ({route} route, {device.type})", unit="img") as bar:
            for kind in kinds:
                source = eeg_embeds if kind == "eeg" else preds.true
                for start in range(0, len(trials), settings.batch_size):
                    chunk = trials[start : start + settings.batch_size]
                    rows = [r["index"] for r in chunk]
                    embeds = torch.from_numpy(np.ascontiguousarray(source[rows], dtype=np.float32))
                    images = P.generate_batch(
                        pipe, embeds, route, [r["seed"] for r in chunk], steps=settings.steps, guidance=guidance,
                        size=settings.size, prompt=settings.prompt, negative_text=negative_text,
                    )
                    for r, im in zip(chunk, images):
                        r[kind] = f"images/{r['index']:05d}_{kind}.png"
                        im.save(tmp / r[kind])
                    bar.update(len(chunk))
        del pipe
        if device.type == "cuda":
            torch.cuda.empty_cache()

        recorded = asdict(settings)
        recorded.update(guidance=guidance, resolved_device=str(device), resolved_dtype=str(dtype).replace("torch.", ""))
        index: dict[str, Any] = {
            "predictions": predictions_path, "model": preds.model, "route": route, "split": preds.split,
            "n_trials_total": preds.n, "images_dir": str(images_dir) if images_dir else None,
            "settings": recorded, "match_norm": norm_record, "selection": selection or {}, "trials": trials,
            "grids": [], "nway": None,
        }
        finish(tmp, index, nway=nway, grid_rows=grid_rows)
    return index


def finish(out: Path, index: dict[str, Any], *, nway: NWaySettings | None, grid_rows: int = 8) -> dict[str, Any]:
    """(Re)write grids, N-way results (if ``nway``), generation.json and generation.html in ``out``."""
    from eegalign.generation.grids import make_grid, render_html
    from eegalign.io import atomic_file, write_json

    out = Path(out)
    if grid_rows < 1:
        raise ConfigError(f"--grid-rows must be >= 1, got {grid_rows}")
    grids_dir = out / "grids"
    grids_dir.mkdir(exist_ok=True)
    for old in grids_dir.glob("grid_*.png"):
        old.unlink()
    trials = index["trials"]
    index["grids"] = []
    for j, start in enumerate(range(0, len(trials), grid_rows)):
        rows = [dict(r, caption=_caption(r)) for r in trials[start : start + grid_rows]]
        rel = f"grids/grid_{j:03d}.png"
        with atomic_file(out / rel) as tmp:
            make_grid(rows, out).save(tmp, format="PNG")
        index["grids"].append(rel)
    if nway is not None:
        index["nway"] = score_nway(out, trials, nway)
    write_json(out / INDEX, index)
    with atomic_file(out / REPORT) as tmp:
        tmp.write_text(render_html(index))
    return index


# --------------------------------------------------------------------------- N-way


def score_nway(out: Path, trials: list[dict[str, Any]], cfg: NWaySettings) -> dict[str, Any]:
    """Classify every image set of ``trials`` and compute N-way top-k accuracy for both conventions."""
    from eegalign.data.classes import wnid_to_imagenet_index
    from eegalign.generation.classify import classify_images, load_classifier
    from eegalign.generation.nway import nway_summary
    from eegalign.io import save_tensors

    model, processor = load_classifier(cfg.classifier, resolve_device(cfg.device, allow_mps=True))
    id2label = getattr(model.config, "id2label", {}) or {}
    logits: dict[str, np.ndarray] = {}
    rows: dict[str, np.ndarray] = {}  # set -> trial positions that have that image
    for kind in SETS:
        pos = np.array([t for t, r in enumerate(trials) if r.get(kind)], dtype=np.int64)
        if pos.size == 0:
            continue
        paths = [trials[t][kind] for t in pos]
        unique = sorted(set(paths))  # originals are shared by the trials of one image: classify once
        files = [out / rel for rel in unique]
        lg = classify_images(model, processor, files, batch_size=cfg.batch_size, desc=f"classify {kind}")
        row_of = {rel: j for j, rel in enumerate(unique)}
        logits[kind] = lg[[row_of[p] for p in paths]]  # (M_kind, 1000), one row per trial
        rows[kind] = pos
        for t, top in zip(pos, logits[kind].argmax(axis=1)):
            trials[t].setdefault("top1", {})[kind] = {"index": int(top), "name": id2label.get(int(top), str(top))}
    save_tensors(out / "nway_logits.safetensors", {f"{k}_logits": v for k, v in logits.items()}
                 | {f"{k}_trials": v for k, v in rows.items()}, {"classifier": cfg.classifier})

    notes: list[str] = []
    conventions: dict[str, np.ndarray] = {}  # convention -> (T,) true class per trial, -1 if unknown
    table = wnid_to_imagenet_index()
    wn = np.array([table.get(r.get("wnid") or "", -1) for r in trials], dtype=np.int64)
    if (wn >= 0).any():
        conventions["wnid"] = wn
    else:
        notes.append("wnid convention skipped: no trial's class is in the CVPR40 class table (classes unknown).")
    if "original" in logits:
        gw = np.full(len(trials), -1, dtype=np.int64)
        gw[rows["original"]] = logits["original"].argmax(axis=1)
        conventions["gwit"] = gw
    else:
        notes.append("gwit convention and the original set skipped: no original stimuli found (pass --images DIR).")
    if (wn < 0).any() and (wn >= 0).any():
        notes.append(f"{int((wn < 0).sum())} trials without a known ImageNet class are left out of the wnid rows.")

    results = []
    for conv, true_idx in conventions.items():
        for n in cfg.ns:
            for k in cfg.ks:
                for kind in SETS:
                    if kind not in logits:
                        continue
                    keep = true_idx[rows[kind]] >= 0
                    if not keep.any():
                        continue
                    summary = nway_summary(
                        logits[kind][keep], true_idx[rows[kind]][keep], n=n, k=k, draws=cfg.draws, seed=cfg.seed,
                        n_boot=cfg.n_boot,
                    )
                    results.append({"convention": conv, "set": kind, **summary})
                    if kind == "eeg":  # baseline: the same images scored against other trials' classes
                        shuffled = np.random.default_rng(cfg.seed).permutation(true_idx[rows[kind]][keep])
                        summary = nway_summary(
                            logits[kind][keep], shuffled, n=n, k=k, draws=cfg.draws, seed=cfg.seed, n_boot=cfg.n_boot
                        )
                        results.append({"convention": conv, "set": "eeg_shuffled", **summary})
    return {"classifier": cfg.classifier, "draws": cfg.draws, "seed": cfg.seed, "n_boot": cfg.n_boot,
            "results": results, "notes": notes}


# --------------------------------------------------------------------------- existing outputs


def load_index(out: str | os.PathLike) -> dict[str, Any]:
    path = Path(out) / INDEX
    if not path.is_file():
        raise DataError(f"{out} holds no {INDEX}: it is not the output of `eegalign generate`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e})") from e


def rescore(out: str | os.PathLike, nway: NWaySettings, grid_rows: int = 8) -> dict[str, Any]:
    """N-way accuracy (and fresh grids/report) for the images already in a generate output directory.

    Computed in a temporary copy (hard links where possible) swapped in only when complete: a failure
    (a missing image, an unloadable classifier) leaves the directory exactly as it was.
    """
    from eegalign.io import atomic_dir

    index = load_index(out)
    for r in index["trials"]:
        r.pop("top1", None)
    with atomic_dir(out, overwrite=True, kind="generation", command="eegalign generate --nway-only") as tmp:
        shutil.copytree(out, tmp, dirs_exist_ok=True, copy_function=_link_or_copy,
                        ignore=shutil.ignore_patterns(".tmp-*"))
        finish(tmp, index, nway=nway, grid_rows=grid_rows)
    return index


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (files are only ever replaced, never written in place), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def merge(
    parts: list[str | os.PathLike], out: str | os.PathLike, *, nway: NWaySettings | None = None,
    grid_rows: int = 8, overwrite: bool = False,
) -> dict[str, Any]:
    """Merge the output directories of ``--shard i/n`` runs into one (then grids, N-way, report)."""
    from eegalign.io import atomic_dir

    indexes = [load_index(p) for p in parts]
    first = indexes[0]
    keys = ("predictions", "route", "model", "split")
    for p, ix in zip(parts, indexes):
        strip = lambda d: {k: v for k, v in d.items() if k not in ("device", "resolved_device")}  # noqa: E731
        if any(ix.get(k) != first.get(k) for k in keys) or strip(ix["settings"]) != strip(first["settings"]):
            raise ConfigError(f"{p} was generated from other predictions or settings than {parts[0]}; cannot merge")
    with atomic_dir(out, overwrite=overwrite, kind="generation", command="eegalign generate") as tmp:
        trials: dict[int, dict[str, Any]] = {}
        for p, ix in zip(parts, indexes):
            for r in ix["trials"]:
                for kind in SETS:
                    if r.get(kind) and not (tmp / r[kind]).exists():
                        (tmp / r[kind]).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(Path(p) / r[kind], tmp / r[kind])
                r.pop("top1", None)
                trials[int(r["index"])] = r
        selection = dict(first.get("selection", {}), shard=None, merged_from=[str(p) for p in parts],
                         n_selected=len(trials))
        selection["description"] = f"{len(parts)} merged shards; {selection.get('description', '')}"
        index = dict(first, trials=[trials[i] for i in sorted(trials)], nway=None, selection=selection)
        finish(tmp, index, nway=nway, grid_rows=grid_rows)
    return index
