"""The evaluation report: matplotlib figures plus ``report.md`` and ``report.html``.

:func:`write_report` turns the metrics dict and per-trial arrays of
:func:`eegalign.metrics.compute_metrics` into a report a researcher can check: provenance (data
source, split protocol with the block-design caveat, model, checkpoint), every accuracy with its
chance level and 95% CI, every similarity beside the train-mean baseline, the permutation
p-values, a per-subject breakdown and figures (``figures/*.png``, referenced relatively). The
markdown and HTML are rendered from one list of sections, so they always say the same thing.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BLOCK_DESIGN_CAVEAT = (
    "The CVPR40 recordings use a block design and the hub data set splits trials by image inside the "
    "same sessions, so neighbouring train and test trials share slow drifts; decoding accuracy on such "
    "splits can be inflated (Li et al. 2020, \"The perils and pitfalls of block design for EEG "
    "classification experiments\", IEEE TPAMI). Treat these numbers as an upper bound; a "
    "leave-one-subject-out or session-held-out evaluation is the stricter test."
)

SIM_NAMES = {"cosine": "cosine", "mse": "MSE", "l2": "L2 distance", "l1": "L1 distance", "abs_diff": "mean |diff|"}


@dataclass
class Section:
    """One report section: an ordered list of blocks ``("p", text)``, ``("table", (header, rows))``,
    ``("fig", (relative path, caption))``."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def fig(self, path: str, caption: str) -> None:
        self.blocks.append(("fig", (path, caption)))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))


# ----------------------------------------------------------------------------- formatting


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _acc(entry: dict | None) -> str:
    if not entry:
        return "n/a"
    lo, hi = entry["ci95"]
    return f"{_pct(entry['value'])} [{_pct(lo)}, {_pct(hi)}]"


def _num(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def _ms(entry: dict | None) -> str:
    return "n/a" if not entry else f"{_num(entry['mean'])} ± {_num(entry['std'], 3)}"


def _p(p: float, n: int) -> str:
    floor = 1.0 / (n + 1)
    return f"{p:.3g}" + (f" (the floor for {n} permutations)" if p <= floor + 1e-12 else "")


def _metric_label(key: str) -> str:
    if key.startswith("all_"):
        return f"all-way {key[4:].replace('top', 'top-')}"
    k, top = key.split("way_")
    return f"{k}-way {top.replace('top', 'top-')}"


def _centre_name(metrics: dict) -> str:
    """The mean target the similarity-matrix figure is centred on: "train mean" or "split mean"."""
    return "train mean" if metrics["settings"]["baseline_source"] == "train" else "split mean"


def _subject_chance(metrics: dict, key: str) -> float | None:
    """Chance level of a per-subject column (``all_top1``, ``classification_top1``, ...); None for cosine."""
    if key == "cosine":
        return None
    if key.startswith("classification_"):
        return metrics["classification"][key.split("_", 1)[1]]["chance"]
    return metrics["retrieval"][key]["chance"]


def _kway_sort(key: str) -> tuple[int, int]:
    k = 10**9 if key.startswith("all_") else int(key.split("way_")[0])
    return (int(key.rsplit("top", 1)[1]), k)


# ----------------------------------------------------------------------------- figures


def _figures(fig_dir: Path, metrics: dict, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """Draw every figure into ``fig_dir``; returns ``{name: relative path}``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig_dir.mkdir(parents=True, exist_ok=True)
    base_label = metrics["settings"]["baseline_label"]
    centre = _centre_name(metrics)
    out: dict[str, str] = {}

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(fig_dir / f"{name}.png", dpi=110)
        plt.close(fig)
        out[name] = f"figures/{name}.png"

    # per-trial cosine vs the baseline
    fig, ax = plt.subplots(figsize=(7, 3.6))
    cos, bcos = arrays["cosine"], arrays["baseline_cosine"]  # (N,), (N,)
    fin, bfin = cos[np.isfinite(cos)], bcos[np.isfinite(bcos)]  # a diverged (NaN) prediction would blank the bins
    both = np.concatenate([fin, bfin])
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 40)

    def hist_label(name: str, v: np.ndarray, shown: np.ndarray) -> str:
        bad = len(v) - len(shown)
        return f"{name} (mean {v.mean():.3f})" + (f"; {bad} non-finite trial{'s' * (bad > 1)} not shown" if bad else "")

    ax.hist(bfin, bins=bins, alpha=0.55, color="#999999", label=hist_label(base_label, bcos, bfin))
    ax.hist(fin, bins=bins, alpha=0.7, color="#1f77b4", label=hist_label("model", cos, fin))
    ax.set_xlabel("cosine(prediction, own target) per trial")
    ax.set_ylabel("trials")
    ax.legend(frameon=False, fontsize=8)
    save(fig, "cosine_hist")

    # retrieval accuracy vs k, with CI and chance
    ret, bret = metrics["retrieval"], metrics["baselines"]["train_mean"]["retrieval"]
    keys = sorted((k for k in ret if k.endswith("top1")), key=_kway_sort)
    ks = [metrics["n_images"] if k.startswith("all_") else int(k.split("way_")[0]) for k in keys]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for src, color, name in ((ret, "#1f77b4", "model"), (bret, "#999999", base_label)):
        v = np.array([src[k]["value"] for k in keys])
        ci = np.array([src[k]["ci95"] for k in keys]).T
        ax.errorbar(ks, v, yerr=[v - ci[0], ci[1] - v], marker="o", capsize=3, color=color, label=f"{name} (95% CI)")
    ax.plot(ks, [ret[k]["chance"] for k in keys], "k--", lw=1, label="chance (1/k)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(ks)
    ax.set_xticklabels([f"{k}\n(all)" if key.startswith("all_") else str(k) for k, key in zip(ks, keys)])
    ax.set_xlabel("number of candidates k")
    ax.set_ylabel("top-1 accuracy")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=8)
    save(fig, "retrieval_vs_k")

    # per-subject bars
    subs = list(metrics["per_subject"])
    keys_s = [k for k in ("all_top1", "2way_top1", "classification_top1") if k in metrics["per_subject"][subs[0]]]
    fig, axes = plt.subplots(1, len(keys_s) + 1, figsize=(3.2 * (len(keys_s) + 1), 3.4))
    x = np.arange(len(subs))
    for ax, key in zip(axes, ["cosine", *keys_s]):
        # None (no scorable trial) draws no bar: "or 0.0" drew it as a 0% accuracy
        mv = [np.nan if (v := metrics["per_subject"][s][key]) is None else v for s in subs]
        bv = [np.nan if (v := metrics["per_subject"][s][f"baseline_{key}"]) is None else v for s in subs]
        ax.bar(x - 0.2, mv, 0.4, color="#1f77b4", label="model")
        ax.bar(x + 0.2, bv, 0.4, color="#999999", label="baseline")
        chance = _subject_chance(metrics, key)
        if chance is not None:
            ax.axhline(chance, color="k", ls="--", lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels(subs)
        ax.set_xlabel("subject")
        ax.set_title(key.replace("_", " "), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, ["model", base_label], loc="upper right", ncol=2, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    fig.savefig(fig_dir / "per_subject.png", dpi=110)
    plt.close(fig)
    out["per_subject"] = "figures/per_subject.png"

    # trial x image centred-cosine matrix, both sorted by class (raw cosine of CLIP-like targets is
    # dominated by their shared mean direction and looks uniform)
    sim, answer, cand_label, label = arrays["sim_centred"], arrays["answer"], arrays["cand_label"], arrays["label"]
    col = np.lexsort((np.arange(len(cand_label)), cand_label))  # (M,) candidate order
    pos = np.empty_like(col)
    pos[col] = np.arange(len(col))  # (M,) column of each candidate
    row = np.lexsort((pos[answer], label))  # (N,) trial order
    shown = sim[row][:, col]  # (N, M)
    finite = shown[np.isfinite(shown)]
    lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    im = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim)
    n_cls = len(np.unique(cand_label))
    if 1 < n_cls <= 60:  # class boundaries
        for b in np.flatnonzero(np.diff(cand_label[col])) + 0.5:
            ax.axvline(b, color="#444444", lw=0.4, alpha=0.7)
        for b in np.flatnonzero(np.diff(label[row])) + 0.5:
            ax.axhline(b, color="#444444", lw=0.4, alpha=0.7)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("candidate image (sorted by class; grey lines: class boundaries)")
    ax.set_ylabel("trial (sorted by class, then image)")
    ax.set_title(f"centred cosine (prediction and candidate minus the {centre})", fontsize=9)
    fig.colorbar(im, ax=ax, label=f"cosine centred on the {centre}")
    save(fig, "similarity_matrix")

    if "token_cosine_curve" in arrays:
        fig, ax = plt.subplots(figsize=(7, 3.4))
        dropped = int(arrays.get("token_cosine_dropped", 0))
        left_out = f" ({dropped} non-finite trials left out)" if dropped else ""
        ax.plot(arrays["token_cosine_curve"], color="#1f77b4", label=f"model{left_out}")
        ax.plot(arrays["baseline_token_cosine_curve"], color="#999999", label=base_label)
        ax.set_xlabel("token position")
        ax.set_ylabel("mean cosine over trials")
        ax.legend(frameon=False, fontsize=8)
        save(fig, "token_cosine")
    return out


# ----------------------------------------------------------------------------- content


def _provenance(metrics: dict, ctx: dict) -> Section:
    s = Section("Provenance")
    manifest: dict = {}
    cache = ctx.get("cache")
    if cache and (Path(cache) / "manifest.json").is_file():
        try:
            manifest = json.loads((Path(cache) / "manifest.json").read_text())
        except (OSError, ValueError):
            manifest = {}
    fmt = manifest.get("format")
    source = manifest.get("source", "unknown (not recorded in the predictions file)")
    route = metrics["route"]
    rows = [
        ["model", str(ctx.get("model"))],
        ["route", f"{route} ({'1024-d CLIP image embedding' if route == 'image' else '77 x 768 CLIP text hidden states'})"],
        ["evaluated split", f"{ctx.get('split')} ({metrics['n']} trials, {metrics['n_images']} images, {metrics['n_subjects']} subjects)"],
        ["data source", f"{source}" + (f" (format {fmt})" if fmt else "")],
        ["cache", str(cache or "not recorded")],
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
    s.table(["item", "value"], rows)
    if ctx.get("config") and Path(ctx["config"]).is_file():
        text = Path(ctx["config"]).read_text(encoding="utf-8", errors="replace")
        s.p(f"Resolved training configuration (`{ctx['config']}`, {len(text.splitlines())} lines):")
        s.code(text if len(text) < 20_000 else text[:20_000] + "\n... (truncated)")
    # the source as resolved when the cache was prepared (the recorded one may be relative to another directory)
    source_dir = manifest.get("source_identity", {}).get("path") or manifest.get("source")
    if source_dir and (Path(source_dir) / "synthetic.json").is_file():
        protocol = (
            "Synthetic data (`eegalign data synth`), split by image like the hub data set: "
            "these numbers test the pipeline, not a brain."
        )
    else:
        fold = f", fold {manifest.get('params', {}).get('fold')}" if fmt == "release" else ""
        protocol = f"The cache's own `{ctx.get('split')}` split (by image, as provided by the source{fold})."
    s.p(f"**Split protocol.** {protocol} {BLOCK_DESIGN_CAVEAT}")
    st = metrics["settings"]
    if st["baseline_source"] != "train":
        s.p(
            "**Warning.** No train targets were given: the baseline is the "
            f"{st['baseline_label']}, and class prototypes come from the {st['prototype_source']}. "
            "Pass `--train-targets` (a cache directory or a safetensors file) for the honest train-split baseline."
        )
    return s


def _verdict(metrics: dict, bname: str, alpha: float = 0.05) -> str:
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
            f"all-way top-1 is above chance (p = {p:.3g}) but its 95% CI reaches the {bname} baseline's "
            f"{_pct(b['value'])}: not clearly better than predicting the mean."
        )
    return f"all-way top-1 is above chance (p = {p:.3g}) and its 95% CI lies above the {bname} baseline."


#: Published THINGS-EEG2 figures (intra-subject, 200-way zero-shot, test repetitions averaged,
#: mean over the 10 subjects): (method, reference, top-1 %, top-5 %). Measured elsewhere.
THINGS_PUBLISHED = (
    ("NICE", "Song et al. 2024, ICLR", 15.6, 42.8),
    ("ATM", "Li et al. 2024, NeurIPS (about)", 28.0, 60.0),
    ("UBP", "Wu et al. 2025, CVPR", 50.9, 79.7),
)


def _published(metrics: dict, ctx: dict) -> Section | None:
    """The published THINGS-EEG2 figures beside ours (THINGS-EEG2 caches only), clearly labelled."""
    if ctx.get("dataset") != "things-eeg2":
        return None
    sec = Section("Published THINGS-EEG2 figures (measured elsewhere)")
    sec.p(
        "Numbers **published by other groups, measured elsewhere** (their code, preprocessing, image encoders and "
        "training budgets), intra-subject, 200-way zero-shot retrieval among the 200 test images with the 80 test "
        "repetitions averaged, mean over 10 subjects. They are shown for orientation, not as a like-for-like "
        "comparison; chance is 0.5% (top-1) and 2.5% (top-5)."
    )
    ra = metrics.get("retrieval_averaged", {})
    n = round(1 / ra["all_top1"]["chance"]) if "all_top1" in ra else metrics["n_images"]
    rows = [[m, ref, f"{t1:.1f}%", f"{t5:.1f}%"] for m, ref, t1, t5 in THINGS_PUBLISHED]
    if ra:
        rows.append([f"this run ({ctx.get('model')})", f"{n}-way, {ra['n']} averaged queries",
                     _acc(ra["all_top1"]), _acc(ra["all_top5"])])
    sec.table(["method", "source", "top-1", "top-5"], rows)
    if n != 200:
        sec.p(f"**Note.** This evaluation is {n}-way, not 200-way (chance {_pct(1 / n)}): not comparable with the published rows.")
    return sec


def _sections(metrics: dict, ctx: dict, figs: dict[str, str]) -> list[Section]:
    st = metrics["settings"]
    base = metrics["baselines"]["train_mean"]
    bname = "train mean" if st["baseline_source"] == "train" else "split mean*"
    n_perm = metrics["baselines"]["permutation_n"]
    r, perm = metrics["retrieval"], metrics["baselines"]
    cls = metrics.get("classification", {})
    out = [_provenance(metrics, ctx)]

    head = Section("Summary")
    head.p(
        f"All-way top-1 retrieval **{_acc(r['all_top1'])}** (chance {_pct(r['all_top1']['chance'])}, {bname} baseline "
        f"{_pct(base['retrieval']['all_top1']['value'])}); permutation p = {_p(perm['permutation_p'], n_perm)}. "
        + (f"Class-prototype top-1 **{_acc(cls['top1'])}** (chance {_pct(cls['top1']['chance'])}). " if cls else "")
        + f"Mean cosine **{_num(metrics['similarity']['cosine']['mean'])}** vs {bname} baseline "
        f"{_num(base['similarity']['cosine']['mean'])} (permutation p = {_p(perm['permutation_p_cosine'], n_perm)})."
    )
    head.p(f"**Verdict.** {_verdict(metrics, bname)}")
    head.p(
        f"Baseline: the {st['baseline_label']} target predicted for every trial, scored with every metric below. "
        "Brackets: 95% bootstrap confidence interval over trials "
        f"({st['bootstrap_resamples']} seeded resamples)."
    )
    out.append(head)

    ret = Section("Retrieval")
    ret.p(
        "Candidates are the distinct images of the evaluated split with their true targets; each trial's prediction "
        "ranks them by cosine. k-way: the true image plus k-1 distractors drawn without replacement "
        f"({st['kway_draws']} seeded draws per trial, averaged); only the k that fit the number of images are shown. "
        f"Ties: {st['tie_rule']}."
    )
    if metrics["n_images"] < 10:
        ret.p(
            f"**Note.** The evaluated split holds only {metrics['n_images']} distinct image(s): retrieval is "
            "nearly trivial (chance is high) and says little about the decoder."
        )
    if metrics["route"] == "text":
        ret.p(
            f"Text route: predictions and candidates are centred on the {st['retrieval_center']} before flattening "
            "(start and padding tokens would otherwise dominate). The centred baseline is the zero vector, which "
            "ties with every candidate and so scores 0 by the tie rule."
        )
    header = ["metric", "model [95% CI]", f"{bname} [95% CI]", "chance"]

    def rtable(block: dict, bblock: dict | None) -> list[list[str]]:
        keys = sorted((k for k in block if isinstance(block[k], dict) and "value" in block[k]), key=_kway_sort)
        return [[_metric_label(k), _acc(block[k]), _acc(bblock.get(k)) if bblock else "", _pct(block[k]["chance"])] for k in keys]

    ret.table(header, rtable(r, base["retrieval"]))
    ret.p(
        f"Permutation test ({n_perm} seeded shuffles of the pairing between predictions and trials): "
        f"p = {_p(perm['permutation_p'], n_perm)} for all-way top-1, "
        f"p = {_p(perm['permutation_p_cosine'], n_perm)} for the mean own-image cosine."
    )
    if "retrieval_vs_k" in figs:
        ret.fig(figs["retrieval_vs_k"], "Top-1 retrieval accuracy vs number of candidates, with 95% CIs and chance.")
    if "retrieval_raw" in metrics:
        ret.p("**Uncentred (raw) text-route retrieval**, for comparison with papers that report it:")
        ret.table(header, rtable(metrics["retrieval_raw"], base.get("retrieval_raw")))
    if "retrieval_averaged" in metrics:
        ra = metrics["retrieval_averaged"]
        ret.p(
            f"**Trial-averaged retrieval** ({ra['note']}; {ra['n']} averaged queries). "
            "Not comparable with the single-trial numbers above."
        )
        ret.table(header, rtable(ra, base.get("retrieval_averaged")))
    if "similarity_matrix" in figs:
        ret.fig(
            figs["similarity_matrix"],
            f"Centred cosine of every trial's prediction with every candidate image: the {_centre_name(metrics)} "
            "target (the baseline's prediction) is subtracted from both, so 0 means no closer than the baseline "
            "(raw cosine of CLIP embeddings is dominated by their shared mean direction and looks uniform). "
            "Both sorted by class: a class-level decoder shows blocks on the diagonal, an image-level one a sharp diagonal.",
        )
    out.append(ret)
    published = _published(metrics, ctx)
    if published is not None:
        out.append(published)

    if cls:
        c = Section("Classification via class prototypes")
        c.p(
            f"Prototype of a class = mean target of the {st['prototype_source']} of that class ({st['n_classes']} classes); "
            "each prediction is assigned to the most cosine-similar prototype"
            + (" (text route: centred like retrieval)." if metrics["route"] == "text" else ".")
        )
        bcls = base.get("classification", {})
        c.table(header, [[k.replace("top", "top-"), _acc(cls[k]), _acc(bcls.get(k)), _pct(cls[k]["chance"])] for k in ("top1", "top5")])
        out.append(c)

    sim = Section("Similarity")
    sim.p("Mean ± std over trials of each prediction against its own target (flattened).")
    sim.table(["metric", "model", bname], [[SIM_NAMES[k], _ms(metrics["similarity"][k]), _ms(base["similarity"][k])] for k in SIM_NAMES])
    if "cosine_hist" in figs:
        sim.fig(figs["cosine_hist"], f"Per-trial cosine of the model and of the {bname} baseline.")
    out.append(sim)

    if "text" in metrics:
        t, bt = metrics["text"], base["text"]
        tx = Section("Text route: token metrics")
        tx.p(
            "Start and padding tokens are nearly identical across captions, so token cosines are high for any "
            "prediction close to the mean: compare with the baseline column, not with 1."
        )
        rows = [[name, _ms(t[key]), _ms(bt[key])] for key, name in
                (("global_cosine", "global cosine"), ("token_cosine", "token cosine"), ("token_mse", "token MSE"), ("token_l2", "token L2"))]
        rows += [[f"share of (trial, token) cosines > {thr}", _pct(v), _pct(bt["token_cosine_above"][thr])]
                 for thr, v in t["token_cosine_above"].items()]
        tx.table(["metric", "model", bname], rows)
        if "token_cosine" in figs:
            tx.fig(figs["token_cosine"], "Mean per-token cosine over the 77 positions, model and baseline.")
        out.append(tx)

    ps = Section("Per subject")
    subs = metrics["per_subject"]
    cols = [k for k in ("cosine", "all_top1", "all_top5", "2way_top1", "classification_top1") if k in next(iter(subs.values()))]
    rows = []
    for s, row in subs.items():
        cells = [s, str(row["n"])]
        for k in cols:
            f = _num if k == "cosine" else _pct
            cells.append(f"{f(row[k])} ({f(row['baseline_' + k])})")
        rows.append(cells)
    ps.p(f"Model value, with the {bname} baseline in parentheses; chance levels in the column headers.")
    heads = [k.replace("_", " ") + ("" if k == "cosine" else f" (chance {_pct(_subject_chance(metrics, k))})") for k in cols]
    ps.table(["subject", "trials", *heads], rows)
    if "per_subject" in figs:
        ps.fig(figs["per_subject"], "Per-subject metrics, model vs baseline; dashed: chance.")
    out.append(ps)

    setting = Section("Settings")
    setting.table(["setting", "value"], [[k.replace("_", " "), str(v)] for k, v in st.items()])
    if st["baseline_source"] != "train":
        setting.p(f"* {st['baseline_label']}.")
    out.append(setting)
    return out


# ----------------------------------------------------------------------------- rendering

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1em;font-size:.92em}th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f6f8}tr:nth-child(even) td{background:#fafbfc}td:first-child{white-space:nowrap}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.88em;color:#555}
.sub{color:#666;font-size:.95em}code{background:#f4f4f4;padding:0 .2em}
pre{background:#f7f7f7;border:1px solid #eee;padding:.6em;font-size:.82em;overflow-x:auto}summary{cursor:pointer;color:#1f5fa8}
"""


def _html_inline(text: str) -> str:
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", t)


def render_markdown(title: str, subtitle: str, sections: list[Section]) -> str:
    lines = [f"# {title}", "", subtitle, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        for kind, val in s.blocks:
            if kind == "p":
                lines += [val, ""]
            elif kind == "code":
                lines += ["```", val.rstrip("\n"), "```", ""]
            elif kind == "table":
                header, rows = val
                lines.append("| " + " | ".join(header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
                lines.append("")
            else:
                path, cap = val
                cap = cap.replace("*", "\\*")  # a "split mean*" mark would end the italics early
                lines += [f"![{cap}]({path})", "", f"*{cap}*", ""]
    return "\n".join(lines)


def render_html(title: str, subtitle: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='sub'>{_html_inline(subtitle)}</p>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        for kind, val in s.blocks:
            if kind == "p":
                parts.append(f"<p>{_html_inline(val)}</p>")
            elif kind == "code":
                parts.append(f"<details><summary>show</summary><pre>{html.escape(val)}</pre></details>")
            elif kind == "table":
                header, rows = val
                parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>")
                parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
                parts.append("</tbody></table>")
            else:
                path, cap = val
                parts.append(
                    f"<figure><img src='{html.escape(path)}' alt='{html.escape(cap)}'><figcaption>{html.escape(cap)}</figcaption></figure>"
                )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out_dir: str | Path, metrics: dict, arrays: dict[str, np.ndarray], preds: Any, context: dict) -> None:
    """Write ``figures/*.png``, ``report.md`` and ``report.html`` into ``out_dir``."""
    from eegalign.io import atomic_file

    out_dir = Path(out_dir)
    figs = _figures(out_dir / "figures", metrics, arrays)
    sections = _sections(metrics, context, figs)
    if context.get("audit"):  # `evaluate --audit DIR`: the leakage audit's section, rendered by the audit package
        from eegalign.audit.report import audit_section
        from eegalign.audit.run import load_audit

        sections.append(audit_section(load_audit(context["audit"])))
    title = f"eegalign evaluation: {context.get('model')} ({metrics['route']} route, {context.get('split')} split)"
    subtitle = (
        f"{metrics['n']} trials, {metrics['n_images']} distinct images, {metrics['n_subjects']} subjects. "
        f"Every accuracy is shown with its chance level and 95% CI, every similarity beside the {metrics['settings']['baseline_label']}."
    )
    for name, text in (("report.md", render_markdown(title, subtitle, sections)), ("report.html", render_html(title, subtitle, sections))):
        with atomic_file(out_dir / name) as tmp:
            tmp.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- comparison of runs

COMPARE_ACC = (
    ("retrieval", "all_top1"), ("retrieval", "all_top5"), ("retrieval", "2way_top1"), ("retrieval", "10way_top1"),
    ("retrieval", "50way_top1"), ("retrieval", "200way_top1"), ("classification", "top1"), ("classification", "top5"),
)


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
        for block, key in COMPARE_ACC:
            e = m.get(block, {}).get(key)
            col = f"{'class_' if block == 'classification' else ''}{key}"
            if e:
                rec[col], rec[f"{col}_lo"], rec[f"{col}_hi"] = e["value"], e["ci95"][0], e["ci95"][1]
                rec[f"{col}_chance"] = e["chance"]
                be = base.get(block, {}).get(key)
                rec[f"{col}_baseline"] = be["value"] if be else None
        recs.append(rec)
        cols += [c for c in rec if c not in cols]
    return cols, recs


def _evaluation_comparison(paths: list[str | Path]) -> tuple["Section", Any, list[str], list[dict[str, Any]]]:
    """Evaluate runs side by side: the section, its top-1 figure, and the CSV columns and records."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    runs = [load_run_metrics(p) for p in paths]
    names = [n for n, _ in runs]
    if len(set(names)) != len(names):  # same directory names under different parents: use the paths
        runs = [(str(p), m) for p, (_, m) in zip(paths, runs)]
    cols, recs = comparison_rows(runs)
    acc_cols = [(b, k) for b, k in COMPARE_ACC if any(m.get(b, {}).get(k) for _, m in runs)]
    header = ["run", "model", "route", "n", "baseline", "cosine (baseline)", *[_metric_label(k) if b == "retrieval" else f"class {k.replace('top', 'top-')}" for b, k in acc_cols], "perm. p"]
    rows = []
    for name, m in runs:
        base = m.get("baselines", {}).get("train_mean", {})
        row = [name, str(m.get("run", {}).get("model", "")), str(m.get("route")), str(m.get("n")),
               "train mean" if m.get("settings", {}).get("baseline_source", "train") == "train" else "split mean (optimistic)",
               f"{_num(m['similarity']['cosine']['mean'])} ({_num(base.get('similarity', {}).get('cosine', {}).get('mean'))})"]
        for b, k in acc_cols:
            e, be = m.get(b, {}).get(k), base.get(b, {}).get(k)
            row.append(f"{_acc(e)}; chance {_pct(e['chance'])}; baseline {_pct(be['value'] if be else None)}" if e else "n/a")
        p = m.get("baselines", {}).get("permutation_p")
        row.append("n/a" if p is None else f"{p:.3g}")
        rows.append(row)
    sec = Section("Runs side by side")
    sec.p(
        "Accuracies: value [95% bootstrap CI]; chance and the run's baseline beside each. Cosine: mean own-target "
        "cosine, with the baseline in parentheses. Baseline: the run's train mean, or split mean when no train targets "
        "were given (see the baseline column). Runs on different routes are compared on the metrics both define; "
        "runs on different splits or caches are not comparable."
    )
    sec.table(header, rows)

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
    ax.set_xticklabels([_metric_label(k) if b == "retrieval" else "class top-1" for b, k in top1], fontsize=8)
    ax.set_ylabel("accuracy (95% CI); dashed: chance")
    ax.set_ylim(0, 1.02)
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()

    sec.fig("compare.png", "Top-1 accuracies of every run with 95% CIs; dashed lines: chance.")
    return sec, fig, cols, recs


def _generation_comparison(
    paths: list[str | Path], out: Path, routes: tuple[str, str] | None, grid_trials: int
) -> tuple[list["Section"], dict[str, Any], list[tuple[str, Any]]]:
    """Generation runs: sections, the ``compare.json`` block and the route grids ``(file name, image)``."""
    from itertools import combinations

    from eegalign.generation.compare import compare_generation_runs, load_generation_run
    from eegalign.generation.compare_sections import (
        ROUTE_COLUMNS, comparison_json, paired_section, route_grid_rows, route_pair, side_by_side_section,
    )
    from eegalign.generation.grids import make_grid

    runs = [load_generation_run(p) for p in paths]
    if len({r.name for r in runs}) != len(runs):  # same directory names under different parents: use the paths
        runs = [load_generation_run(p, name=str(p)) for p in paths]
    comparisons = [compare_generation_runs(a, b) for a, b in combinations(runs, 2)]
    sections = [side_by_side_section(runs), paired_section(comparisons)]
    grids: list[tuple[str, Any]] = []
    pair = route_pair(runs, routes)
    grid_sec = Section("Image route vs text route, by eye")
    if pair is None:
        grid_sec.p("No grid: it needs one image-route and one text-route generation run.")
    else:
        rows = route_grid_rows(*pair, limit=grid_trials)
        grid_sec.p(f"Shared trials of **{pair[0].name}** (image route) and **{pair[1].name}** (text route), "
                   f"{len(rows)} shown. Columns: original | image route from the true embedding | image route from "
                   "EEG | text route from the true embedding | text route from EEG. Captions: trial, class, subject.")
        for j, start in enumerate(range(0, len(rows), 8)):
            name = f"routes_{j:03d}.png"
            grids.append((name, make_grid(rows[start : start + 8], out, columns=ROUTE_COLUMNS)))
            grid_sec.fig(f"grids/{name}", f"trials {start + 1}-{min(start + 8, len(rows))} of {len(rows)}")
        if not rows:
            grid_sec.p("The two runs share no trial, so no row can be shown.")
    sections.append(grid_sec)
    return sections, comparison_json(runs, comparisons), grids


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
    import csv

    from eegalign.generation.compare import is_generation_dir
    from eegalign.io import atomic_dir, write_json

    gen_paths = [p for p in paths if is_generation_dir(p)]
    eval_paths = [p for p in paths if not is_generation_dir(p)]
    out = Path(out)
    sections: list[Section] = []
    summary: dict[str, Any] = {"version": 1, "evaluation_runs": [], "generation_runs": [], "paired": {}}
    fig = cols = recs = None
    if eval_paths:
        sec, fig, cols, recs = _evaluation_comparison(eval_paths)
        sections.append(sec)
        summary["evaluation_runs"] = recs
    grids: list[tuple[str, Any]] = []
    if gen_paths:
        gen_sections, gen_json, grids = _generation_comparison(gen_paths, out, routes, grid_trials)
        sections += gen_sections
        summary.update(gen_json)
    with atomic_dir(out, overwrite=overwrite, kind="comparison", command="eegalign compare") as tmp:
        if fig is not None:
            import matplotlib.pyplot as plt

            fig.savefig(tmp / "compare.png", dpi=110)
            plt.close(fig)
            with open(tmp / "compare.csv", "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                w.writerows(recs)
        if grids:
            (tmp / "grids").mkdir()
            for name, image in grids:
                image.save(tmp / "grids" / name)
        title = "eegalign: comparison of runs"
        sub = f"{len(paths)} runs: " + ", ".join(Path(p).name for p in paths)
        (tmp / "compare.md").write_text(render_markdown(title, sub, sections), encoding="utf-8")
        (tmp / "compare.html").write_text(render_html(title, sub, sections), encoding="utf-8")
        write_json(tmp / "compare.json", summary)
    return out

