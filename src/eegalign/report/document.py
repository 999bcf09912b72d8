"""The report's document model: a :class:`Section` is a title and an ordered list of blocks.

Every report of eegalign (evaluation, run comparison, leakage audit) is a list of sections made
by *section builders*: small functions that read one :class:`ReportInputs` and return a section,
several sections, or ``None`` (nothing to say for this run). :func:`build_sections` runs an
ordered tuple of builders; :mod:`eegalign.report.render` turns the result into Markdown and HTML,
so both always say the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Section:
    """One report section.

    Args:
        title: the heading.
        blocks: ordered ``(kind, value)`` pairs: ``("p", text)``, ``("code", text)``,
            ``("table", (header, rows))``, ``("fig", (relative path, caption))``.
    """

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def p(self, text: str) -> None:
        """A paragraph (``**bold**`` and ```code``` marks are rendered)."""
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        """A table of strings: one header row, then ``rows``."""
        self.blocks.append(("table", (header, rows)))

    def fig(self, path: str, caption: str) -> None:
        """A figure by its path relative to the report, with a caption."""
        self.blocks.append(("fig", (path, caption)))

    def code(self, text: str) -> None:
        """A collapsed block of verbatim text (HTML) or a fenced block (Markdown)."""
        self.blocks.append(("code", text))


@dataclass
class ReportInputs:
    """What an evaluation-report section builder may read.

    Args:
        metrics: the metrics.json dict of :func:`eegalign.metrics.compute_metrics`.
        context: provenance (model, split, cache, checkpoint, config, audit directory, ...).
        figures: ``{figure name: path relative to the report}`` of the figures drawn.
    """

    metrics: dict[str, Any]
    context: dict[str, Any]
    figures: dict[str, str]


#: A section builder: inputs -> one section, several, or None when it has nothing to report.
SectionBuilder = Callable[[ReportInputs], "Section | list[Section] | None"]


def build_sections(builders: Iterable[SectionBuilder], inputs: ReportInputs) -> list[Section]:
    """Run ``builders`` in order and collect their sections (``None`` adds nothing)."""
    out: list[Section] = []
    for builder in builders:
        made = builder(inputs)
        if made is None:
            continue
        out += made if isinstance(made, list) else [made]
    return out
