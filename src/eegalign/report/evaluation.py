"""``eegalign evaluate``'s report: figures plus ``report.md`` and ``report.html`` in one directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegalign.report.document import ReportInputs, SectionBuilder, build_sections
from eegalign.report.figures import draw_figures
from eegalign.report.render import render_html, render_markdown
from eegalign.report.sections import EVALUATION_SECTIONS


def report_title(metrics: dict, context: dict) -> tuple[str, str]:
    """``(title, subtitle)`` of an evaluation report."""
    title = f"eegalign evaluation: {context.get('model')} ({metrics['route']} route, {context.get('split')} split)"
    subtitle = (
        f"{metrics['n']} trials, {metrics['n_images']} distinct images, {metrics['n_subjects']} subjects. "
        f"Every accuracy is shown with its chance level and 95% CI, every similarity beside the {metrics['settings']['baseline_label']}."
    )
    return title, subtitle


def write_report(
    out_dir: str | Path,
    metrics: dict,
    arrays: dict[str, np.ndarray],
    preds: Any,
    context: dict,
    builders: tuple[SectionBuilder, ...] = EVALUATION_SECTIONS,
) -> None:
    """Write ``figures/*.png``, ``report.md`` and ``report.html`` into ``out_dir``.

    ``metrics``/``arrays``: the output of :func:`eegalign.metrics.compute_metrics`; ``preds`` is
    unused (kept for callers); ``context``: provenance (``model``, ``split``, ``cache``, ``audit``, ...);
    ``builders``: the sections, in order (default :data:`eegalign.report.sections.EVALUATION_SECTIONS`).
    """
    from eegalign.io import atomic_file

    out_dir = Path(out_dir)
    figures = draw_figures(out_dir / "figures", metrics, arrays)
    sections = build_sections(builders, ReportInputs(metrics, context, figures))
    title, subtitle = report_title(metrics, context)
    for name, text in (("report.md", render_markdown(title, subtitle, sections)), ("report.html", render_html(title, subtitle, sections))):
        with atomic_file(out_dir / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
