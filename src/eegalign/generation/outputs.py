"""Writing a generation output directory, and the commands that work on existing ones.

::

    DIR/generation.json                settings, match_norm, selection, one record per trial, N-way and
                                       reconstruction results
    DIR/generation.html                grids + N-way and reconstruction tables with chance and CIs
    DIR/images/<i>_eeg.png             from the EEG prediction of trial i (row i of the predictions file)
    DIR/images/<i>_true.png            from the true embedding of trial i
    DIR/originals/<id>.png             each original stimulus once
    DIR/grids/grid_<j>.png             rows = trials, columns = original | true | EEG
    DIR/nway_logits.safetensors        classifier logits of every image set (if a classifier was given)
    DIR/reconstruction_per_image.json  per-trial reconstruction metrics (what `eegalign compare` pairs)

A new directory is written atomically as a whole; ``--nway-only`` rewrites its index and report in place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from eegalign.errors import ConfigError, DataError
from eegalign.generation.settings import IMAGE_SETS, INDEX, REPORT, NWaySettings, ReconSettings

OUTPUT_KIND = "generation"
COMMAND = "eegalign generate"


def caption(rec: dict[str, Any]) -> str:
    """A trial's grid caption: index, class name and subject."""
    name = rec.get("class_name") or rec.get("wnid") or f"label {rec['label']}"
    return f"#{rec['index']}  {name}  (subject {rec['subject']})"


def write_grids(out: Path, trials: list[dict[str, Any]], grid_rows: int) -> list[str]:
    """(Re)draw ``out/grids/grid_<j>.png``, ``grid_rows`` trials each; return their relative paths."""
    from eegalign.generation.grids import make_grid
    from eegalign.io import atomic_file

    grids_dir = out / "grids"
    grids_dir.mkdir(exist_ok=True)
    for old in grids_dir.glob("grid_*.png"):
        old.unlink()
    written = []
    for j, start in enumerate(range(0, len(trials), grid_rows)):
        rows = [dict(r, caption=caption(r)) for r in trials[start : start + grid_rows]]
        rel = f"grids/grid_{j:03d}.png"
        with atomic_file(out / rel) as tmp:
            make_grid(rows, out).save(tmp, format="PNG")
        written.append(rel)
    return written


def write_outputs(
    out: Path, index: dict[str, Any], *, nway: NWaySettings | None, recon: ReconSettings | None, grid_rows: int = 8,
) -> dict[str, Any]:
    """Grids, N-way results (if ``nway``), reconstruction metrics (if ``recon``), generation.json and .html in ``out``."""
    from eegalign.generation.grids import render_html
    from eegalign.generation.scoring import score_nway, score_reconstruction
    from eegalign.io import atomic_file, write_json

    if grid_rows < 1:
        raise ConfigError(f"--grid-rows must be >= 1, got {grid_rows}")
    out = Path(out)
    index["grids"] = write_grids(out, index["trials"], grid_rows)
    if nway is not None:
        index["nway"] = score_nway(out, index["trials"], nway)
    if recon is not None:
        scores = score_reconstruction(out, index["trials"], recon)
        index["reconstruction"] = scores["summary"]
        index["reconstruction_notes"] = scores["notes"]
        index["reconstruction_trials"] = scores["n_trials"]
        index["reconstruction_models"] = recon.models_dir
    write_json(out / INDEX, index)
    with atomic_file(out / REPORT) as tmp:
        tmp.write_text(render_html(index))
    return index


def load_index(out: str | os.PathLike) -> dict[str, Any]:
    """The ``generation.json`` of an existing output directory."""
    path = Path(out) / INDEX
    if not path.is_file():
        raise DataError(f"{out} holds no {INDEX}: it is not the output of `eegalign generate`")
    try:
        index = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({e})") from e
    check_index(path, index)
    return index


def check_index(path: Path, index: Any) -> None:
    """One-line :class:`DataError` unless ``index`` has the shape `generate` writes: a mapping with a ``settings``
    mapping and a list of trial records, each with an integer ``index`` and image paths that stay inside the
    output directory (a hand-edited ``../x`` would read or write outside it)."""
    bad = f"{path} is not a generation.json written by `eegalign generate`"
    if not isinstance(index, dict) or not isinstance(index.get("trials"), list) or not isinstance(index.get("settings"), dict):
        raise DataError(f"{bad} (expected a mapping with 'settings' and a list of 'trials')")
    for rec in index["trials"]:
        if not isinstance(rec, dict) or not isinstance(rec.get("index"), int) or isinstance(rec.get("index"), bool):
            raise DataError(f"{bad}: every trial record needs an integer 'index', got {str(rec)[:80]}")
        for image_set in IMAGE_SETS:
            rel = rec.get(image_set)
            if rel is None:
                continue
            if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise DataError(f"{bad}: trial {rec['index']} {image_set!r} must be a path inside the output "
                                f"directory, got {rel!r}")


def rescore(out: str | os.PathLike, nway: NWaySettings, recon: ReconSettings | None = None,
            grid_rows: int = 8) -> dict[str, Any]:
    """N-way accuracy (and fresh grids/report; reconstruction metrics too if ``recon``) for the images in ``out``.

    Computed in a temporary copy (hard links where possible) swapped in only when complete: a failure
    (a missing image, an unloadable classifier) leaves ``out`` exactly as it was.
    """
    from eegalign.io import atomic_dir

    index = load_index(out)
    for rec in index["trials"]:
        rec.pop("top1", None)
    with atomic_dir(out, overwrite=True, kind=OUTPUT_KIND, command=f"{COMMAND} --nway-only") as tmp:
        shutil.copytree(out, tmp, dirs_exist_ok=True, copy_function=_link_or_copy,
                        ignore=shutil.ignore_patterns(".tmp-*"))
        write_outputs(tmp, index, nway=nway, recon=recon, grid_rows=grid_rows)
    return index


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (output files are only ever replaced, never written in place), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _check_mergeable(parts: list[str | os.PathLike], indexes: list[dict[str, Any]]) -> None:
    """Every part must come from the same predictions and settings (the device may differ)."""
    first = indexes[0]

    def comparable(settings: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in settings.items() if k not in ("device", "resolved_device")}

    for path, index in zip(parts, indexes):
        same_source = all(index.get(k) == first.get(k) for k in ("predictions", "route", "model", "split"))
        if not same_source or comparable(index["settings"]) != comparable(first["settings"]):
            raise ConfigError(f"{path} was generated from other predictions or settings than {parts[0]}; cannot merge")


def _copy_trials(parts: list[str | os.PathLike], indexes: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """Copy every part's images into ``out``; return the trial records sorted by index."""
    trials: dict[int, dict[str, Any]] = {}
    for path, index in zip(parts, indexes):
        for rec in index["trials"]:
            for image_set in IMAGE_SETS:
                if rec.get(image_set) and not (out / rec[image_set]).exists():
                    (out / rec[image_set]).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(Path(path) / rec[image_set], out / rec[image_set])
            rec.pop("top1", None)
            trials[int(rec["index"])] = rec
    return [trials[i] for i in sorted(trials)]


def merge(
    parts: list[str | os.PathLike], out: str | os.PathLike, *, nway: NWaySettings | None = None,
    recon: ReconSettings | None = None, grid_rows: int = 8, overwrite: bool = False,
) -> dict[str, Any]:
    """Merge the output directories of ``--shard i/n`` runs into one (then grids, scores, report)."""
    from eegalign.io import atomic_dir

    indexes = [load_index(p) for p in parts]
    _check_mergeable(parts, indexes)
    first = indexes[0]
    with atomic_dir(out, overwrite=overwrite, kind=OUTPUT_KIND, command=COMMAND) as tmp:
        trials = _copy_trials(parts, indexes, tmp)
        selection = dict(first.get("selection", {}), shard=None, merged_from=[str(p) for p in parts],
                         n_selected=len(trials))
        selection["description"] = f"{len(parts)} merged shards; {selection.get('description', '')}"
        stale = ("reconstruction", "reconstruction_notes", "reconstruction_trials", "reconstruction_models")
        index = {k: v for k, v in first.items() if k not in stale}
        index.update(trials=trials, nway=None, selection=selection)
        write_outputs(tmp, index, nway=nway, recon=recon, grid_rows=grid_rows)
    return index
