"""The audit as report sections: one for the evaluation report, a few more for audit.html.

:func:`evaluation_audit_section` is a section builder (see :mod:`eegalign.report.document`) listed in
:data:`eegalign.report.sections.EVALUATION_SECTIONS`: it adds the audit to ``eegalign evaluate``'s
report when the run was given ``--audit DIR``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eegalign.report.document import Section
from eegalign.report.format import percent
from eegalign.report.render import render_html, render_markdown

if TYPE_CHECKING:  # pragma: no cover
    from eegalign.report.document import ReportInputs

LI_2020 = ('Li et al. 2020, "The perils and pitfalls of block design for EEG classification experiments", IEEE TPAMI')
KILGALLEN_2024 = "Kilgallen et al. 2024 (exemplar leakage)"


def _probe_row(probe: dict[str, Any]) -> list[str]:
    """One table row: probe, accuracy [CI], chance, majority, p, Holm p, reliable?, n."""
    if probe.get("value") is None:
        return [probe["name"], "not run", "", "", "", "", "", probe.get("skipped") or ""]
    lo, hi = probe["ci95"]
    return [
        probe["name"],
        f"{percent(probe['value'])} [{percent(lo)}, {percent(hi)}]",
        percent(probe["chance"]),
        percent(probe["majority_baseline"]),
        f"{probe['p']:.3g}",
        f"{probe['p_holm']:.3g}" if probe.get("in_decision", True) else "(descriptive)",
        ("yes" if probe["reliable"] else "no") if probe.get("in_decision", True) else "",
        f"{probe['n_train']} / {probe['n_test']}",
    ]


def _hygiene_lines(hygiene: dict[str, Any]) -> list[str]:
    """Plain-language lines about shared images and temporal interleaving."""
    lines = []
    for pair in hygiene["shared_images"]:
        lines.append(
            f"{pair['pair']}: {pair['images']} image(s) on both sides; {pair['trials_in_second']} trials of the second "
            f"split ({percent(pair['fraction_of_second'])}) show an image also in the first."
        )
    inter = hygiene.get("interleaving")
    if inter is None:
        lines.append(f"Temporal interleaving: not measured -- {hygiene['order_note']}.")
    else:
        blocks = (
            f"; {inter['blocks_with_train_and_test']} of {inter['blocks']} blocks hold both train and test trials"
            if inter.get("blocks") is not None else ""
        )
        gap = inter["median_gap_to_train"]
        lines.append(
            f"Temporal interleaving ({inter['sessions']} sessions): {percent(inter['test_next_to_train'])} of "
            f"{inter['test_trials']} test trials sit right next to a train trial; median distance to the nearest "
            f"train trial {'n/a' if gap is None else f'{gap:g}'} trial(s){blocks}."
        )
    return lines


def audit_section(audit: dict[str, Any]) -> Section:
    """The audit's verdict, probe table and split hygiene as one report section."""
    sec = Section("Leakage audit")
    verdict = (
        "**Leakage detected**: at least one confound probe decodes the class reliably, so the data or split carry "
        "class information that is not visual; decoding numbers on this split are not evidence of visual decoding."
        if audit["leakage_detected"]
        else "**No leakage detected** by the probes (this bounds, but does not prove the absence of, confounds)."
    )
    sec.p(verdict)
    sec.p(f"Criterion: {audit['criterion']}")
    sec.table(
        ["probe", "accuracy [95% CI]", "chance", "majority class", "p", "Holm p", "reliable", "train / test trials"],
        [_probe_row(p) for p in audit["probes"].values()],
    )
    for p in audit["probes"].values():
        sec.p(f"`{p['name']}`: {p['question']} Features: {p['features']}.")
    hygiene = audit["split_hygiene"]
    sec.p("**Split hygiene.** " + " ".join(_hygiene_lines(hygiene)))
    if hygiene["exemplar_leakage"]:
        sec.p(f"Test images also appear in train ({KILGALLEN_2024}): use `eegalign data prepare --split-by image`.")
    sec.p(f"Background: {LI_2020}; the split protocols that remove the confound are in docs/evaluation.md.")
    return sec


def evaluation_audit_section(inputs: "ReportInputs") -> Section | None:
    """The audit section of an evaluation report: the audit named by ``context["audit"]``, if any."""
    if not inputs.context.get("audit"):
        return None
    from eegalign.audit.run import load_audit

    return audit_section(load_audit(inputs.context["audit"]))


def _settings_section(audit: dict[str, Any]) -> Section:
    sec = Section("Settings")
    timing, st, cache = audit["timing"], audit["settings"], audit["cache"]
    sec.table(
        ["setting", "value"],
        [
            ["cache", f"{cache.get('path')} (fingerprint {cache.get('fingerprint')}, split protocol {cache.get('split_by')})"],
            ["epoch start", f"{timing['start_ms']:g} ms after onset at {timing['sfreq']:g} Hz ({timing['source']})"],
            ["permutations / bootstrap", f"{st['n_permutations']} / {st['n_bootstrap']} (seed {st['seed']})"],
            ["alpha (Holm-Bonferroni)", f"{st['alpha']:g}"],
        ],
    )
    return sec


def audit_page(audit: dict[str, Any]) -> tuple[str, str]:
    """(markdown, html) of the stand-alone audit report."""
    title = "eegalign leakage audit"
    verdict = "leakage detected" if audit["leakage_detected"] else "no leakage detected"
    subtitle = f"{audit['cache'].get('n_trials')} trials of {audit['cache'].get('source')}: {verdict}."
    sections = [audit_section(audit), _settings_section(audit)]
    return render_markdown(title, subtitle, sections), render_html(title, subtitle, sections)
