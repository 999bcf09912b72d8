"""``eegalign compare``: several runs side by side (``compare.md``/``.html``/``.json`` and more).

A comparison is made of *parts* (:class:`ComparisonPart`): each part picks the runs it knows
(evaluation outputs here, generation outputs in
:func:`eegalign.generation.compare_sections.generation_comparison_part`) and returns its report
sections, its block of ``compare.json`` and the extra files it writes. :func:`write_comparison`
runs the parts in :data:`COMPARISON_PARTS` and writes everything atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.report.document import Section
from eegalign.report.format import accuracy_with_ci, number, percent, retrieval_label
from eegalign.report.render import render_html, render_markdown

COMPARE_ACC = (
    ("retrieval", "all_top1"), ("retrieval", "all_top5"), ("retrieval", "2way_top1"), ("retrieval", "10way_top1"),
    ("retrieval", "50way_top1"), ("retrieval", "200way_top1"), ("classification", "top1"), ("classification", "top5"),
)


@dataclass
class ComparisonRequest:
    """What ``eegalign compare`` was asked.

    Args:
        paths: the run directories (evaluate or generate outputs, or a metrics.json).
        out: the output directory.
        routes: the (image route, text route) generation runs of the route grid; None: the first of each.
        grid_trials: at most this many trials in the route grid.
    """

    paths: list[str | Path]
    out: Path
    routes: tuple[str, str] | None = None
    grid_trials: int = 16


@dataclass
class ComparisonPart:
    """One part of a comparison.

    Args:
        sections: report sections, in order.
        summary: keys merged into ``compare.json``.
        files: ``(relative path, writer)``: ``writer(absolute path)`` writes that file.
    """

    sections: list[Section]
    summary: dict[str, Any]
    files: list[tuple[str, Callable[[Path], None]]] = field(default_factory=list)


# ----------------------------------------------------------------------------- evaluation runs


def load_run_metrics(path: str | Path) -> tuple[str, dict]:
    """``(name, metrics)`` of a run directory holding ``metrics.json`` (or the file itself)."""
    from eegalign.errors import DataError

    p = Path(path)
    f = p / "metrics.json" if p.is_dir() else p
    if not f.is_file():
        raise DataError(f"{path}: no metrics.json (run `eegalign evaluate ... --out {path}` first)")
    try:
        m = json.loads(f.read_text())
    except ValueError as e:
        raise DataError(f"{f} is not valid JSON ({e})") from e
    if not isinstance(m, dict) or "retrieval" not in m or "similarity" not in m:
        raise DataError(f"{f} is not an eegalign metrics.json (no retrieval/similarity)")
    return (p if p.is_dir() else p.parent).name, m


def _accuracy_columns(rec: dict[str, Any], m: dict, base: dict) -> None:
    """Add value, CI bounds, chance and baseline of every :data:`COMPARE_ACC` metric the run has."""
    for block, key in COMPARE_ACC:
        e = m.get(block, {}).get(key)
        col = f"{'class_' if block == 'classification' else ''}{key}"
        if e:
            rec[col], rec[f"{col}_lo"], rec[f"{col}_hi"] = e["value"], e["ci95"][0], e["ci95"][1]
            rec[f"{col}_chance"] = e["chance"]
            be = base.get(block, {}).get(key)
            rec[f"{col}_baseline"] = be["value"] if be else None


def comparison_rows(runs: list[tuple[str, dict]]) -> tuple[list[str], list[dict[str, Any]]]:
    """One flat record per run: numeric columns (value, ci lo/hi, chance) for CSV and figures."""
    cols: list[str] = []
    recs = []
    for name, m in runs:
        base = m.get("baselines", {}).get("train_mean", {})
        rec: dict[str, Any] = {
            "run": name, "model": m.get("run", {}).get("model", ""), "route": m.get("route"), "split": m.get("run", {}).get("split", ""),
            "n": m.get("n"), "n_images": m.get("n_images"),
            "baseline": m.get("settings", {}).get("baseline_label", ""),
            "cosine": m["similarity"]["cosine"]["mean"],
            "baseline_cosine": base.get("similarity", {}).get("cosine", {}).get("mean"),
            "permutation_p": m.get("baselines", {}).get("permutation_p"),
        }
        _accuracy_columns(rec, m, base)
        recs.append(rec)
        cols += [c for c in rec if c not in cols]
    return cols, recs


def _run_row(name: str, m: dict, acc_cols: list[tuple[str, str]]) -> list[str]:
    """One row of the side-by-side table: run, model, route, n, baseline, cosine, accuracies, p."""
    base = m.get("baselines", {}).get("train_mean", {})
    row = [name, str(m.get("run", {}).get("model", "")), str(m.get("route")), str(m.get("n")),
           "train mean" if m.get("settings", {}).get("baseline_source", "train") == "train" else "split mean (optimistic)",
           f"{number(m['similarity']['cosine']['mean'])} ({number(base.get('similarity', {}).get('cosine', {}).get('mean'))})"]
    for b, k in acc_cols:
        e, be = m.get(b, {}).get(k), base.get(b, {}).get(k)
        row.append(f"{accuracy_with_ci(e)}; chance {percent(e['chance'])}; baseline {percent(be['value'] if be else None)}" if e else "n/a")
    p = m.get("baselines", {}).get("permutation_p")
    row.append("n/a" if p is None else f"{p:.3g}")
    return row


def _column_label(block: str, key: str) -> str:
    return retrieval_label(key) if block == "retrieval" else f"class {key.replace('top', 'top-')}"


def runs_section(runs: list[tuple[str, dict]], acc_cols: list[tuple[str, str]]) -> Section:
    """The side-by-side table of evaluation runs."""
    header = ["run", "model", "route", "n", "baseline", "cosine (baseline)", *[_column_label(b, k) for b, k in acc_cols], "perm. p"]
    sec = Section("Runs side by side")
    sec.p(
        "Accuracies: value [95% bootstrap CI]; chance and the run's baseline beside each. Cosine: mean own-target "
        "cosine, with the baseline in parentheses. Baseline: the run's train mean, or split mean when no train targets "
        "were given (see the baseline column). Runs on different routes are compared on the metrics both define; "
        "runs on different splits or caches are not comparable."
    )
    sec.table(header, [_run_row(name, m, acc_cols) for name, m in runs])
    return sec


def top1_figure(runs: list[tuple[str, dict]], acc_cols: list[tuple[str, str]]) -> Any:
    """Grouped bars of every run's top-1 accuracies with 95% CIs, each run's own chance dashed."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    top1 = [(b, k) for b, k in acc_cols if k.endswith("top1")]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(top1) * max(1, len(runs)) ** 0.5 + 2), 3.8))
    width = 0.8 / len(runs)
    x = np.arange(len(top1))
    for i, (name, m) in enumerate(runs):
        xs = x + (i - (len(runs) - 1) / 2) * width  # (n_metrics,) this run's bar centres
        vals = np.array([m.get(b, {}).get(k, {}).get("value", np.nan) for b, k in top1])  # (n_metrics,)
        ci = np.array([m.get(b, {}).get(k, {}).get("ci95", [np.nan, np.nan]) for b, k in top1]).T  # (2, n_metrics)
        ax.bar(xs, vals, width, yerr=[vals - ci[0], ci[1] - vals], capsize=2, label=f"{name} ({m.get('route')})")
        for xj, (b, k) in zip(xs, top1):  # each run's own chance (runs may differ in images or classes)
            if m.get(b, {}).get(k):
                ax.plot([xj - width / 2, xj + width / 2], [m[b][k]["chance"]] * 2, "k--", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels([retrieval_label(k) if b == "retrieval" else "class top-1" for b, k in top1], fontsize=8)
    ax.set_ylabel("accuracy (95% CI); dashed: chance")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def _figure_writer(fig: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import matplotlib.pyplot as plt

        fig.savefig(path, dpi=110)
        plt.close(fig)

    return write


def _csv_writer(cols: list[str], recs: list[dict[str, Any]]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import csv

        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(recs)

    return write


def evaluation_comparison_part(request: ComparisonRequest) -> ComparisonPart | None:
    """Evaluation runs side by side: the table, ``compare.png`` and ``compare.csv``; None without such runs."""
    from eegalign.generation.compare import is_generation_dir

    paths = [p for p in request.paths if not is_generation_dir(p)]
    if not paths:
        return None
    runs = [load_run_metrics(p) for p in paths]
    names = [n for n, _ in runs]
    if len(set(names)) != len(names):  # same directory names under different parents: use the paths
        runs = [(str(p), m) for p, (_, m) in zip(paths, runs)]
    cols, recs = comparison_rows(runs)
    acc_cols = [(b, k) for b, k in COMPARE_ACC if any(m.get(b, {}).get(k) for _, m in runs)]
    sec = runs_section(runs, acc_cols)
    sec.fig("compare.png", "Top-1 accuracies of every run with 95% CIs; dashed lines: chance.")
    fig = top1_figure(runs, acc_cols)
    files = [("compare.png", _figure_writer(fig)), ("compare.csv", _csv_writer(cols, recs))]
    return ComparisonPart([sec], {"evaluation_runs": recs}, files)


def _generation_part(request: ComparisonRequest) -> ComparisonPart | None:
    from eegalign.generation.compare_sections import generation_comparison_part

    return generation_comparison_part(request)


#: The parts of a comparison, in report order.
COMPARISON_PARTS: tuple[Callable[[ComparisonRequest], ComparisonPart | None], ...] = (
    evaluation_comparison_part, _generation_part,
)


def write_comparison(
    paths: list[str | Path], out: str | Path, overwrite: bool = False,
    routes: tuple[str, str] | None = None, grid_trials: int = 16,
) -> Path:
    """Put several runs side by side: ``compare.md``, ``compare.html``, ``compare.json`` (+ ``compare.csv`` and
    ``compare.png`` for evaluate runs, ``grids/routes_*.png`` for an image-route and a text-route generation run).

    Each path is an ``eegalign evaluate`` output (or its metrics.json) or an ``eegalign generate`` output;
    the kind is recognised from the directory. ``routes``: the (image route, text route) generation runs
    the five-column grid shows (default: the first of each).
    """
    from eegalign.io import atomic_dir, write_json

    request = ComparisonRequest(list(paths), Path(out), routes, grid_trials)
    parts = [part for make in COMPARISON_PARTS if (part := make(request)) is not None]
    summary: dict[str, Any] = {"version": 1, "evaluation_runs": [], "generation_runs": [], "paired": {}}
    sections: list[Section] = []
    for part in parts:
        sections += part.sections
        summary.update(part.summary)
    with atomic_dir(request.out, overwrite=overwrite, kind="comparison", command="eegalign compare") as tmp:
        for part in parts:
            for rel, write in part.files:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                write(tmp / rel)
        title = "eegalign: comparison of runs"
        sub = f"{len(paths)} runs: " + ", ".join(Path(p).name for p in paths)
        (tmp / "compare.md").write_text(render_markdown(title, sub, sections), encoding="utf-8")
        (tmp / "compare.html").write_text(render_html(title, sub, sections), encoding="utf-8")
        write_json(tmp / "compare.json", summary)
    return request.out
