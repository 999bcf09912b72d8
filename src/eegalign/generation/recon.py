"""Reconstruction metrics of the EEG/fMRI image-reconstruction literature (MindEye's table).

Every generated image is compared with the original stimulus of its trial:

==========  ==============================================================  =========  ======
metric      definition                                                      better     chance
==========  ==============================================================  =========  ======
pixcorr     Pearson r of RGB pixels, both images resized to 425x425         higher     shuffled
ssim        SSIM of grayscale 425x425 images (Gaussian weights, sigma 1.5)  higher     shuffled
alexnet2    2-way identification on AlexNet layer-2 features (features.4)   higher     0.5
alexnet5    2-way identification on AlexNet layer-5 features (features.11)  higher     0.5
inception   2-way identification on Inception-v3 pool features             higher     0.5
clip        2-way identification on CLIP image embeddings                   higher     0.5
effnet      EfficientNet-B1 pool features: correlation distance 1 - r       lower      shuffled
swav        SwAV ResNet-50 pool features: correlation distance 1 - r        lower      shuffled
fid         Frechet distance of FID-Inception pool features, gen. vs real   lower      none
clip_score  cosine of generated vs original CLIP image embeddings           higher     shuffled
==========  ==============================================================  =========  ======

2-way identification (MindEye's ``two_way_identification``): for generated image j, the share of
the *other* originals whose features correlate less with j's features than j's own original's do
(strict: ties count as failures). Originals are deduplicated by content first, so a stimulus
shown in several trials is never its own distractor.

Besides the sets given (``eeg``, ``true``), a ``shuffled`` set scores the ``eeg`` images against a
seeded derangement of the originals (no trial keeps an image equal to its own): what a decoder that
ignores the trial would get. Where no analytic chance exists, ``chance`` is that baseline's value.
Per-image metrics get a percentile bootstrap 95% CI over trials (the same resamples for every
metric). FID is a set-level statistic computed by torchmetrics from our Inception features; it
has no per-trial values, no CI (one bootstrap resample costs a 2048x2048 eigendecomposition) and
no shuffled row (a permutation does not change it). It uses pytorch-fid's FID Inception (the
standard FID) when ``DIR/fid_inception.pth`` is there, else torchvision's Inception-v3 weights
(comparable between eegalign runs only; a note says so).

Entry point: :func:`reconstruction_metrics`. Feature networks: :mod:`eegalign.generation.featurenets`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import PIL.Image
    import torch

    from eegalign.generation.featurenets.registry import FeatureNet

METRICS = ("pixcorr", "ssim", "alexnet2", "alexnet5", "inception", "clip", "effnet", "swav", "fid", "clip_score")
TWO_WAY = ("alexnet2", "alexnet5", "inception", "clip")
DISTANCES = ("effnet", "swav")
LOWER_IS_BETTER = ("effnet", "swav", "fid")
PIXEL_SIZE = 425
SHUFFLED = "shuffled"
BATCH = 16


@dataclass
class ReconResult:
    """Reconstruction metrics of every image set.

    Attributes:
        summary: {set: {metric: {"value": float, "ci95": [lo, hi] | None, "chance": float | None}}}.
        per_image: {set: {metric: [one value per trial]}} for the per-image metrics (not FID).
        notes: one sentence per metric that was skipped, or caveat that applies.
    """

    summary: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    per_image: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"summary", "notes"}``. ``generation.json``'s ``"reconstruction"`` block is
        ``summary`` alone ({set: {metric: entry}}, what ``eegalign compare`` reads); put the notes beside it."""
        return {"summary": self.summary, "notes": list(self.notes)}

    def per_image_record(self, trial_rows: list[int]) -> dict[str, Any]:
        """The ``reconstruction_per_image.json`` record ``eegalign compare`` reads:
        ``{"trials": trial_rows, "sets": {set: {metric: [value per trial]}}}``.

        Args:
            trial_rows: the predictions-file row (``index``) of each scored trial, in order.
        """
        for name, metrics in self.per_image.items():
            for metric, values in metrics.items():
                if len(values) != len(trial_rows):
                    raise ValueError(f"{name}/{metric} has {len(values)} values for {len(trial_rows)} trials")
        return {"trials": [int(t) for t in trial_rows], "sets": self.per_image}


# ----------------------------------------------------------------------------- pairing


def content_groups(images: list["PIL.Image.Image"]) -> tuple[np.ndarray, list[int]]:
    """Group identical images (same mode, size and pixels).

    Returns:
        group: (N,) int, the index of each image's group in ``[0, U)``;
        first: (U,) the position of each group's first image.
    """
    seen: dict[bytes, int] = {}
    group = np.empty(len(images), dtype=np.int64)
    first: list[int] = []
    for i, img in enumerate(images):
        key = hashlib.sha1(f"{img.mode}{img.size}".encode() + img.tobytes()).digest()
        if key not in seen:
            seen[key] = len(first)
            first.append(i)
        group[i] = seen[key]
    return group, first


def shuffled_pairing(group: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """A seeded permutation ``perm`` with ``group[perm[j]] != group[j]`` for every j (a derangement of images).

    Returns None when none exists (fewer than 2 trials, or one image in more than half of them).
    """
    n = len(group)
    counts = np.bincount(group) if n else np.zeros(1, dtype=np.int64)
    if n < 2 or counts.max() * 2 > n:
        return None
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    for _ in range(1000 * n):  # repair: swap a clashing entry with a random one when that fixes it
        bad = np.flatnonzero(group[perm] == group)
        if bad.size == 0:
            return perm
        j, k = int(bad[0]), int(rng.integers(n))
        if group[perm[k]] != group[j] and group[perm[j]] != group[k]:
            perm[j], perm[k] = perm[k], perm[j]
    return None


# ----------------------------------------------------------------------------- pixels


def image_tensor(img: "PIL.Image.Image", size: int, antialias: bool = True) -> "torch.Tensor":
    """RGB in [0, 1], resized bilinearly (antialiased by default) to ``size`` x ``size``: (3, size, size) float32."""
    import torch
    import torch.nn.functional as F

    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    x = torch.from_numpy(arr).permute(2, 0, 1)[None]  # (1, 3, H, W)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)[0]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of two flattened arrays (float64); 0 when either is constant."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def pixcorr_ssim(generated: "PIL.Image.Image", original: "PIL.Image.Image") -> tuple[float, float]:
    """(PixCorr, SSIM) of one pair, MindEye's convention (425 px; SSIM on grayscale, Gaussian, sigma 1.5)."""
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    g = image_tensor(generated, PIXEL_SIZE).numpy()  # (3, 425, 425)
    o = image_tensor(original, PIXEL_SIZE).numpy()
    r = pearson(g, o)
    g_gray = rgb2gray(g.transpose(1, 2, 0))  # (425, 425) float64
    o_gray = rgb2gray(o.transpose(1, 2, 0))
    s = structural_similarity(g_gray, o_gray, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    return r, float(s)


# ----------------------------------------------------------------------------- features


def zscore_rows(x: "torch.Tensor") -> "torch.Tensor":
    """(B, D) -> rows centred and scaled to unit population std (constant rows -> zeros), float32."""
    x = x.float()
    x = x - x.mean(dim=1, keepdim=True)
    std = x.pow(2).mean(dim=1, keepdim=True).sqrt()
    return x / std.clamp_min(1e-12)


def net_batches(net: "FeatureNet", images: list["PIL.Image.Image"], device: str):
    """Yield {feature name: (b, D) float32 CPU tensor} per batch of ``images``."""
    import torch

    mean = torch.tensor(net.mean).view(1, 3, 1, 1)
    std = torch.tensor(net.std).view(1, 3, 1, 1)
    for start in range(0, len(images), BATCH):
        x = torch.stack([image_tensor(im, net.size, net.antialias) for im in images[start : start + BATCH]])  # (b, 3, S, S)
        with torch.no_grad():
            out = net.module(((x - mean) / std).to(device))  # tensor or dict of tensors
        yield {k: v.detach().float().cpu() for k, v in net.features(out).items()}


def correlations(net: "FeatureNet", originals: list, sets: dict[str, list], device: str) -> tuple[dict, dict]:
    """Feature correlations between the (unique) originals and every image set.

    Returns:
        r: {feature: {set: (U, N) float64 array of Pearson r(original u, generated j)}};
        raw: {feature: {"original": (U, D), set: (N, D)}} for the features in ``net.keep_raw``.
    """
    import torch

    z_orig: dict[str, list] = {}
    raw: dict[str, dict[str, np.ndarray]] = {}
    for feats in net_batches(net, originals, device):
        for k, v in feats.items():
            z_orig.setdefault(k, []).append(zscore_rows(v))
            if k in net.keep_raw:
                raw.setdefault(k, {}).setdefault("original", []).append(v.numpy())
    zo = {k: torch.cat(v) for k, v in z_orig.items()}  # (U, D)
    r: dict[str, dict[str, np.ndarray]] = {k: {} for k in zo}
    for name, images in sets.items():
        cols: dict[str, list] = {k: [] for k in zo}
        for feats in net_batches(net, images, device):
            for k, v in feats.items():
                cols[k].append((zo[k] @ zscore_rows(v).T / v.shape[1]).double().numpy())  # (U, b)
                if k in net.keep_raw:
                    raw[k].setdefault(name, []).append(v.numpy())
        for k in zo:
            r[k][name] = np.concatenate(cols[k], axis=1)  # (U, N)
    raw = {k: {s: np.concatenate(v) for s, v in d.items()} for k, d in raw.items()}
    return r, raw


def two_way(r: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Per generated image j: share of other originals u != own[j] with r[u, j] < r[own[j], j].

    Args:
        r: (U, N) correlation of original u with generated image j (U >= 2).
        own: (N,) index in [0, U) of each generated image's own original.
    """
    cols = np.arange(r.shape[1])
    congruent = r[own, cols]  # (N,)
    wins = r < congruent[None, :]  # (U, N)
    wins[own, cols] = False
    return wins.sum(axis=0) / (r.shape[0] - 1)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of (N, D) arrays (0 for a zero row)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1.0), 0.0)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID of two (N, D) feature sets with torchmetrics' FrechetInceptionDistance (features already extracted).

    The Inception network runs once (its features also serve the 2-way metric); torchmetrics gets
    them through an identity ``feature`` module, which is the same as passing the network itself
    (checked in the tests). Rounding can make the distance of two equal sets slightly negative:
    it is clipped at 0.
    """
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Precomputed(torch.nn.Module):
        """The identity on (N, D) features: torchmetrics' ``feature`` module once the network has run."""

        def __init__(self, dim: int) -> None:
            super().__init__()
            self.num_features = dim

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    fid = FrechetInceptionDistance(feature=Precomputed(real.shape[1]), normalize=True)
    fid.update(torch.from_numpy(np.asarray(real, np.float64)), real=True)
    fid.update(torch.from_numpy(np.asarray(fake, np.float64)), real=False)
    return max(0.0, float(fid.compute()))


# ----------------------------------------------------------------------------- assembling


@dataclass
class _Pairs:
    """What is compared with what: generated image lists and, per scored set, each trial's own original."""

    unique_originals: list  # (U,) PIL images
    images: dict[str, list]  # generated set -> (N,) PIL images (the sets whose features are computed)
    own: dict[str, np.ndarray]  # scored set -> (N,) index into unique_originals
    source: dict[str, str]  # scored set -> the generated set whose images it scores


def _pairs(originals: list, generated: dict[str, list], seed: int, notes: list[str]) -> _Pairs:
    """Deduplicate the originals and add the shuffled-trial pairing of the ``eeg`` set."""
    group, first = content_groups(originals)
    pairs = _Pairs([originals[i] for i in first], dict(generated), {s: group for s in generated}, {s: s for s in generated})
    base = "eeg" if "eeg" in generated else None
    perm = shuffled_pairing(group, seed) if base else None
    if base is None:
        notes.append("shuffled baseline skipped: it scores the 'eeg' set, which was not given.")
    elif perm is None:
        notes.append("shuffled baseline skipped: no re-pairing gives every trial a different original "
                     "(fewer than 2 trials, or one stimulus in more than half of them).")
    else:
        pairs.own[SHUFFLED], pairs.source[SHUFFLED] = group[perm], base
    return pairs


def _pixel_metrics(pairs: _Pairs) -> dict[str, dict[str, np.ndarray]]:
    """{scored set: {"pixcorr": (N,), "ssim": (N,)}}."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, own in pairs.own.items():
        images = pairs.images[pairs.source[name]]
        vals = np.array([pixcorr_ssim(img, pairs.unique_originals[u]) for img, u in zip(images, own)], dtype=np.float64)
        out[name] = {"pixcorr": vals[:, 0], "ssim": vals[:, 1]}
    return out


def _network_metrics(net: "FeatureNet", pairs: _Pairs, device: str, notes: list[str]) -> tuple[dict, dict]:
    """Per-image metrics of one network for every scored set, and its FID per generated set."""
    r, raw = correlations(net, pairs.unique_originals, pairs.images, device)
    per: dict[str, dict[str, np.ndarray]] = {name: {} for name in pairs.own}
    n_unique = len(pairs.unique_originals)
    for feat, by_set in r.items():
        for name, own in pairs.own.items():
            rr = by_set[pairs.source[name]]  # (U, N)
            if feat in TWO_WAY and n_unique >= 2:
                per[name][feat] = two_way(rr, own)
            elif feat in DISTANCES:
                per[name][feat] = 1.0 - rr[own, np.arange(rr.shape[1])]
    if "clip" in raw:
        for name, own in pairs.own.items():
            per[name]["clip_score"] = cosine_rows(raw["clip"][pairs.source[name]], raw["clip"]["original"][own])
    fid: dict[str, float] = {}
    for feat in ("fid_inception", "inception"):
        if feat not in raw:
            continue
        for name in pairs.images:
            if len(pairs.images[name]) >= 2:
                fid[name] = frechet_distance(raw[feat]["original"][pairs.own[name]], raw[feat][name])
    return per, fid


def _feature_nets(models_dir: str | None, device: str, notes: list[str]):
    """Yield, one at a time (one network in memory), every network whose weights are in ``models_dir``;
    append one note per metric that cannot run."""
    from eegalign.generation.featurenets.registry import METRICS_OF, WEIGHT_FILES, find_weight, load_feature_net

    for name, metrics in METRICS_OF.items():
        fname = WEIGHT_FILES[name][0]
        path = find_weight(models_dir, name) if models_dir else None
        reason = (f"no --recon-models DIR was given (it needs DIR/{fname})" if not models_dir
                  else f"no weights in {models_dir} (expected {Path(models_dir).expanduser() / fname})")
        if path is not None:
            try:
                net = load_feature_net(name, path, device)
            except Exception as exc:  # noqa: BLE001 - a bad weight skips its metrics, the others still run
                err = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                notes.extend(f"{m}: {path} could not be loaded ({err})." for m in metrics)
                continue
            yield net
            continue
        notes.extend(f"{m} skipped: {reason}." for m in metrics if m != "fid")  # a missing FID: see _fid_note


def _fid_note(nets_used: list[str], n_images: int, models_dir: str | None) -> str | None:
    """The sentence about FID: skipped, or computed on torchvision's Inception (not the standard FID)."""
    if "fid_inception" in nets_used:
        return None
    if "inception" in nets_used:
        if n_images < 2:
            return "fid skipped: it needs at least 2 images per set."
        return ("fid uses torchvision's Inception-v3 weights (inception_v3.pth), not the FID Inception: comparable "
                "between eegalign runs, not with papers' FIDs; add DIR/fid_inception.pth "
                "(pytorch-fid's pt_inception-2015-12-05-6726825d.pth) for the standard FID.")
    where = f"in {models_dir}" if models_dir else "(no --recon-models DIR was given)"
    return f"fid skipped: no usable Inception weights {where} (it needs DIR/fid_inception.pth or DIR/inception_v3.pth)."


def _summarise(per: dict[str, dict[str, np.ndarray]], fid: dict[str, float], n_boot: int, seed: int) -> dict:
    """{set: {metric: {"value", "ci95", "chance"}}} in :data:`METRICS` order."""
    from eegalign.generation.nway import bootstrap_ci

    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for name, metrics in per.items():
        summary[name] = {}
        for m in METRICS:
            if m == "fid" and name in fid:
                summary[name][m] = {"value": fid[name], "ci95": None, "chance": None}
            elif m in metrics:
                vals = metrics[m]
                shuffled = per.get(SHUFFLED, {}).get(m)
                chance = 0.5 if m in TWO_WAY else (float(np.mean(shuffled)) if shuffled is not None else None)
                lo, hi = bootstrap_ci(vals, n_boot=n_boot, seed=seed)
                summary[name][m] = {"value": float(np.mean(vals)), "ci95": [lo, hi], "chance": chance}
    return summary


def check_models_dir(models_dir: str | None) -> list[str]:
    """Validate ``--recon-models`` before any work: the metrics that will run (weights present).

    Raises:
        WeightsError: ``models_dir`` is given but is not a directory.
    """
    from eegalign.errors import WeightsError
    from eegalign.generation.featurenets.registry import METRICS_OF, find_weight

    if models_dir is not None and not Path(models_dir).expanduser().is_dir():
        raise WeightsError(f"--recon-models directory not found: {models_dir}; pass the directory holding "
                           "alexnet.pth, inception_v3.pth, efficientnet_b1.pth, swav_resnet50.pth and clip/ (docs/generation.md)")
    found = {name for name in METRICS_OF if models_dir is not None and find_weight(models_dir, name) is not None}
    return [m for m in METRICS if m in ("pixcorr", "ssim") or any(m in METRICS_OF[n] for n in found)]


def reconstruction_metrics(
    originals: list["PIL.Image.Image"],
    generated: dict[str, list["PIL.Image.Image"]],
    models_dir: str | None,
    device: str = "cpu",
    n_boot: int = 1000,
    seed: int = 0,
) -> ReconResult:
    """MindEye's reconstruction metrics of every generated set against the original stimuli.

    Args:
        originals: (N,) the stimulus image of each generated trial.
        generated: set name (``"eeg"``, ``"true"``) -> (N,) images aligned with ``originals``.
        models_dir: the ``--recon-models`` directory (layout in
            :mod:`eegalign.generation.featurenets.registry`); None: only PixCorr and SSIM.
        device: torch device of the feature networks (``"auto"``: CUDA when available).
        n_boot: bootstrap resamples of the 95% CIs.
        seed: seed of the shuffled pairing and of the bootstrap.

    Returns:
        :class:`ReconResult` with the given sets plus ``"shuffled"`` (the ``eeg`` images scored
        against a derangement of the originals). A metric whose weights are missing is left out,
        with one sentence in ``notes``.
    """
    from eegalign.devices import resolve_device
    from eegalign.errors import DataError

    device = str(resolve_device(device))
    n = len(originals)
    for name, images in generated.items():
        if len(images) != n:
            raise DataError(f"reconstruction metrics: set '{name}' has {len(images)} images for {n} originals")
    notes: list[str] = []
    if n == 0:
        return ReconResult(notes=["reconstruction metrics skipped: no trials."])
    pairs = _pairs(originals, generated, seed, notes)
    per = _pixel_metrics(pairs)
    fid: dict[str, float] = {}
    used: list[str] = []
    for net in _feature_nets(models_dir, device, notes):
        net_per, net_fid = _network_metrics(net, pairs, device, notes)
        for name, metrics in net_per.items():
            per[name].update(metrics)
        fid.update(net_fid)  # the FID Inception comes last and replaces the torchvision Inception's
        used.append(net.name)
    fid_note = _fid_note(used, n, models_dir)
    if fid_note:
        notes.append(fid_note)
    if len(pairs.unique_originals) < 2 and models_dir:
        notes.append("2-way identification skipped: it needs at least 2 distinct original images.")
    summary = _summarise(per, fid, n_boot, seed)
    per_image = {s: {m: [float(v) for v in per[s][m]] for m in METRICS if m in per[s]} for s in per}
    return ReconResult(summary=summary, per_image=per_image, notes=notes)


def markdown_table(result: ReconResult) -> str:
    """The metric table (rows = sets, columns = metrics) as Markdown: value [CI] and a chance row."""
    sets = list(result.summary)
    metrics = [m for m in METRICS if any(m in result.summary[s] for s in sets)]
    head = "| set | " + " | ".join(m + (" ↓" if m in LOWER_IS_BETTER else " ↑") for m in metrics) + " |"
    lines = [head, "|" + "---|" * (len(metrics) + 1)]
    for s in sets:
        cells = []
        for m in metrics:
            e = result.summary[s].get(m)
            ci = f" [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]" if e and e["ci95"] else ""
            cells.append(f"{e['value']:.3f}{ci}" if e else "—")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    chance = [next((result.summary[s][m]["chance"] for s in sets if m in result.summary[s]), None) for m in metrics]
    lines.append("| chance | " + " | ".join("—" if c is None else f"{c:.3f}" for c in chance) + " |")
    return "\n".join(lines)
