"""Comparison grids (rows = trials; columns = original | from true embedding | from EEG) and the HTML report."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

COLUMNS = (("original", "original stimulus"), ("true", "from true embedding"), ("eeg", "from EEG prediction"))


def make_grid(
    rows: Sequence[dict[str, Any]], root: str | os.PathLike, cell: int = 192, label_h: int = 16,
    columns: Sequence[tuple[str, str]] = COLUMNS,
) -> "Image.Image":
    """One grid image. ``rows``: dicts with ``caption`` and paths (relative to ``root``, or absolute) under
    the keys of ``columns`` (``(key, title)`` pairs; ``None`` draws an empty, labelled cell)."""
    from PIL import Image, ImageDraw, ImageFont, ImageOps

    font = ImageFont.load_default()
    width = cell * len(columns)
    height = label_h + len(rows) * (cell + label_h)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    for j, (_, title) in enumerate(columns):
        draw.text((j * cell + 4, 2), title, fill="black", font=font)
    root = Path(root)
    for i, row in enumerate(rows):
        y = label_h + i * (cell + label_h)
        draw.text((4, y + 2), str(row.get("caption", "")), fill="black", font=font)
        for j, (key, _) in enumerate(columns):
            rel = row.get(key)
            box = (j * cell, y + label_h)
            if rel:
                with Image.open(root / rel) as im:
                    grid.paste(ImageOps.fit(im.convert("RGB"), (cell, cell)), box)  # centre crop, no distortion
            else:
                draw.rectangle([box, (box[0] + cell - 1, box[1] + cell - 1)], outline="gray")
                draw.text((box[0] + 4, box[1] + cell // 2), "n/a", fill="gray", font=font)
    return grid


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
.note{color:#555;font-size:0.9em}code{background:#f6f6f6;padding:0 3px}
"""


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else html.escape(str(x))


def _recon_cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "<td>—</td>"
    ci = entry.get("ci95")
    ci_text = f"<br><span class='note'>[{_fmt(ci[0])}, {_fmt(ci[1])}]</span>" if ci else ""
    return f"<td>{_fmt(entry['value'])}{ci_text}</td>"


def reconstruction_section(index: dict[str, Any]) -> list[str]:
    """The familiar reconstruction table (MindEye, ATM, NICE, GWIT): rows = image sets and the chance level,
    columns = metrics grouped as low level / high level (2-way) / distances / set level, value with 95% CI."""
    from eegalign.generation.recon import LOWER_IS_BETTER, METRICS

    e = html.escape
    summary = index.get("reconstruction") or {}
    parts = ["<h2>Reconstruction metrics</h2>"]
    if not summary:
        parts.append("<p>Not computed.</p>")
    else:
        metrics = [m for m in METRICS if any(m in summary[s] for s in summary)]
        groups = {"pixcorr": "low level", "ssim": "low level", "alexnet2": "2-way (chance 0.5)",
                  "alexnet5": "2-way (chance 0.5)", "inception": "2-way (chance 0.5)", "clip": "2-way (chance 0.5)",
                  "effnet": "distance", "swav": "distance", "fid": "set", "clip_score": "cosine"}
        parts.append(
            f"<p class='note'>{index.get('reconstruction_trials', '?')} trials with an original stimulus; value and "
            "bootstrap 95% CI over trials. <b>shuffled</b> (baseline): the EEG images scored against other trials' "
            "originals; it is the chance level where none is analytic. ↑ higher is better, ↓ lower is better.</p>")
        parts.append("<table><tr><th class='l'></th>" + "".join(f"<th>{e(groups[m])}</th>" for m in metrics) + "</tr>")
        parts.append("<tr><th class='l'>set</th>" + "".join(
            f"<th>{e(m)} {'↓' if m in LOWER_IS_BETTER else '↑'}</th>" for m in metrics) + "</tr>")
        for image_set, row in summary.items():
            parts.append(f"<tr><td class='l'>{e(image_set)}</td>" + "".join(_recon_cell(row.get(m)) for m in metrics) + "</tr>")
        chance = [next((summary[s][m].get("chance") for s in summary if m in summary[s]), None) for m in metrics]
        parts.append("<tr><td class='l'>chance</td>" + "".join(f"<td>{_fmt(c)}</td>" for c in chance) + "</tr></table>")
    for note in index.get("reconstruction_notes", []):
        parts.append(f"<p class='note'>{e(note)}</p>")
    return parts


def render_html(index: dict[str, Any]) -> str:
    """The generation report: settings, the N-way accuracy and reconstruction tables (with chance and CIs), the grids."""
    e = html.escape
    s = index.get("settings", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>eegalign generation</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Images generated from EEG predictions</h1>",
        f"<p>predictions <code>{e(str(index.get('predictions')))}</code> (model <code>{e(str(index.get('model')))}</code>, "
        f"route <b>{e(str(index.get('route')))}</b>, split {e(str(index.get('split')))}); "
        f"{len(index.get('trials', []))} of {index.get('n_trials_total')} trials "
        f"({e(str(index.get('selection', {}).get('description', '')))}).</p>",
        "<p class='note'>" + ", ".join(f"{e(str(k))}={e(str(v))}" for k, v in s.items()) + "</p>",
    ]
    nway = index.get("nway")
    parts.append("<h2>N-way top-k accuracy</h2>")
    if not nway:
        parts.append("<p>Not computed (no <code>--classifier</code> given).</p>")
    else:
        parts.append(
            f"<p class='note'>Classifier <code>{e(str(nway.get('classifier')))}</code>. Candidates: the true class plus "
            f"N-1 random other ImageNet-1k classes, {nway.get('draws')} seeded draws per image; 95% bootstrap CI over "
            "images. <b>wnid</b>: the true class is the data set's class; <b>gwit</b>: the classifier's own top-1 on the "
            "original stimulus (so the original set scores 1 by construction). <b>eeg_shuffled</b> (baseline): the EEG "
            "images scored against the true classes of randomly permuted trials -- what a decoder that ignores the trial "
            "gets with this classifier and class mix; the <b>eeg</b> row means something only above it.</p>"
        )
        parts.append(
            "<table><tr><th class='l'>true class</th><th>N</th><th>k</th><th class='l'>images</th><th>n</th>"
            "<th>accuracy</th><th>95% CI</th><th>chance</th></tr>"
        )
        for r in nway.get("results", []):
            lo, hi = r["ci95"]
            parts.append(
                f"<tr><td class='l'>{e(r['convention'])}</td><td>{r['n']}</td><td>{r['k']}</td>"
                f"<td class='l'>{e(r['set'])}</td><td>{r['n_images']}</td><td>{_fmt(r['value'])}</td>"
                f"<td>[{_fmt(lo)}, {_fmt(hi)}]</td><td>{_fmt(r['chance'])}</td></tr>"
            )
        parts.append("</table>")
        for note in nway.get("notes", []):
            parts.append(f"<p class='note'>{e(note)}</p>")
    parts.extend(reconstruction_section(index))
    parts.append("<h2>Grids</h2><p class='note'>Rows: trials (class, subject). Columns: original | from true "
                 "embedding | from EEG prediction.</p>")
    for g in index.get("grids", []):
        parts.append(f"<img src='{e(g)}' alt='{e(g)}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
