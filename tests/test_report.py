"""The report states provenance, the block-design caveat, chance, CIs, baselines and p-values, with figures."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from eegalign.metrics import compute_metrics
from eegalign.report import BLOCK_DESIGN_CAVEAT, Section, render_html, render_markdown, write_report


def _report(tmp_path: Path, route: str, train: bool) -> tuple[dict, str, str]:
    rng = np.random.default_rng(0)
    shape = (24,) if route == "image" else (7, 6)
    n_img, subjects = 15, 3
    img = rng.normal(size=(n_img, *shape)).astype(np.float32)
    true = np.repeat(img, subjects, axis=0)
    pred = (true + rng.normal(size=true.shape)).astype(np.float32)
    ids = [f"i{i}" for i in range(n_img) for _ in range(subjects)]
    label, subject = np.repeat(np.arange(n_img) % 5, subjects), np.tile(np.arange(1, subjects + 1), n_img)
    kw = dict(train_targets=rng.normal(size=(25, *shape)), train_labels=np.arange(25) % 5) if train else {}
    metrics, arrays = compute_metrics(pred, true, ids, label, subject, n_boot=100, n_perm=99, **kw)
    ctx = {"model": "eegformer", "split": "test", "checkpoint": "runs/x/best.ckpt", "epoch": 7, "encoder": {"name": "eegformer"}}
    write_report(tmp_path, metrics, arrays, None, ctx)
    return metrics, (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()


def test_image_report_states_everything(tmp_path: Path) -> None:
    m, md, page = _report(tmp_path, "image", train=True)
    assert "Li et al. 2020" in md and "block design" in md
    for needle in ("runs/x/best.ckpt", "eegformer", "Split protocol", "Permutation test", "Per subject", "tie"):
        assert needle in md, needle
    # every accuracy row carries a CI and a chance level; every retrieval key appears
    rows = [line for line in md.splitlines() if re.match(r"\| (all-way|\d+-way|top-)", line)]
    assert len(rows) >= len(m["retrieval"]) + 2
    for line in rows:
        assert re.search(r"\d+\.\d% \[\d+\.\d%, \d+\.\d%\]", line) and line.rstrip(" |").endswith("%"), line
    assert f"{100 * m['retrieval']['all_top1']['chance']:.1f}%" in md
    assert "| cosine | " in md and "train mean" in md
    assert not re.search(r"\bnan\b", md.lower())
    assert md.count("\n| 1 |") == 1 and md.count("\n| 3 |") == 1  # one row per subject
    # figures exist, are PNGs, and the HTML references them relatively
    srcs = re.findall(r"<img src='([^']+)'", page)
    assert {"figures/cosine_hist.png", "figures/retrieval_vs_k.png", "figures/per_subject.png", "figures/similarity_matrix.png"} <= set(srcs)
    for s in srcs:
        assert (tmp_path / s).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Warning" not in md  # train targets were given


def test_text_report_without_train_targets(tmp_path: Path) -> None:
    m, md, page = _report(tmp_path, "text", train=False)
    assert "Text route: token metrics" in md and "figures/token_cosine.png" in page
    assert "Uncentred (raw)" in md and "centred on the split mean target" in md
    assert "**Warning.**" in md and "<strong>Warning.</strong>" in page
    assert "split mean (no train targets given; optimistic)" in md
    assert "share of (trial, token) cosines > 0.98" in md


def test_renderers_escape_and_keep_order() -> None:
    s = Section("A <b>")
    s.p("first **bold** `code`")
    s.table(["h|1", "h2"], [["x|y", "<i>"]])
    s.p("second")
    md, page = render_markdown("T", "sub", [s]), render_html("T", "sub", [s])
    assert md.index("first") < md.index("x\\|y") < md.index("second")
    assert "&lt;i&gt;" in page and "<strong>bold</strong>" in page and "<code>code</code>" in page
    assert "A &lt;b&gt;" in page and BLOCK_DESIGN_CAVEAT.startswith("The CVPR40")


def _clip_like(tmp_path: Path, train: bool, route: str = "image") -> tuple[dict, dict, np.ndarray, np.ndarray, np.ndarray]:
    """Targets sharing a large mean direction, as CLIP embeddings do: (metrics, arrays, pred, cands, centre)."""
    rng = np.random.default_rng(1)
    shape = (32,) if route == "image" else (4, 8)
    n_img, subjects = 12, 2
    mean_dir = 3.0 * np.ones(shape, np.float32)
    img = (mean_dir + rng.normal(size=(n_img, *shape))).astype(np.float32)
    true = np.repeat(img, subjects, axis=0)
    pred = (true + rng.normal(size=true.shape)).astype(np.float32)
    ids = [f"i{i}" for i in range(n_img) for _ in range(subjects)]
    label, subject = np.repeat(np.arange(n_img) % 4, subjects), np.tile(np.arange(1, subjects + 1), n_img)
    train_t = (mean_dir + rng.normal(size=(20, *shape))).astype(np.float32)
    kw = dict(train_targets=train_t, train_labels=np.arange(20) % 4) if train else {}
    metrics, arrays = compute_metrics(pred, true, ids, label, subject, n_boot=50, n_perm=49, **kw)
    centre = (train_t if train else img).astype(np.float64).mean(0)
    return metrics, arrays, pred, img, centre


def _capture_imshow(monkeypatch) -> list[np.ndarray]:
    import matplotlib.axes

    seen: list[np.ndarray] = []
    orig = matplotlib.axes.Axes.imshow

    def imshow(self, x, *a, **kw):
        seen.append(np.asarray(x))
        return orig(self, x, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", imshow)
    return seen


def _centred_cosine(pred: np.ndarray, cands: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Reference by hand: (N, F), (M, F), (F,) -> (N, M) cosine after subtracting ``centre``."""
    p = pred.reshape(len(pred), -1) - centre.reshape(-1)
    c = cands.reshape(len(cands), -1) - centre.reshape(-1)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    return p @ c.T


def test_similarity_matrix_figure_shows_centred_cosine(tmp_path: Path, monkeypatch) -> None:
    """Raw cosine of embeddings sharing a mean direction is nearly uniform: the figure centres on the train mean."""
    for route, train in (("image", True), ("image", False), ("text", True)):
        seen = _capture_imshow(monkeypatch)
        m, arrays, pred, cands, centre = _clip_like(tmp_path, train, route)
        out = tmp_path / f"{route}-{train}"
        write_report(out, m, arrays, None, {"model": "x", "split": "test"})
        (shown,) = seen
        expected = _centred_cosine(pred, cands, centre)  # (N, M), candidates in first-seen order = image order
        np.testing.assert_allclose(np.sort(shown.ravel()), np.sort(expected.ravel()), atol=1e-5)
        assert shown.std() > 0.2, "centred cosine spreads over the colour scale"
        md = (out / "report.md").read_text()
        which = "train mean" if train else "split mean"
        caption = next(line for line in md.splitlines() if line.startswith("![") and "similarity_matrix" in line)
        assert "centred cosine" in caption.lower() and which in caption, caption
        monkeypatch.undo()


def test_per_subject_table_states_chance(tmp_path: Path) -> None:
    """Every accuracy column of the per-subject table carries its chance level."""
    m, md, _ = _report(tmp_path, "image", train=True)
    sec = md.split("## Per subject", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in sec.splitlines() if line.startswith("| subject"))
    chance = {
        "all top1": m["retrieval"]["all_top1"]["chance"], "all top5": m["retrieval"]["all_top5"]["chance"],
        "2way top1": m["retrieval"]["2way_top1"]["chance"], "classification top1": m["classification"]["top1"]["chance"],
    }
    for col, c in chance.items():
        assert f"{col} (chance {100 * c:.1f}%)" in header, (col, header)
    assert "| cosine" in header and "cosine (chance" not in header


def test_cosine_histogram_survives_a_diverged_prediction(tmp_path: Path, monkeypatch) -> None:
    """A NaN prediction (a diverged model) must not blank the histogram: finite trials are drawn, the rest counted."""
    import matplotlib.axes

    drawn: list[float] = []
    labels: list[str] = []
    orig = matplotlib.axes.Axes.hist

    def hist(self, x, *a, **kw):
        counts, bins, patches = orig(self, x, *a, **kw)
        drawn.append(float(np.sum(counts)))
        labels.append(kw.get("label", ""))
        return counts, bins, patches

    monkeypatch.setattr(matplotlib.axes.Axes, "hist", hist)
    rng = np.random.default_rng(0)
    img = rng.normal(size=(10, 16)).astype(np.float32)
    true = np.repeat(img, 2, axis=0)
    pred = (true + rng.normal(size=true.shape)).astype(np.float32)
    pred[3] = np.nan
    ids = [f"i{i}" for i in range(10) for _ in range(2)]
    m, arrays = compute_metrics(pred, true, ids, np.repeat(np.arange(10) % 2, 2), np.tile([1, 2], 10), n_boot=20, n_perm=19)
    write_report(tmp_path, m, arrays, None, {"model": "x", "split": "test"})
    assert drawn == [20.0, 19.0], drawn  # baseline: every trial; model: all but the NaN one
    assert "1 non-finite trial not shown" in labels[1] and "non-finite" not in labels[0], labels


def test_synthetic_source_recognised_from_another_directory(synthetic_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A cache prepared from a relative synthetic path is still labelled synthetic when evaluated elsewhere."""
    from eegalign.data.cache import prepare_cache

    monkeypatch.chdir(synthetic_dir.parent)
    cache = prepare_cache(synthetic_dir.name, tmp_path / "cache", progress=False)  # manifest source: "ds"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rng = np.random.default_rng(0)
    true = np.repeat(rng.normal(size=(6, 8)).astype(np.float32), 2, axis=0)
    ids = [f"i{i}" for i in range(6) for _ in range(2)]
    m, arrays = compute_metrics(true + 0.1, true, ids, np.repeat(np.arange(6) % 2, 2), np.tile([1, 2], 6), n_boot=20, n_perm=19)
    write_report(tmp_path / "rep", m, arrays, None, {"model": "x", "split": "test", "cache": str(cache)})
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "Synthetic data (`eegalign data synth`)" in md


def _toy_run(tmp_path: Path, name: str, n_img: int, seed: int) -> Path:
    from eegalign.io import write_json

    rng = np.random.default_rng(seed)
    true = np.repeat(rng.normal(size=(n_img, 16)).astype(np.float32), 2, axis=0)
    pred = (true + rng.normal(size=true.shape)).astype(np.float32)
    ids = [f"i{i}" for i in range(n_img) for _ in range(2)]
    m, _ = compute_metrics(pred, true, ids, np.repeat(np.arange(n_img) % 4, 2), np.tile([1, 2], n_img), n_boot=20, n_perm=19)
    write_json(tmp_path / name / "metrics.json", m)
    return tmp_path / name


def test_comparison_shows_each_runs_baseline_and_chance(tmp_path: Path, monkeypatch) -> None:
    """compare.md puts the baseline beside every accuracy; compare.png draws each run's own chance level."""
    import json

    import matplotlib.figure

    from eegalign.report import write_comparison

    dashed_y: set[float] = set()
    orig = matplotlib.figure.Figure.savefig

    def savefig(self, *a, **kw):
        ax = self.axes[0]
        for line in ax.lines:
            if line.get_linestyle() == "--":
                dashed_y.update(round(float(y), 6) for y in line.get_ydata())
        return orig(self, *a, **kw)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    runs = [_toy_run(tmp_path, "small", 12, 0), _toy_run(tmp_path, "large", 20, 1)]
    out = write_comparison(runs, tmp_path / "cmp")
    assert {round(1 / 12, 6), round(1 / 20, 6)} <= dashed_y, dashed_y
    md = (out / "compare.md").read_text()
    for run in runs:
        m = json.loads((run / "metrics.json").read_text())
        b = m["baselines"]["train_mean"]["retrieval"]["all_top1"]["value"]
        row = next(line for line in md.splitlines() if line.startswith(f"| {run.name} |"))
        assert f"baseline {100 * b:.1f}%" in row, row


def test_per_subject_figure_leaves_unscored_subjects_empty(tmp_path: Path, monkeypatch) -> None:
    """A subject whose trials have no class prototype is 'n/a' in the table and no bar in the figure, not 0."""
    import matplotlib.axes

    heights: list[list[float]] = []
    orig = matplotlib.axes.Axes.bar

    def bar(self, x, height, *a, **kw):
        heights.append([float(h) for h in np.atleast_1d(height)])
        return orig(self, x, height, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", bar)
    rng = np.random.default_rng(0)
    true = rng.normal(size=(12, 16)).astype(np.float32)  # 12 images, one trial each
    subject = np.repeat([1, 2, 3], 4)
    label = np.array([0, 1, 0, 1, 1, 0, 1, 0, 2, 2, 2, 2])  # subject 3 saw only class 2
    train = rng.normal(size=(8, 16)).astype(np.float32)
    m, arrays = compute_metrics(true + 0.1, true, [f"i{i}" for i in range(12)], label, subject, n_boot=20, n_perm=19,
                                train_targets=train, train_labels=np.arange(8) % 2)  # prototypes for classes 0, 1
    assert m["per_subject"]["3"]["classification_top1"] is None
    write_report(tmp_path, m, arrays, None, {"model": "x", "split": "test"})
    model_cls, base_cls = heights[-2:]  # the classification panel: model bars, baseline bars
    assert np.isnan(model_cls[2]) and np.isnan(base_cls[2]), (model_cls, base_cls)
    assert not np.isnan(model_cls[:2]).any()


def test_markdown_figure_caption_escapes_asterisks() -> None:
    """The "split mean*" footnote mark must not close the caption's italics early."""
    s = Section("S")
    s.fig("figures/x.png", "cosine of the split mean* baseline")
    md = render_markdown("T", "sub", [s])
    assert "*cosine of the split mean\\* baseline*" in md and "![cosine of the split mean\\* baseline](figures/x.png)" in md
    assert "split mean* baseline" in render_html("T", "sub", [s])  # HTML shows it as is
