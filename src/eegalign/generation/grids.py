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


def render_html(index: dict[str, Any]) -> str:
    """The generation report: settings, the N-way accuracy table (with chance and CI) and the grids."""
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
    parts.append("<h2>Grids</h2><p class='note'>Rows: trials (class, subject). Columns: original | from true "
                 "embedding | from EEG prediction.</p>")
    for g in index.get("grids", []):
        parts.append(f"<img src='{e(g)}' alt='{e(g)}'>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
