"""The generation part of ``eegalign compare``: side-by-side table, paired verdicts, the five-column route grid.

Each function turns :class:`~eegalign.generation.compare.GenerationRun` objects (and their
:class:`~eegalign.generation.compare.RunComparison`) into a :class:`eegalign.report.Section` or a
plain-JSON block of ``compare.json``; :func:`generation_comparison_part` puts them together as one
:class:`~eegalign.report.compare.ComparisonPart`, which :func:`eegalign.report.write_comparison` runs
like the evaluation part.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from eegalign.generation.compare import GenerationRun, RunComparison

if TYPE_CHECKING:  # pragma: no cover
    from eegalign.report.compare import ComparisonPart, ComparisonRequest
    from eegalign.report.document import Section

SET_NAMES = {"eeg": "EEG", "true": "true embedding", "eeg_shuffled": "EEG, shuffled trials (baseline)",
             "original": "original stimuli", "shuffled": "shuffled trials (baseline)"}
RECON_NAMES = {"pixcorr": "PixCorr", "ssim": "SSIM", "alexnet2": "AlexNet(2) 2-way", "alexnet5": "AlexNet(5) 2-way",
               "inception": "Inception 2-way", "clip": "CLIP 2-way", "effnet": "EffNet-B1 distance (lower better)",
               "swav": "SwAV distance (lower better)", "fid": "FID (lower better)", "clip_score": "CLIP score"}
EMBEDDING_ROWS = (("retrieval", "all_top1"), ("retrieval", "all_top5"), ("retrieval", "50way_top1"),
                  ("classification", "top1"))


def _three_decimals(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _summary_cell(entry: dict[str, Any] | None, as_percent: bool) -> str:
    """``value [lo, hi]; chance c`` of one summary entry ("n/a" when the run lacks it)."""
    if not entry or entry.get("value") is None:
        return "n/a"
    from eegalign.report.format import percent

    show = percent if as_percent else _three_decimals
    ci = entry.get("ci95") or [None, None]
    text = f"{show(entry['value'])} [{show(ci[0])}, {show(ci[1])}]"
    if entry.get("chance") is not None:
        text += f"; chance {show(entry['chance'])}"
    return text


def summary_rows(runs: list[GenerationRun]) -> dict[str, dict[str, tuple[dict[str, Any], bool]]]:
    """Row label -> run name -> (summary entry, is a percentage), over every metric any run reports."""
    rows: dict[str, dict[str, tuple[dict[str, Any], bool]]] = {}
    for run in runs:
        for r in (run.index.get("nway") or {}).get("results", []):
            label = f"{r['n']}-way top-{r['k']} ({r['convention']}), {SET_NAMES.get(r['set'], r['set'])}"
            rows.setdefault(label, {})[run.name] = (r, True)
        for kind, metrics in (run.index.get("reconstruction") or {}).items():
            for metric, entry in metrics.items():
                label = f"{RECON_NAMES.get(metric, metric)}, {SET_NAMES.get(kind, kind)}"
                rows.setdefault(label, {})[run.name] = (entry, False)
        ev = run.evaluation or {}
        for block, key in EMBEDDING_ROWS:
            if ev.get(block, {}).get(key):
                rows.setdefault(f"embedding {block} {key.replace('_', ' ')}", {})[run.name] = (ev[block][key], True)
        cos = ev.get("similarity", {}).get("cosine", {}).get("mean")
        if cos is not None:
            base = ev.get("baselines", {}).get("train_mean", {}).get("similarity", {}).get("cosine", {}).get("mean")
            rows.setdefault("embedding cosine(pred, true) (baseline)", {})[run.name] = (
                {"value": cos, "ci95": None, "chance": base}, False)
    return rows


def side_by_side_section(runs: list[GenerationRun]) -> "Section":
    """Every N-way, reconstruction and embedding number of every generation run, one column per run."""
    from eegalign.report.document import Section

    sec = Section("Generation runs side by side")
    sec.p(
        "One column per `eegalign generate` output: "
        + "; ".join(f"**{r.name}**: {r.route} route, {len(r.trials)} trials, model {r.index.get('model')}" for r in runs)
        + ". Each cell: value [95% bootstrap CI]; chance (for the cosine row: the train-mean baseline's cosine). "
        "Embedding rows come from the evaluation whose predictions the run generated from (n/a when its "
        "metrics.json was not found beside the predictions file). A run's EEG row means something only above its "
        "shuffled-trials baseline row."
    )
    rows = summary_rows(runs)
    body = [[label, *[_summary_cell(*cells[r.name]) if r.name in cells else "n/a" for r in runs]] for label, cells in rows.items()]
    sec.table(["metric", *[r.name for r in runs]], body)
    return sec


def paired_section(comparisons: list[RunComparison]) -> "Section":
    """One verdict sentence per metric and pair of runs, then the numbers behind it."""
    from eegalign.report.document import Section

    sec = Section("Is one run better? Paired statistics")
    sec.p(
        "For each pair of generation runs, A - B on the trials both generated (same predictions row and image): "
        "95% bootstrap CI over trials and a two-sided sign-flip permutation p-value (exact for up to 16 trials). "
        "Accuracies in percentage points. N-way is recomputed per trial with distractor draws seeded by the trial, "
        "so both runs meet the same distractors. 'Reliable' means p < 0.05 and a CI that excludes 0; with many "
        "metrics, expect about one in twenty 'reliable' differences by chance alone."
    )
    for c in comparisons:
        how = f"paired on {c.n_shared} shared trials" if c.paired else "UNPAIRED (no shared trials)"
        sec.p(f"**{c.key}** ({how}).")
        for note in c.notes:
            sec.p(note)
        if not c.differences:
            sec.p("No metric was scored by both runs.")
            continue
        for metric in c.differences:
            sec.p(c.verdicts[metric])
        rows = [[m, f"{d.mean_a:.4g}", f"{d.mean_b:.4g}", f"{d.difference:+.4g} [{d.ci95[0]:+.4g}, {d.ci95[1]:+.4g}]",
                 f"{d.p:.3g}", str(d.n_trials)] for m, d in c.differences.items()]
        sec.table(["metric", f"A = {c.name_a}", f"B = {c.name_b}", "A - B [95% CI]", "p", "trials"], rows)
    return sec


def route_pair(runs: list[GenerationRun], routes: tuple[str, str] | None) -> tuple[GenerationRun, GenerationRun] | None:
    """The (image route, text route) runs the grid shows: those named by ``--routes``, else the first of each."""
    if routes is not None:
        by_path = {str(r.path.resolve()): r for r in runs}
        return by_path[str(Path(routes[0]).resolve())], by_path[str(Path(routes[1]).resolve())]
    image = next((r for r in runs if r.route == "image"), None)
    text = next((r for r in runs if r.route == "text"), None)
    return (image, text) if image and text else None


ROUTE_COLUMNS = (("original", "original"), ("image_true", "image route, true"), ("image_eeg", "image route, EEG"),
                 ("text_true", "text route, true"), ("text_eeg", "text route, EEG"))


def route_grid_rows(image: GenerationRun, text: GenerationRun, limit: int) -> list[dict[str, Any]]:
    """Rows of the five-column grid: shared trials (at most ``limit``), absolute image paths, class + subject caption."""
    from eegalign.generation.compare import shared_trials

    pos_i, pos_t = shared_trials(image, text)
    rows = []
    for i, j in list(zip(pos_i, pos_t))[:limit]:
        ti, tt = image.trials[int(i)], text.trials[int(j)]
        cls = ti.get("class_name") or ti.get("wnid") or f"label {ti.get('label')}"

        def path(run: GenerationRun, rel: str | None) -> str | None:
            return str(run.path / rel) if rel and (run.path / rel).is_file() else None

        rows.append({
            "caption": f"trial {ti['index']}: {cls}, subject {ti.get('subject')}",
            "original": path(image, ti.get("original")) or path(text, tt.get("original")),
            "image_true": path(image, ti.get("true")), "image_eeg": path(image, ti.get("eeg")),
            "text_true": path(text, tt.get("true")), "text_eeg": path(text, tt.get("eeg")),
        })
    return rows


def comparison_json(runs: list[GenerationRun], comparisons: list[RunComparison]) -> dict[str, Any]:
    """The generation part of ``compare.json``: runs, ``paired``, ``pairing`` and ``verdicts``."""
    return {
        "generation_runs": [
            {"name": r.name, "path": str(r.path), "route": r.route, "model": r.index.get("model"),
             "n_trials": len(r.trials), "nway": (r.index.get("nway") or {}).get("results", []),
             "reconstruction": r.index.get("reconstruction"), "evaluation_found": r.evaluation is not None}
            for r in runs
        ],
        "paired": {c.key: c.to_json() for c in comparisons},
        "pairing": {c.key: {"paired": c.paired, "n_shared_trials": c.n_shared, "notes": c.notes} for c in comparisons},
        "verdicts": {c.key: c.verdicts for c in comparisons},
    }


def route_grid_section(runs: list[GenerationRun], routes: tuple[str, str] | None, out: Path,
                       grid_trials: int) -> tuple["Section", list[tuple[str, Any]]]:
    """The five-column grid of an image-route and a text-route run: its section and ``(file name, image)`` pages."""
    from eegalign.generation.grids import make_grid
    from eegalign.report.document import Section

    grids: list[tuple[str, Any]] = []
    pair = route_pair(runs, routes)
    sec = Section("Image route vs text route, by eye")
    if pair is None:
        sec.p("No grid: it needs one image-route and one text-route generation run.")
        return sec, grids
    rows = route_grid_rows(*pair, limit=grid_trials)
    sec.p(f"Shared trials of **{pair[0].name}** (image route) and **{pair[1].name}** (text route), "
          f"{len(rows)} shown. Columns: original | image route from the true embedding | image route from "
          "EEG | text route from the true embedding | text route from EEG. Captions: trial, class, subject.")
    for j, start in enumerate(range(0, len(rows), 8)):
        name = f"routes_{j:03d}.png"
        grids.append((name, make_grid(rows[start : start + 8], out, columns=ROUTE_COLUMNS)))
        sec.fig(f"grids/{name}", f"trials {start + 1}-{min(start + 8, len(rows))} of {len(rows)}")
    if not rows:
        sec.p("The two runs share no trial, so no row can be shown.")
    return sec, grids


def generation_comparison_part(request: "ComparisonRequest") -> "ComparisonPart | None":
    """Generation runs of an ``eegalign compare``: sections, ``compare.json`` block and route grids (None without any)."""
    from itertools import combinations

    from eegalign.generation.compare import compare_generation_runs, is_generation_dir, load_generation_run
    from eegalign.report.compare import ComparisonPart

    paths = [p for p in request.paths if is_generation_dir(p)]
    if not paths:
        return None
    runs = [load_generation_run(p) for p in paths]
    if len({r.name for r in runs}) != len(runs):  # same directory names under different parents: use the paths
        runs = [load_generation_run(p, name=str(p)) for p in paths]
    comparisons = [compare_generation_runs(a, b) for a, b in combinations(runs, 2)]
    grid_sec, grids = route_grid_section(runs, request.routes, request.out, request.grid_trials)
    files = [(f"grids/{name}", lambda path, image=image: image.save(path)) for name, image in grids]
    sections = [side_by_side_section(runs), paired_section(comparisons), grid_sec]
    return ComparisonPart(sections, comparison_json(runs, comparisons), files)
