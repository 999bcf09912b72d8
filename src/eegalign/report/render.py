"""Sections -> Markdown and HTML: one renderer per block kind, so both formats say the same thing."""

from __future__ import annotations

import html
import re
from typing import Any

from eegalign.report.document import Section

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.92em}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f6f8}tr:nth-child(even) td{background:#fafbfc}td:first-child{white-space:nowrap}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.88em;color:#555}
.sub{color:#666;font-size:.95em}code{background:#f4f4f4;padding:0 .2em}
pre{background:#f7f7f7;border:1px solid #eee;padding:.6em;font-size:.82em;overflow-x:auto}summary{cursor:pointer;color:#1f5fa8}
"""


# ----------------------------------------------------------------------------- Markdown


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return [*lines, ""]


def _markdown_figure(path: str, caption: str) -> list[str]:
    caption = caption.replace("*", "\\*")  # a "split mean*" mark would end the italics early
    return [f"![{caption}]({path})", "", f"*{caption}*", ""]


def _markdown_block(kind: str, value: Any) -> list[str]:
    if kind == "p":
        return [value, ""]
    if kind == "code":
        return ["```", value.rstrip("\n"), "```", ""]
    if kind == "table":
        return _markdown_table(*value)
    return _markdown_figure(*value)


def render_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole report as Markdown: title, subtitle, then each section's blocks in order."""
    lines = [f"# {title}", "", subtitle, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for kind, value in s.blocks:
            lines += _markdown_block(kind, value)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- HTML


def html_inline(text: str) -> str:
    """Escape ``text`` and render its ``**bold**`` and ```code``` marks."""
    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def _html_table(header: list[str], rows: list[list[str]]) -> list[str]:
    parts = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
    return [*parts, "</tbody></table>"]


def _html_block(kind: str, value: Any) -> list[str]:
    if kind == "p":
        return [f"<p>{html_inline(value)}</p>"]
    if kind == "code":
        return [f"<details><summary>show</summary><pre>{html.escape(value)}</pre></details>"]
    if kind == "table":
        return _html_table(*value)
    path, caption = value
    return [
        f"<figure><img src='{html.escape(path)}' alt='{html.escape(caption)}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    ]


def render_html(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole report as one self-contained HTML page (figures referenced by relative path)."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='sub'>{html_inline(subtitle)}</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        for kind, value in s.blocks:
            parts += _html_block(kind, value)
    parts.append("</body></html>")
    return "\n".join(parts)
