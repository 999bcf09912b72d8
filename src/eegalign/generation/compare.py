"""Generation runs side by side: per-trial scores of two ``eegalign generate`` outputs, paired on shared trials.

The seed's headline question is whether the image route (IP-Adapter) or the text route (``prompt_embeds``)
gives better images from the same EEG trials. Two generation directories answer it here:

1. :func:`load_generation_run` reads ``generation.json`` (trials, settings, N-way summary,
   reconstruction summary) of one directory.
2. :func:`shared_trials` matches trials by ``(index, image_id)``: the same row of the same
   predictions split, and so the same EEG trial, in both runs.
3. :func:`per_trial_scores` gives one number per trial and metric: N-way top-k accuracy recomputed
   from the stored classifier logits (``nway_logits.safetensors``) with distractor draws seeded by the
   trial alone, so both runs meet the same distractors on a shared trial; and the per-image
   reconstruction metrics the run stored.
4. :func:`compare_generation_runs` turns two runs into paired differences (sign-flip p, bootstrap CI),
   or unpaired ones when they share no trial, with a one-line verdict per metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.errors import DataError

INDEX = "generation.json"
LOGITS = "nway_logits.safetensors"
RECON_PER_IMAGE = "reconstruction_per_image.json"
#: the image sets whose per-trial scores are compared (the original stimuli are the same in both runs)
COMPARED_SETS = ("eeg", "true")
#: reconstruction metrics where a lower value is better
LOWER_IS_BETTER = {"effnet", "swav", "fid"}


@dataclass
class GenerationRun:
    """One ``eegalign generate`` output directory."""

    name: str
    path: Path
    index: dict[str, Any]
    evaluation: dict[str, Any] | None = field(default=None)  # metrics.json of the evaluation it came from

    @property
    def route(self) -> str:
        return str(self.index.get("route"))

    @property
    def trials(self) -> list[dict[str, Any]]:
        return self.index.get("trials", [])

    def trial_keys(self) -> list[tuple[int, str]]:
        """``(row of the predictions file, image_id)`` per trial, in the run's order."""
        return [(int(t["index"]), str(t["image_id"])) for t in self.trials]


def is_generation_dir(path: str | Path) -> bool:
    return (Path(path) / INDEX).is_file()


def load_generation_run(path: str | Path, name: str | None = None) -> GenerationRun:
    """Read a generate output directory; the evaluation's ``metrics.json`` is attached when it can be found."""
    p = Path(path)
    f = p / INDEX
    try:
        index = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{f} is not a readable generation.json ({e})") from e
    if not isinstance(index, dict) or not isinstance(index.get("trials"), list):
        raise DataError(f"{f} is not an eegalign generation.json (no trials list)")
    for t in index["trials"]:
        if not isinstance(t, dict) or not isinstance(t.get("index"), int) or not isinstance(t.get("image_id"), str):
            raise DataError(f"{f}: every trial needs an integer 'index' and a string 'image_id'")
    return GenerationRun(name or p.name, p, index, _find_evaluation(p, index))


def _find_evaluation(path: Path, index: dict[str, Any]) -> dict[str, Any] | None:
    """``metrics.json`` beside the predictions file the run generated from, if it is there."""
    pred = index.get("predictions")
    if not pred:
        return None
    for base in (Path(pred).parent, path.parent / Path(pred).parent, path / Path(pred).parent):
        f = base / "metrics.json"
        if f.is_file():
            try:
                m = json.loads(f.read_text())
            except ValueError:
                return None
            return m if isinstance(m, dict) and "retrieval" in m else None
    return None


def shared_trials(a: GenerationRun, b: GenerationRun) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(pos_a, pos_b)`` of the trials both runs generated, aligned and sorted by trial row."""
    where_b = {key: j for j, key in enumerate(b.trial_keys())}
    pairs = sorted((key, i, where_b[key]) for i, key in enumerate(a.trial_keys()) if key in where_b)
    pos_a = np.array([i for _, i, _ in pairs], dtype=np.int64)
    pos_b = np.array([j for _, _, j in pairs], dtype=np.int64)
    return pos_a, pos_b


# ----------------------------------------------------------------------------- per-trial scores


def _nway_settings(run: GenerationRun) -> dict[str, Any] | None:
    nway = run.index.get("nway")
    if not nway or not (run.path / LOGITS).is_file():
        return None
    ns = sorted({int(r["n"]) for r in nway.get("results", [])})
    ks = sorted({int(r["k"]) for r in nway.get("results", [])})
    return {"classifier": nway.get("classifier"), "draws": int(nway.get("draws", 50)), "seed": int(nway.get("seed", 0)),
            "ns": ns, "ks": ks}


def _trial_logits(run: GenerationRun) -> dict[str, np.ndarray]:
    """Set -> (T, C) classifier logits per trial of the run (NaN rows where the trial has no such image)."""
    from eegalign.io import load_tensors

    tensors, _ = load_tensors(run.path / LOGITS)
    out: dict[str, np.ndarray] = {}
    for kind in ("original", *COMPARED_SETS):
        if f"{kind}_logits" not in tensors:
            continue
        lg = np.asarray(tensors[f"{kind}_logits"], dtype=np.float64)  # (M_kind, C)
        pos = np.asarray(tensors[f"{kind}_trials"], dtype=np.int64)  # (M_kind,) positions in run.trials
        full = np.full((len(run.trials), lg.shape[1]), np.nan)
        full[pos] = lg
        out[kind] = full
    return out


def _true_classes(run: GenerationRun, logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Convention -> (T,) true ImageNet class per trial (-1 where unknown): ``wnid`` and ``gwit``."""
    from eegalign.data.classes import wnid_to_imagenet_index

    table = wnid_to_imagenet_index()
    conv = {"wnid": np.array([table.get(t.get("wnid") or "", -1) for t in run.trials], dtype=np.int64)}
    if "original" in logits:
        orig = logits["original"]
        known = np.isfinite(orig).all(axis=1)
        conv["gwit"] = np.where(known, np.nan_to_num(orig).argmax(axis=1), -1)
    return {k: v for k, v in conv.items() if (v >= 0).any()}


def nway_per_trial(logits: np.ndarray, true_idx: np.ndarray, trial_rows: np.ndarray, n: int, k: int,
                   draws: int, seed: int) -> np.ndarray:
    """(T,) N-way top-k per trial, NaN where the image or class is missing.

    The distractor draws of a trial depend only on ``(seed, trial row)``, so two runs scored on the
    same trial meet the same distractors, whatever else each run generated.
    """
    from eegalign.generation.nway import nway_topk_per_image

    out = np.full(len(true_idx), np.nan)
    for t in range(len(true_idx)):
        if true_idx[t] < 0 or not np.isfinite(logits[t]).all():
            continue
        trial_seed = int(np.random.SeedSequence([seed, int(trial_rows[t])]).generate_state(1)[0])
        out[t] = nway_topk_per_image(logits[t : t + 1], true_idx[t : t + 1], n=n, k=k, draws=draws, seed=trial_seed)[0]
    return out


def _recon_per_trial(run: GenerationRun) -> dict[str, np.ndarray]:
    """``"{set}.{metric}"`` -> (T,) per-image reconstruction scores aligned with ``run.trials`` (NaN: not scored)."""
    f = run.path / RECON_PER_IMAGE
    if not f.is_file():
        return {}
    try:
        data = json.loads(f.read_text())
    except ValueError as e:
        raise DataError(f"{f} is not valid JSON ({e})") from e
    rows = data.get("trials")  # trial rows (predictions index) the per-image lists follow
    where = {int(t["index"]): i for i, t in enumerate(run.trials)}
    out: dict[str, np.ndarray] = {}
    for kind, metrics in (data.get("sets") or {}).items():
        for metric, values in metrics.items():
            vals = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
            if rows is None or len(rows) != vals.size:
                raise DataError(f"{f}: {kind}/{metric} has {vals.size} values for {len(rows or [])} trials")
            full = np.full(len(run.trials), np.nan)
            for r, v in zip(rows, vals):
                if int(r) in where:
                    full[where[int(r)]] = v
            out[f"{kind}.{metric}"] = full
    return out


def metric_name(kind: str, metric: str) -> str:
    """Name in ``compare.json``: the EEG set's metrics plain (``nway50_top1_wnid``), others prefixed (``true.pixcorr``)."""
    return metric if kind == "eeg" else f"{kind}.{metric}"


def per_trial_scores(run: GenerationRun, ns: list[int], ks: list[int], draws: int, seed: int) -> dict[str, np.ndarray]:
    """Metric name -> (T,) per-trial score of ``run`` (N-way for the given N and k, reconstruction metrics)."""
    scores: dict[str, np.ndarray] = {}
    if (run.path / LOGITS).is_file() and ns:
        logits = _trial_logits(run)
        rows = np.array([int(t["index"]) for t in run.trials], dtype=np.int64)
        for conv, true_idx in _true_classes(run, logits).items():
            for kind in COMPARED_SETS:
                if kind not in logits:
                    continue
                for n in ns:
                    for k in ks:
                        if k <= n <= logits[kind].shape[1]:
                            scores[metric_name(kind, f"nway{n}_top{k}_{conv}")] = nway_per_trial(
                                logits[kind], true_idx, rows, n, k, draws, seed)
    for key, values in _recon_per_trial(run).items():
        kind, metric = key.split(".", 1)
        if kind in COMPARED_SETS:
            scores[metric_name(kind, metric)] = values
    return scores


# ----------------------------------------------------------------------------- two runs


@dataclass
class RunComparison:
    """``A vs B``: how they were paired, one :class:`~eegalign.paired.Difference` and one verdict per metric."""

    name_a: str
    name_b: str
    paired: bool
    n_shared: int
    differences: dict[str, Any]  # metric -> Difference
    verdicts: dict[str, str]
    notes: list[str]

    @property
    def key(self) -> str:
        return f"{self.name_a} vs {self.name_b}"

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {m: d.to_json() for m, d in self.differences.items()}


def _shared_nway(a: GenerationRun, b: GenerationRun, notes: list[str]) -> tuple[list[int], list[int], int, int]:
    """N and k values both runs scored with the same classifier and draws (empty when not comparable)."""
    sa, sb = _nway_settings(a), _nway_settings(b)
    if sa is None or sb is None:
        missing = [r.name for r, s in ((a, sa), (b, sb)) if s is None]
        notes.append(f"N-way not compared: no N-way scores (generation.json nway + {LOGITS}) in {', '.join(missing)}.")
        return [], [], 0, 0
    if sa["classifier"] != sb["classifier"] or sa["draws"] != sb["draws"]:
        notes.append(f"N-way not compared: the runs used different classifiers or draws "
                     f"({sa['classifier']}/{sa['draws']} vs {sb['classifier']}/{sb['draws']}).")
        return [], [], 0, 0
    ns = sorted(set(sa["ns"]) & set(sb["ns"]))
    ks = sorted(set(sa["ks"]) & set(sb["ks"]))
    return ns, ks, sa["draws"], sa["seed"]


def compare_generation_runs(a: GenerationRun, b: GenerationRun, n_boot: int = 2000, n_perm: int = 10_000,
                            seed: int = 0) -> RunComparison:
    """Paired differences A - B on the trials both runs generated; unpaired when they share none."""
    from eegalign.paired import paired_difference, unpaired_difference, verdict

    notes: list[str] = []
    ns, ks, draws, nway_seed = _shared_nway(a, b, notes)
    scores_a = per_trial_scores(a, ns, ks, draws, nway_seed)
    scores_b = per_trial_scores(b, ns, ks, draws, nway_seed)
    pos_a, pos_b = shared_trials(a, b)
    paired = pos_a.size > 0
    if not paired:
        notes.append(f"{a.name} and {b.name} share no trial (same predictions row and image): compared unpaired, "
                     "which is weaker and mixes trial difficulty into the difference.")
    diffs: dict[str, Any] = {}
    verdicts: dict[str, str] = {}
    for metric in sorted(set(scores_a) & set(scores_b)):
        va, vb = scores_a[metric], scores_b[metric]
        if paired:
            d = paired_difference(va[pos_a], vb[pos_b], n_boot=n_boot, n_perm=n_perm, seed=seed)
        else:
            d = unpaired_difference(va, vb, n_boot=n_boot, n_perm=n_perm, seed=seed)
        if d.n_trials == 0:
            continue
        diffs[metric] = d
        base = metric.split(".")[-1]
        is_acc = base.startswith("nway")
        verdicts[metric] = verdict(metric, a.name, b.name, d, scale=100.0 if is_acc else 1.0,
                                   unit=" points" if is_acc else "", higher_is_better=base not in LOWER_IS_BETTER,
                                   digits=1 if is_acc else 3)
    return RunComparison(a.name, b.name, paired, int(pos_a.size), diffs, verdicts, notes)
