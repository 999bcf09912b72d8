"""The evaluation report's sections, one builder per section (see :mod:`eegalign.report.document`).

:data:`EVALUATION_SECTIONS` is the ordered tuple of builders :func:`eegalign.report.write_report`
runs; a builder returns ``None`` when its section does not apply (no classification, not the text
route, not a THINGS-EEG2 cache, no ``--audit``). The leakage audit contributes its section through
the same tuple (:func:`audit_section` calls :func:`eegalign.audit.report.evaluation_audit_section`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eegalign.report.document import ReportInputs, Section
from eegalign.report.format import (
    accuracy_with_ci, baseline_short_name, centre_name, mean_and_std, number, percent, permutation_p,
    retrieval_label, retrieval_sort_key, subject_chance,
)

BLOCK_DESIGN_CAVEAT = (
    "The CVPR40 recordings use a block design and the hub data set splits trials by image inside the "
    "same sessions, so neighbouring train and test trials share slow drifts; decoding accuracy on such "
    "splits can be inflated (Li et al. 2020, \"The perils and pitfalls of block design for EEG "
    "classification experiments\", IEEE TPAMI). Treat these numbers as an upper bound; a "
    "leave-one-subject-out or session-held-out evaluation is the stricter test."
)

THINGS_CAVEAT = (
    "THINGS-EEG2 presents images in rapid serial visual presentation in random order, so the block-design "
    "inflation of CVPR40 does not apply; train and test trials of one subject still come from the same "
    "sessions, and a leave-one-subject-out run is the stricter test of generalisation."
)

SIM_NAMES = {"cosine": "cosine", "mse": "MSE", "l2": "L2 distance", "l1": "L1 distance", "abs_diff": "mean |diff|"}

#: Published THINGS-EEG2 figures (intra-subject, 200-way zero-shot, test repetitions averaged,
#: mean over the 10 subjects): (method, reference, top-1 %, top-5 %). Measured elsewhere.
THINGS_PUBLISHED = (
    ("NICE", "Song et al. 2024, ICLR", 15.6, 42.8),
    ("ATM", "Li et al. 2024, NeurIPS (about)", 28.0, 60.0),
    ("UBP", "Wu et al. 2025, CVPR", 50.9, 79.7),
)


# ----------------------------------------------------------------------------- provenance


def _read_manifest(cache: str | None) -> dict[str, Any]:
    """The cache's manifest.json, or {} when there is none or it is unreadable."""
    if not cache or not (Path(cache) / "manifest.json").is_file():
        return {}
    try:
        return json.loads((Path(cache) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def _provenance_rows(metrics: dict, ctx: dict, manifest: dict) -> list[list[str]]:
    fmt = manifest.get("format")
    source = manifest.get("source", "unknown (not recorded in the predictions file)")
    route = metrics["route"]
    rows = [
        ["model", str(ctx.get("model"))],
        ["route", f"{route} ({'1024-d CLIP image embedding' if route == 'image' else '77 x 768 CLIP text hidden states'})"],
        ["evaluated split", f"{ctx.get('split')} ({metrics['n']} trials, {metrics['n_images']} images, {metrics['n_subjects']} subjects)"],
        ["data source", f"{source}" + (f" (format {fmt})" if fmt else "")],
        ["cache", str(ctx.get("cache") or "not recorded")],
        ["checkpoint", str(ctx.get("checkpoint") or "n/a (predictions file)")],
    ]
    if ctx.get("predictions"):
        rows.append(["predictions file", str(ctx["predictions"])])
    for key in ("epoch", "loss", "encoder"):
        if ctx.get(key) is not None:
            v = ctx[key]
            rows.append([key, json.dumps(v) if isinstance(v, (dict, list)) else str(v)])
    if ctx.get("config"):
        rows.append(["training config", str(ctx["config"])])
    rows.append(["train targets", str(ctx.get("train_targets") or "none given")])
    if ctx.get("subjects"):
        rows.append(["evaluated subjects", f"{ctx['subjects']['subjects']} (chosen by the {ctx['subjects']['source']})"])
    return rows


def _split_protocol(ctx: dict, manifest: dict) -> str:
    """What the evaluated split is: synthetic, or the source's own split (and which fold)."""
    # the source as resolved when the cache was prepared (the recorded one may be relative to another directory)
    source_dir = manifest.get("source_identity", {}).get("path") or manifest.get("source")
    if source_dir and (Path(source_dir) / "synthetic.json").is_file():
        if manifest.get("format") == "things-eeg2":
            return (
                "Synthetic data in the THINGS-EEG2 layout (`eegalign data synth --layout things-eeg2`), with its "
                "zero-shot split (test concepts never occur in training): these numbers test the pipeline, not a brain."
            )
        return (
            "Synthetic data (`eegalign data synth`), split by image like the hub data set: "
            "these numbers test the pipeline, not a brain."
        )
    if manifest.get("format") == "things-eeg2":
        return (
            f"THINGS-EEG2's own `{ctx.get('split')}` split: the test images show concepts that never occur in "
            "training (zero-shot), and validation holds out a fraction "
            f"({manifest.get('params', {}).get('val_fraction', 'not recorded')}) of the training concepts. Subjects in the cache: "
            f"{manifest.get('subjects', 'not recorded')}; see `evaluated subjects` above for the protocol."
        )
    fold = f", fold {manifest.get('params', {}).get('fold')}" if manifest.get("format") == "release" else ""
    return f"The cache's own `{ctx.get('split')}` split (by image, as provided by the source{fold})."


def provenance_section(inputs: ReportInputs) -> Section:
    """Data source, model, checkpoint, config, split protocol with the block-design caveat."""
    metrics, ctx = inputs.metrics, inputs.context
    manifest = _read_manifest(ctx.get("cache"))
    s = Section("Provenance")
    s.table(["item", "value"], _provenance_rows(metrics, ctx, manifest))
    if ctx.get("config") and Path(ctx["config"]).is_file():
        text = Path(ctx["config"]).read_text(encoding="utf-8", errors="replace")
        s.p(f"Resolved training configuration (`{ctx['config']}`, {len(text.splitlines())} lines):")
        s.code(text if len(text) < 20_000 else text[:20_000] + "\n... (truncated)")
    caveat = THINGS_CAVEAT if manifest.get("format") == "things-eeg2" else BLOCK_DESIGN_CAVEAT
    s.p(f"**Split protocol.** {_split_protocol(ctx, manifest)} {caveat}")
    st = metrics["settings"]
    if st["baseline_source"] != "train":
        s.p(
            "**Warning.** No train targets were given: the baseline is the "
            f"{st['baseline_label']}, and class prototypes come from the {st['prototype_source']}. "
            "Pass `--train-targets` (a cache directory or a safetensors file) for the honest train-split baseline."
        )
    return s


# ----------------------------------------------------------------------------- summary


def verdict(metrics: dict, baseline_name: str, alpha: float = 0.05) -> str:
    """One plain sentence: is all-way top-1 above chance and above the baseline?"""
    r = metrics["retrieval"]["all_top1"]
    b = metrics["baselines"]["train_mean"]["retrieval"]["all_top1"]
    p = metrics["baselines"]["permutation_p"]
    if p >= alpha:
        return (
            f"all-way top-1 is not distinguishable from chance (permutation p = {p:.3g} >= {alpha}): "
            "this model does not identify the seen images."
        )
    if r["ci95"][0] <= b["value"]:
        return (
            f"all-way top-1 is above chance (p = {p:.3g}) but its 95% CI reaches the {baseline_name} baseline's "
            f"{percent(b['value'])}: not clearly better than predicting the mean."
        )
    return f"all-way top-1 is above chance (p = {p:.3g}) and its 95% CI lies above the {baseline_name} baseline."


def summary_section(inputs: ReportInputs) -> Section:
    """The headline numbers, the verdict and what the baseline and brackets mean."""
    metrics = inputs.metrics
    st, perm, r = metrics["settings"], metrics["baselines"], metrics["retrieval"]
    base, bname, n_perm = perm["train_mean"], baseline_short_name(metrics), perm["permutation_n"]
    cls = metrics.get("classification", {})
    head = Section("Summary")
    head.p(
        f"All-way top-1 retrieval **{accuracy_with_ci(r['all_top1'])}** (chance {percent(r['all_top1']['chance'])}, "
        f"{bname} baseline {percent(base['retrieval']['all_top1']['value'])}); "
        f"permutation p = {permutation_p(perm['permutation_p'], n_perm)}. "
        + (f"Class-prototype top-1 **{accuracy_with_ci(cls['top1'])}** (chance {percent(cls['top1']['chance'])}). " if cls else "")
        + f"Mean cosine **{number(metrics['similarity']['cosine']['mean'])}** vs {bname} baseline "
        f"{number(base['similarity']['cosine']['mean'])} (permutation p = {permutation_p(perm['permutation_p_cosine'], n_perm)})."
    )
    head.p(f"**Verdict.** {verdict(metrics, bname)}")
    head.p(
        f"Baseline: the {st['baseline_label']} target predicted for every trial, scored with every metric below. "
        "Brackets: 95% bootstrap confidence interval over trials "
        f"({st['bootstrap_resamples']} seeded resamples)."
    )
    return head


# ----------------------------------------------------------------------------- retrieval


def _accuracy_header(metrics: dict) -> list[str]:
    bname = baseline_short_name(metrics)
    return ["metric", "model [95% CI]", f"{bname} [95% CI]", "chance"]


def _retrieval_rows(block: dict, baseline_block: dict | None) -> list[list[str]]:
    """One row per retrieval key of ``block``: label, model [CI], baseline [CI], chance."""
    keys = sorted((k for k in block if isinstance(block[k], dict) and "value" in block[k]), key=retrieval_sort_key)
    return [
        [retrieval_label(k), accuracy_with_ci(block[k]), accuracy_with_ci(baseline_block.get(k)) if baseline_block else "",
         percent(block[k]["chance"])]
        for k in keys
    ]


def _retrieval_notes(sec: Section, metrics: dict) -> None:
    """How candidates and k-way draws work; warnings about few images and text-route centring."""
    st = metrics["settings"]
    sec.p(
        "Candidates are the distinct images of the evaluated split with their true targets; each trial's prediction "
        "ranks them by cosine. k-way: the true image plus k-1 distractors drawn without replacement "
        f"({st['kway_draws']} seeded draws per trial, averaged); only the k that fit the number of images are shown. "
        f"Ties: {st['tie_rule']}."
    )
    if metrics["n_images"] < 10:
        sec.p(
            f"**Note.** The evaluated split holds only {metrics['n_images']} distinct image(s): retrieval is "
            "nearly trivial (chance is high) and says little about the decoder."
        )
    if metrics["route"] == "text":
        sec.p(
            f"Text route: predictions and candidates are centred on the {st['retrieval_center']} before flattening "
            "(start and padding tokens would otherwise dominate). The centred baseline is the zero vector, which "
            "ties with every candidate and so scores 0 by the tie rule."
        )


def _retrieval_variants(sec: Section, metrics: dict) -> None:
    """The raw (uncentred) text-route table and the trial-averaged table, when computed."""
    base, header = metrics["baselines"]["train_mean"], _accuracy_header(metrics)
    if "retrieval_raw" in metrics:
        sec.p("**Uncentred (raw) text-route retrieval**, for comparison with papers that report it:")
        sec.table(header, _retrieval_rows(metrics["retrieval_raw"], base.get("retrieval_raw")))
    if "retrieval_averaged" in metrics:
        averaged = metrics["retrieval_averaged"]
        sec.p(
            f"**Trial-averaged retrieval** ({averaged['note']}; {averaged['n']} averaged queries). "
            "Not comparable with the single-trial numbers above."
        )
        sec.table(header, _retrieval_rows(averaged, base.get("retrieval_averaged")))


def retrieval_section(inputs: ReportInputs) -> Section:
    """All-way and k-way retrieval with baseline and chance, the permutation test and the two figures."""
    metrics, figs = inputs.metrics, inputs.figures
    perm, n_perm = metrics["baselines"], metrics["baselines"]["permutation_n"]
    sec = Section("Retrieval")
    _retrieval_notes(sec, metrics)
    sec.table(_accuracy_header(metrics), _retrieval_rows(metrics["retrieval"], perm["train_mean"]["retrieval"]))
    sec.p(
        f"Permutation test ({n_perm} seeded shuffles of the pairing between predictions and trials): "
        f"p = {permutation_p(perm['permutation_p'], n_perm)} for all-way top-1, "
        f"p = {permutation_p(perm['permutation_p_cosine'], n_perm)} for the mean own-image cosine."
    )
    if "retrieval_vs_k" in figs:
        sec.fig(figs["retrieval_vs_k"], "Top-1 retrieval accuracy vs number of candidates, with 95% CIs and chance.")
    _retrieval_variants(sec, metrics)
    if "similarity_matrix" in figs:
        sec.fig(
            figs["similarity_matrix"],
            f"Centred cosine of every trial's prediction with every candidate image: the {centre_name(metrics)} "
            "target (the baseline's prediction) is subtracted from both, so 0 means no closer than the baseline "
            "(raw cosine of CLIP embeddings is dominated by their shared mean direction and looks uniform). "
            "Both sorted by class: a class-level decoder shows blocks on the diagonal, an image-level one a sharp diagonal.",
        )
    return sec


def published_section(inputs: ReportInputs) -> Section | None:
    """The published THINGS-EEG2 figures beside ours (THINGS-EEG2 caches only), clearly labelled."""
    metrics, ctx = inputs.metrics, inputs.context
    if ctx.get("dataset") != "things-eeg2":
        return None
    sec = Section("Published THINGS-EEG2 figures (measured elsewhere)")
    sec.p(
        "Numbers **published by other groups, measured elsewhere** (their code, preprocessing, image encoders and "
        "training budgets), intra-subject, 200-way zero-shot retrieval among the 200 test images with the 80 test "
        "repetitions averaged, mean over 10 subjects. They are shown for orientation, not as a like-for-like "
        "comparison; chance is 0.5% (top-1) and 2.5% (top-5)."
    )
    averaged = metrics.get("retrieval_averaged", {})
    n = round(1 / averaged["all_top1"]["chance"]) if "all_top1" in averaged else metrics["n_images"]
    rows = [[m, ref, f"{t1:.1f}%", f"{t5:.1f}%"] for m, ref, t1, t5 in THINGS_PUBLISHED]
    if averaged:
        rows.append([f"this run ({ctx.get('model')})", f"{n}-way, {averaged['n']} averaged queries",
                     accuracy_with_ci(averaged["all_top1"]), accuracy_with_ci(averaged["all_top5"])])
    sec.table(["method", "source", "top-1", "top-5"], rows)
    if n != 200:
        sec.p(f"**Note.** This evaluation is {n}-way, not 200-way (chance {percent(1 / n)}): not comparable with the published rows.")
    return sec


# ----------------------------------------------------------------------------- classification, similarity, text


def classification_section(inputs: ReportInputs) -> Section | None:
    """Class-prototype classification, when the run has classes with prototypes."""
    metrics = inputs.metrics
    cls = metrics.get("classification", {})
    if not cls:
        return None
    st = metrics["settings"]
    sec = Section("Classification via class prototypes")
    sec.p(
        f"Prototype of a class = mean target of the {st['prototype_source']} of that class ({st['n_classes']} classes); "
        "each prediction is assigned to the most cosine-similar prototype"
        + (" (text route: centred like retrieval)." if metrics["route"] == "text" else ".")
    )
    bcls = metrics["baselines"]["train_mean"].get("classification", {})
    rows = [[k.replace("top", "top-"), accuracy_with_ci(cls[k]), accuracy_with_ci(bcls.get(k)), percent(cls[k]["chance"])]
            for k in ("top1", "top5")]
    sec.table(_accuracy_header(metrics), rows)
    return sec


def similarity_section(inputs: ReportInputs) -> Section:
    """Mean ± std of each similarity and distance, model beside baseline, and the cosine histogram."""
    metrics, bname = inputs.metrics, baseline_short_name(inputs.metrics)
    base = metrics["baselines"]["train_mean"]
    sec = Section("Similarity")
    sec.p("Mean ± std over trials of each prediction against its own target (flattened).")
    rows = [[SIM_NAMES[k], mean_and_std(metrics["similarity"][k]), mean_and_std(base["similarity"][k])] for k in SIM_NAMES]
    sec.table(["metric", "model", bname], rows)
    if "cosine_hist" in inputs.figures:
        sec.fig(inputs.figures["cosine_hist"], f"Per-trial cosine of the model and of the {bname} baseline.")
    return sec


def text_section(inputs: ReportInputs) -> Section | None:
    """Text route only: token-level cosines and distances, and the per-token cosine curve."""
    metrics, bname = inputs.metrics, baseline_short_name(inputs.metrics)
    if "text" not in metrics:
        return None
    t, bt = metrics["text"], metrics["baselines"]["train_mean"]["text"]
    sec = Section("Text route: token metrics")
    sec.p(
        "Start and padding tokens are nearly identical across captions, so token cosines are high for any "
        "prediction close to the mean: compare with the baseline column, not with 1."
    )
    rows = [[name, mean_and_std(t[key]), mean_and_std(bt[key])] for key, name in
            (("global_cosine", "global cosine"), ("token_cosine", "token cosine"), ("token_mse", "token MSE"), ("token_l2", "token L2"))]
    rows += [[f"share of (trial, token) cosines > {thr}", percent(v), percent(bt["token_cosine_above"][thr])]
             for thr, v in t["token_cosine_above"].items()]
    sec.table(["metric", "model", bname], rows)
    if "token_cosine" in inputs.figures:
        sec.fig(inputs.figures["token_cosine"], "Mean per-token cosine over the 77 positions, model and baseline.")
    return sec


# ----------------------------------------------------------------------------- per subject, settings


def per_subject_section(inputs: ReportInputs) -> Section:
    """One row per subject: each metric with the baseline in parentheses, chance in the headers."""
    metrics, bname = inputs.metrics, baseline_short_name(inputs.metrics)
    table = metrics["per_subject"]
    cols = [k for k in ("cosine", "all_top1", "all_top5", "2way_top1", "classification_top1") if k in next(iter(table.values()))]
    rows = []
    for s, row in table.items():
        cells = [s, str(row["n"])]
        for k in cols:
            show = number if k == "cosine" else percent
            cells.append(f"{show(row[k])} ({show(row['baseline_' + k])})")
        rows.append(cells)
    sec = Section("Per subject")
    sec.p(f"Model value, with the {bname} baseline in parentheses; chance levels in the column headers.")
    heads = [k.replace("_", " ") + ("" if k == "cosine" else f" (chance {percent(subject_chance(metrics, k))})") for k in cols]
    sec.table(["subject", "trials", *heads], rows)
    if "per_subject" in inputs.figures:
        sec.fig(inputs.figures["per_subject"], "Per-subject metrics, model vs baseline; dashed: chance.")
    return sec


def settings_section(inputs: ReportInputs) -> Section:
    """Every setting of the evaluation (seeds, resamples, tie rule, baseline source)."""
    st = inputs.metrics["settings"]
    sec = Section("Settings")
    sec.table(["setting", "value"], [[k.replace("_", " "), str(v)] for k, v in st.items()])
    if st["baseline_source"] != "train":
        sec.p(f"* {st['baseline_label']}.")
    return sec


def audit_section(inputs: ReportInputs) -> Section | None:
    """The leakage audit (``evaluate --audit DIR``), built by :func:`eegalign.audit.report.evaluation_audit_section`.

    Imported when called: the audit package builds its sections from this package's document model.
    """
    from eegalign.audit.report import evaluation_audit_section

    return evaluation_audit_section(inputs)


#: The evaluation report, in order. The audit's builder returns None unless ``evaluate --audit DIR``.
EVALUATION_SECTIONS = (
    provenance_section, summary_section, retrieval_section, published_section, classification_section,
    similarity_section, text_section, per_subject_section, settings_section, audit_section,
)
