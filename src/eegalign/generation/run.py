"""The ``generate`` workflow, one step per module:

1. settings validated (:mod:`~eegalign.generation.settings`), the norm of the predictions chosen
   (:mod:`~eegalign.generation.norms`);
2. trials selected and their originals located (:mod:`~eegalign.generation.selection`);
3. the pipeline and its IP-Adapter loaded (:mod:`~eegalign.generation.generator`);
4. the batch loop (:mod:`~eegalign.generation.batches`);
5. scores: N-way and reconstruction (:mod:`~eegalign.generation.scoring`);
6. grids, generation.json and generation.html (:mod:`~eegalign.generation.outputs`, which also
   holds ``--nway-only`` and ``--merge``).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import numpy as np

from eegalign.errors import DataError
from eegalign.generation.outputs import COMMAND, OUTPUT_KIND, load_index, merge, rescore, write_outputs
from eegalign.generation.selection import parse_shard, select_trials, trial_wnids
from eegalign.generation.settings import (
    INDEX,
    REPORT,
    GenerationSettings,
    NWaySettings,
    ReconSettings,
    validate_generation,
    validate_scoring,
)
from eegalign.predictions import Predictions

__all__ = [
    "INDEX", "REPORT", "GenerationSettings", "NWaySettings", "ReconSettings", "generate_images", "load_index", "merge",
    "parse_shard", "rescore", "select_trials", "trial_wnids",
]


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
    recon: ReconSettings | None = None,
    grid_rows: int = 8,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generate the selected trials' images, score them and write the output directory ``out`` atomically.

    Args:
        preds: the predictions file's contents.
        indices: rows of ``preds`` to generate (from :func:`select_trials`).
        images_dir: the original stimuli (default: the cache's ``images/``).
        nway: N-way settings, or None for no classifier.
        recon: reconstruction-metric settings, or None to skip them.
    """
    from eegalign.generation.batches import generate_all
    from eegalign.generation.generator import load_generator, release
    from eegalign.generation.norms import prepare_predictions
    from eegalign.generation.recon import check_models_dir
    from eegalign.generation.selection import copy_originals, locate_originals, trial_records
    from eegalign.io import atomic_dir

    if len(indices) == 0:
        raise DataError("no trials selected: check --limit / --per-class / --shard")
    validate_generation(settings, preds.route)
    validate_scoring(nway, recon, grid_rows)
    if recon is not None:
        check_models_dir(recon.models_dir)
    eeg_embeddings, norm_record = prepare_predictions(preds, settings.match_norm)
    originals, images_dir = locate_originals(preds, indices, images_dir)
    trials = trial_records(preds, indices, settings.seed)
    generator = load_generator(settings, preds.route, tuple(preds.pred.shape))
    sources = {"eeg": eeg_embeddings, "true": preds.true}
    with atomic_dir(out, overwrite=overwrite, kind=OUTPUT_KIND, command=COMMAND) as tmp:
        copy_originals(trials, originals, tmp)
        generate_all(generator, trials, {s: sources[s] for s in settings.generated_sets()}, settings, tmp)
        recorded = dict(asdict(settings), guidance=settings.guidance_for(preds.route), **generator.record())
        release(generator)
        index: dict[str, Any] = {
            "predictions": predictions_path, "model": preds.model, "route": preds.route, "split": preds.split,
            "n_trials_total": preds.n, "images_dir": str(images_dir) if images_dir else None,
            "settings": recorded, "match_norm": norm_record, "selection": selection or {}, "trials": trials,
            "grids": [], "nway": None,
        }
        write_outputs(tmp, index, nway=nway, recon=recon, grid_rows=grid_rows)
    return index
