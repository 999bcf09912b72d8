"""The evaluation report's matplotlib figures, one function per figure.

Each ``*_figure`` function takes the metrics dict and/or the per-trial arrays of
:func:`eegalign.metrics.compute_metrics` and returns a matplotlib figure; :func:`draw_figures`
saves them as ``figures/NAME.png`` and returns their relative paths. matplotlib is imported
lazily (and set to the Agg backend), so importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eegalign.report.format import centre_name, retrieval_sort_key, subject_chance

MODEL_COLOR, BASELINE_COLOR = "#1f77b4", "#999999"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _histogram_label(name: str, values: np.ndarray, shown: np.ndarray) -> str:
    """Legend text: the mean, and how many non-finite trials the histogram leaves out."""
    bad = len(values) - len(shown)
    return f"{name} (mean {values.mean():.3f})" + (f"; {bad} non-finite trial{'s' * (bad > 1)} not shown" if bad else "")


def cosine_histogram_figure(metrics: dict, arrays: dict[str, np.ndarray]) -> Any:
    """Per-trial cosine with the own target, model vs baseline."""
    plt = _pyplot()
    base_label = metrics["settings"]["baseline_label"]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    cos, bcos = arrays["cosine"], arrays["baseline_cosine"]  # (N,), (N,)
    fin, bfin = cos[np.isfinite(cos)], bcos[np.isfinite(bcos)]  # a diverged (NaN) prediction would blank the bins
    both = np.concatenate([fin, bfin])
    lo, hi = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 40)
    ax.hist(bfin, bins=bins, alpha=0.55, color=BASELINE_COLOR, label=_histogram_label(base_label, bcos, bfin))
    ax.hist(fin, bins=bins, alpha=0.7, color=MODEL_COLOR, label=_histogram_label("model", cos, fin))
    ax.set_xlabel("cosine(prediction, own target) per trial")
    ax.set_ylabel("trials")
    ax.legend(frameon=False, fontsize=8)
    return fig


def retrieval_vs_k_figure(metrics: dict) -> Any:
    """Top-1 retrieval accuracy against the number of candidates, with CIs and chance."""
    plt = _pyplot()
    ret, bret = metrics["retrieval"], metrics["baselines"]["train_mean"]["retrieval"]
    keys = sorted((k for k in ret if k.endswith("top1")), key=retrieval_sort_key)
    ks = [metrics["n_images"] if k.startswith("all_") else int(k.split("way_")[0]) for k in keys]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for src, color, name in ((ret, MODEL_COLOR, "model"), (bret, BASELINE_COLOR, metrics["settings"]["baseline_label"])):
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
    return fig


def per_subject_figure(metrics: dict) -> Any:
    """One panel per per-subject metric: model and baseline bars per subject, chance dashed."""
    plt = _pyplot()
    table = metrics["per_subject"]
    subjects = list(table)
    keys = [k for k in ("all_top1", "2way_top1", "classification_top1") if k in table[subjects[0]]]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(3.2 * (len(keys) + 1), 3.4))
    x = np.arange(len(subjects))
    for ax, key in zip(axes, ["cosine", *keys]):
        # None (no scorable trial) draws no bar: "or 0.0" drew it as a 0% accuracy
        model = [np.nan if (v := table[s][key]) is None else v for s in subjects]
        baseline = [np.nan if (v := table[s][f"baseline_{key}"]) is None else v for s in subjects]
        ax.bar(x - 0.2, model, 0.4, color=MODEL_COLOR, label="model")
        ax.bar(x + 0.2, baseline, 0.4, color=BASELINE_COLOR, label="baseline")
        chance = subject_chance(metrics, key)
        if chance is not None:
            ax.axhline(chance, color="k", ls="--", lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels(subjects)
        ax.set_xlabel("subject")
        ax.set_title(key.replace("_", " "), fontsize=9)
    handles, _ = axes[0].get_legend_handles_labels()
    fig.legend(handles, ["model", metrics["settings"]["baseline_label"]], loc="upper right", ncol=2, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def _class_sorted(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centred trial x candidate cosine matrix sorted by class ``(N, M)``, with its row and column orders."""
    sim, answer, cand_label, label = arrays["sim_centred"], arrays["answer"], arrays["cand_label"], arrays["label"]
    col = np.lexsort((np.arange(len(cand_label)), cand_label))  # (M,) candidate order
    pos = np.empty_like(col)
    pos[col] = np.arange(len(col))  # (M,) column of each candidate
    row = np.lexsort((pos[answer], label))  # (N,) trial order
    return sim[row][:, col], row, col


def similarity_matrix_figure(metrics: dict, arrays: dict[str, np.ndarray]) -> Any:
    """Trial x image centred-cosine matrix, both sorted by class (raw cosine of CLIP-like targets
    is dominated by their shared mean direction and looks uniform)."""
    plt = _pyplot()
    centre = centre_name(metrics)
    shown, row, col = _class_sorted(arrays)  # (N, M)
    finite = shown[np.isfinite(shown)]
    lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    im = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-lim, vmax=lim)
    cand_label, label = arrays["cand_label"], arrays["label"]
    if 1 < len(np.unique(cand_label)) <= 60:  # class boundaries
        for b in np.flatnonzero(np.diff(cand_label[col])) + 0.5:
            ax.axvline(b, color="#444444", lw=0.4, alpha=0.7)
        for b in np.flatnonzero(np.diff(label[row])) + 0.5:
            ax.axhline(b, color="#444444", lw=0.4, alpha=0.7)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("candidate image (sorted by class; grey lines: class boundaries)")
    ax.set_ylabel("trial (sorted by class, then image)")
    ax.set_title(f"centred cosine (prediction and candidate minus the {centre})", fontsize=9)
    fig.colorbar(im, ax=ax, label=f"cosine centred on the {centre}")
    return fig


def token_cosine_figure(metrics: dict, arrays: dict[str, np.ndarray]) -> Any:
    """Text route: mean cosine per token position, model vs baseline."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    dropped = int(arrays.get("token_cosine_dropped", 0))
    left_out = f" ({dropped} non-finite trials left out)" if dropped else ""
    ax.plot(arrays["token_cosine_curve"], color=MODEL_COLOR, label=f"model{left_out}")
    ax.plot(arrays["baseline_token_cosine_curve"], color=BASELINE_COLOR, label=metrics["settings"]["baseline_label"])
    ax.set_xlabel("token position")
    ax.set_ylabel("mean cosine over trials")
    ax.legend(frameon=False, fontsize=8)
    return fig


def draw_figures(fig_dir: Path, metrics: dict, arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """Draw every figure into ``fig_dir``; returns ``{name: path relative to the report}``."""
    plt = _pyplot()
    fig_dir.mkdir(parents=True, exist_ok=True)
    makers = [
        ("cosine_hist", lambda: cosine_histogram_figure(metrics, arrays), True),
        ("retrieval_vs_k", lambda: retrieval_vs_k_figure(metrics), True),
        ("per_subject", lambda: per_subject_figure(metrics), False),  # laid out with room for its legend
        ("similarity_matrix", lambda: similarity_matrix_figure(metrics, arrays), True),
    ]
    if "token_cosine_curve" in arrays:
        makers.append(("token_cosine", lambda: token_cosine_figure(metrics, arrays), True))
    out: dict[str, str] = {}
    for name, make, tight in makers:
        fig = make()
        if tight:
            fig.tight_layout()
        fig.savefig(fig_dir / f"{name}.png", dpi=110)
        plt.close(fig)
        out[name] = f"figures/{name}.png"
    return out
