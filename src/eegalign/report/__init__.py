"""Reports a researcher can check: ``eegalign evaluate``'s report, ``eegalign compare``, the audit page.

* :mod:`eegalign.report.document` -- :class:`Section` (title + ordered blocks), section builders;
* :mod:`eegalign.report.format` -- how numbers read (percentages with CIs, p-values, metric labels);
* :mod:`eegalign.report.render` -- sections -> Markdown and HTML (one list, so both say the same);
* :mod:`eegalign.report.figures` -- the evaluation report's matplotlib figures;
* :mod:`eegalign.report.sections` -- the evaluation report's sections, in :data:`EVALUATION_SECTIONS`
  (the leakage audit's section, :func:`eegalign.audit.report.evaluation_audit_section`, is one of them);
* :mod:`eegalign.report.evaluation` -- :func:`write_report`: figures, ``report.md``, ``report.html``;
* :mod:`eegalign.report.compare` -- :func:`write_comparison`, made of comparison parts (evaluation runs
  here; generation runs in :func:`eegalign.generation.compare_sections.generation_comparison_part`).

Every accuracy is shown with its chance level and 95% CI, every similarity beside the train-mean
baseline; figures are written to ``figures/*.png`` and referenced relatively.
"""

from eegalign.report.document import ReportInputs, Section, SectionBuilder, build_sections
from eegalign.report.render import CSS, render_html, render_markdown
from eegalign.report.sections import BLOCK_DESIGN_CAVEAT, EVALUATION_SECTIONS, SIM_NAMES, THINGS_PUBLISHED
from eegalign.report.evaluation import write_report
from eegalign.report.compare import (
    COMPARE_ACC, ComparisonPart, ComparisonRequest, comparison_rows, load_run_metrics, write_comparison,
)

__all__ = [
    "BLOCK_DESIGN_CAVEAT", "COMPARE_ACC", "CSS", "EVALUATION_SECTIONS", "SIM_NAMES", "THINGS_PUBLISHED",
    "ComparisonPart", "ComparisonRequest", "ReportInputs", "Section", "SectionBuilder", "build_sections",
    "comparison_rows", "load_run_metrics", "render_html", "render_markdown", "write_comparison", "write_report",
]
