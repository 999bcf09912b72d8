"""The report's section mechanism: ordered builders make the sections; the audit plugs in as one of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eegalign.metrics import compute_metrics
from eegalign.report import EVALUATION_SECTIONS, ReportInputs, Section, build_sections, write_report


def _metrics() -> tuple[dict, dict]:
    rng = np.random.default_rng(3)
    true = np.repeat(rng.normal(size=(8, 12)).astype(np.float32), 2, axis=0)
    pred = (true + rng.normal(size=true.shape)).astype(np.float32)
    ids = [f"i{i}" for i in range(8) for _ in range(2)]
    return compute_metrics(pred, true, ids, np.repeat(np.arange(8) % 2, 2), np.tile([1, 2], 8), n_boot=20, n_perm=19)


def test_builders_run_in_order_and_none_adds_nothing(tmp_path: Path) -> None:
    def first(inputs: ReportInputs) -> Section:
        s = Section("First")
        s.p(f"{inputs.metrics['n']} trials, figures: {', '.join(sorted(inputs.figures))}")
        return s

    def nothing(inputs: ReportInputs) -> None:
        return None

    def two(inputs: ReportInputs) -> list[Section]:
        return [Section("Second"), Section("Third")]

    metrics, arrays = _metrics()
    write_report(tmp_path, metrics, arrays, None, {"model": "x", "split": "test"}, builders=(first, nothing, two))
    md = (tmp_path / "report.md").read_text()
    assert [line for line in md.splitlines() if line.startswith("## ")] == ["## First", "## Second", "## Third"]
    assert "16 trials, figures: cosine_hist, per_subject, retrieval_vs_k, similarity_matrix" in md


def test_default_report_lists_every_applicable_section_and_no_audit_without_one() -> None:
    metrics, _ = _metrics()
    titles = [s.title for s in build_sections(EVALUATION_SECTIONS, ReportInputs(metrics, {"split": "test"}, {}))]
    # image route, split-mean baseline with the split's own classes: no text section, no THINGS table, no audit
    assert titles == ["Provenance", "Summary", "Retrieval", "Classification via class prototypes", "Similarity",
                      "Per subject", "Settings"]
