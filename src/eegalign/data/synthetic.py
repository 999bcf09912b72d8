"""Synthetic EEG simulator with known ground truth (the embedded default data set).

It writes a data set in the exact layout of the Hugging Face data set
``luigi-s/EEG_Image_CVPR_ALL_subj`` (``train/validation/test.parquet``; columns
``image, conditioning_image, caption, label_folder, label, subject``) plus the ground-truth
CLIP-like targets in the cache's target format, so that every downstream stage (prepare,
train, evaluate, generate) runs offline on data whose answer is known.

Generative model (all random quantities drawn from ``numpy.random.default_rng`` streams
derived from ``seed``; ``d = 32`` latent dimensions, ``K = 6`` evoked components):

Latents. Class ``c`` has a prototype ``p_c ~ N(0, I_d)``; image ``i`` of class ``c`` has

    z_i = p_c + s * e_i,      e_i ~ N(0, I_d),  s = 0.6.

Image target (mimics IP-Adapter CLIP ``image_embeds``, unit norm, with a shared mean
direction ``m`` as real CLIP embeddings have)::

    y_i = normalize(alpha * m + W_img z_i / sqrt(d (1 + s^2)) + eta * n_i),
    W_img ~ N(0, 1/D)^(D x d), alpha = 1.0, eta = 0.15, n_i ~ N(0, I_D / D).

Text target (mimics SD-1.5 CLIP text ``last_hidden_state``, 77 x 768, per-token norm ~28).
The caption is ``"<template> <class name>"``; token roles by position: 0 = start token,
1..4 = template words, 5..7 = class-name tokens, 8 = end token, 9..76 = padding::

    h_0     = 28 * b_0                                    (identical for every caption)
    h_j     = 28 * normalize(b_j + 0.6 u_{tpl,j})          j = 1..4 (template only: causal)
    h_j     = 28 * normalize(0.5 b_j + P_j p_c / sqrt(d) + 0.35 E_j e_i / sqrt(d)
                             + 0.2 u_{tpl,j})               j = 5..7
    h_j     = 28 * normalize(b_j + 0.03 (P_j p_c + E_j e_i) / sqrt(d) + 0.01 xi_ij)  j >= 8

with unit-norm base vectors ``b_j``, projections ``P_j, E_j ~ N(0, 1/768)`` and template
vectors ``u``. Start tokens are constant, padding is nearly constant, class tokens carry the
class (and a weaker image-specific part).

EEG (``C`` channels, ``T`` samples at ``sfreq``). Channels sit on a hemisphere (Fibonacci
lattice; +y anterior). Subject ``s`` has a smooth spatial mixing matrix ``M_s`` (C x K): each
column is a dipolar pattern (a positive minus a weaker negative Gaussian blob) whose centre,
width and gain are jittered per subject around a shared template. Component ``k`` has a fixed
waveform ``w_k(t)``: a gamma-shaped ERP or a damped oscillation starting at a latency in
80-400 ms, shifted per trial by a jitter ``delta ~ N(0, 6 ms)``. Its amplitude on trial
``(s, i)`` is a linear and non-linear function of the latent::

    a_ik = mu_k + g_s,k * [ (G z_i)_k + 0.6 tanh(2 (H z_i)_k) + 0.4 ((Q z_i)_k^2 - 1) / sqrt(2) ]
           + 0.35 * nu_ik,       nu ~ N(0, 1) (trial-to-trial variability)

with ``G, H, Q ~ N(0, 1 / (d (1 + s^2)))`` (unit-variance projections), stimulus-independent
mean ERP ``mu_k`` and subject gains ``g_s,k``. The trial is::

    x(t) = sum_k M_s[:, k] a_ik w_k(t - delta_ik) + sigma * (0.55 n_pink,mixed + 0.2 n_pink,sensor
                                                            + 0.15 n_alpha + 0.1 n_drift)

(weights are power fractions). ``n_pink,mixed`` is 1/f noise of 24 sources mixed through
smooth random maps; ``n_pink,sensor`` independent 1/f noise per channel; ``n_alpha`` a ~10 Hz
rhythm with random phase and frequency, occipitally weighted; ``n_drift`` a per-channel
random walk. Every noise term has unit expected power averaged over channels and samples (the
mixed and alpha terms are stronger on some channels than others); ``sigma^2 = P_signal / snr`` where
``P_signal`` is the mean power (over channels, time, subjects and images) of the evoked term.
Values are in microvolt-like units (noise std ~10).

Stimuli. Each class has a shape (circle, square, triangle, star, ...), a colour palette and a
background pattern; each image's position, size, rotation, hue, saturation, brightness and
number of distractor dots follow its own latent deviation ``e_i`` (so visible differences track
target differences), plus pixel noise. JPEG,
``image_size`` squared, RGB. ``image_id`` = first 16 hex chars of sha1 of the JPEG bytes.

Splits are by image (all subjects' trials of an image share a split), stratified by class.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.data.sources import image_id_from_bytes  # one definition of an image id, shared with the readers
from eegalign.errors import ConfigError, DataError

__all__ = ["SyntheticWorld", "image_id_from_bytes", "write_synthetic_dataset", "SPLITS"]

SPLITS = ("train", "validation", "test")
LATENT_DIM = 32
N_COMPONENTS = 6
IMAGE_DEVIATION = 0.6  # s in z_i = p_c + s e_i
MEAN_ERP = (0.5, 1.0)  # range of the stimulus-independent ERP amplitude mu_k
TRIAL_VARIABILITY = 0.35  # std of the per-trial amplitude noise nu
LATENCY_JITTER_S = 0.006  # std of the per-trial latency jitter (seconds)
TEXT_NORM = 28.0
TEMPLATES = ("an image of {}", "a photo of {}", "a picture of {}", "a photograph of {}")
_CHUNK = 128  # trials generated per vectorised block (fixed: part of the deterministic stream)
_NOISE_SOURCES = 24  # 1/f sources mixed through smooth maps (n_pink,mixed)
_BLOCK_STREAM = 0xB10C  # seeds the block-design stream apart from every default stream
ORDER_COLUMNS = ("session", "block", "trial_index")  # written only for the blocked layout


@dataclass(frozen=True)
class SynthParams:
    """All generator parameters (written to ``synthetic.json``)."""

    subjects: int = 6
    classes: int = 40
    images_per_class: int = 5
    seed: int = 0
    snr: float = 1.0
    n_chans: int = 128
    n_times: int = 440
    sfreq: float = 1000.0
    image_dim: int = 1024
    text_shape: tuple[int, int] = (77, 768)
    image_size: int = 128
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    eeg_layout: str = "nested"
    drift: float = 0.0  # block-design confound strength (noise-SD units); > 0 implies blocked
    blocked: bool = False  # class-block presentation order per subject session (+ session/block/trial_index columns)

    def validate(self) -> None:
        from eegalign.data.classes import cvpr40_classes

        n_table = len(cvpr40_classes())
        checks = [
            (self.subjects >= 1, "subjects must be >= 1"),
            (self.seed >= 0, "seed must be a non-negative integer"),
            (1 <= self.classes <= n_table, f"classes must be between 1 and {n_table}"),
            (self.images_per_class >= 1, "images_per_class must be >= 1"),
            (self.snr > 0 and math.isfinite(self.snr), "snr must be a positive number"),
            (self.n_chans >= 1 and self.n_times >= 1, "n_chans and n_times must be >= 1"),
            (self.sfreq > 0, "sfreq must be positive"),
            (self.image_dim >= 1, "image_dim must be >= 1"),
            (len(self.text_shape) == 2 and min(self.text_shape) >= 1, "text_shape must be (tokens, width)"),
            (self.image_size >= 16, "image_size must be >= 16"),
            (self.eeg_layout in ("nested", "array"), "eeg_layout must be 'nested' or 'array'"),
            (self.drift >= 0 and math.isfinite(self.drift), "drift must be a non-negative number"),
            (
                len(self.split_fractions) == 3
                and min(self.split_fractions) >= 0
                and self.split_fractions[0] > 0
                and abs(sum(self.split_fractions) - 1.0) < 1e-6,
                "split_fractions must be three non-negative numbers (train > 0) summing to 1",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"synthetic data: {msg}")
        n_pos = sum(f > 0 for f in self.split_fractions)
        if self.classes * self.images_per_class < n_pos:
            raise ConfigError(
                f"synthetic data: {self.classes * self.images_per_class} images cannot fill {n_pos} splits; "
                "increase classes or images_per_class"
            )


# --------------------------------------------------------------------------------------------
# helpers


def _with_article(name: str) -> str:
    """'giant panda' -> 'a giant panda', 'airliner' -> 'an airliner'."""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x / np.linalg.norm(x, axis=axis, keepdims=True)


def _channel_positions(n: int) -> np.ndarray:
    """(n, 3) unit vectors on the upper hemisphere (Fibonacci lattice); +y anterior, +z vertex."""
    k = np.arange(n) + 0.5
    zc = 1.0 - k / n  # (0, 1]: vertex to ear level
    r = np.sqrt(1.0 - zc**2)
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), zc], axis=1)


def _blob(pos: np.ndarray, centre: np.ndarray, width: float) -> np.ndarray:
    """Gaussian blob over channel positions: (C, 3), (3,) -> (C,)."""
    d2 = np.sum((pos - centre) ** 2, axis=1)
    return np.exp(-d2 / (2.0 * width**2))


def _pink(rng: np.random.Generator, shape: tuple[int, ...], n_times: int) -> np.ndarray:
    """1/f noise along the last axis with unit variance per series: (..., T) float32."""
    white = rng.standard_normal((*shape, n_times), dtype=np.float32)
    spec = np.fft.rfft(white, axis=-1)
    f = np.arange(spec.shape[-1], dtype=np.float32)
    f[0] = 1.0
    spec *= (1.0 / np.sqrt(f)).astype(np.float32)
    spec[..., 0] = 0.0
    x = np.fft.irfft(spec, n=n_times, axis=-1).astype(np.float32)
    # Normalise by the theoretical std (keeps trials comparable; no per-trial rescaling).
    scale = np.sqrt(np.sum(2.0 / f[1:]) / n_times**2 * n_times) if n_times > 1 else 1.0
    return x / np.float32(max(scale, 1e-12))


def _stratified_split(rng: np.random.Generator, n_classes: int, per_class: int, fractions) -> np.ndarray:
    """Split index (0 train, 1 validation, 2 test) for every image, class-major order.

    Images are dealt round-robin over classes (random class order per round, random image
    order within a class); the first images dealt go to test, then validation, then train, so
    every split is as class-balanced as its size allows.
    """
    m = n_classes * per_class
    raw = np.asarray(fractions, dtype=float) * m
    counts = np.floor(raw).astype(int)
    for j in np.argsort(-(raw - counts), kind="stable")[: m - counts.sum()]:
        counts[j] += 1
    for j in (2, 1, 0):  # every split with a positive fraction gets at least one image,
        if fractions[j] > 0 and counts[j] == 0:  # from train while it can spare one, else from the largest split
            counts[0 if counts[0] > 1 else int(np.argmax(counts))] -= 1
            counts[j] = 1
    order = np.stack([rng.permutation(per_class) for _ in range(n_classes)])  # (classes, per_class)
    dealt = [c * per_class + order[c, r] for r in range(per_class) for c in rng.permutation(n_classes)]
    split = np.zeros(m, dtype=np.int64)
    split[dealt[: counts[2]]] = 2
    split[dealt[counts[2] : counts[2] + counts[1]]] = 1
    return split


# --------------------------------------------------------------------------------------------
# stimuli

_SHAPES = ("circle", "square", "triangle", "star", "hexagon", "cross", "ring", "diamond")
_PATTERNS = ("plain", "stripes", "dots", "checker", "gradient")


def _palette(c: int) -> tuple[float, float]:
    """Class hue (0..1) and background hue, spread over the colour wheel."""
    hue = (c * 0.618034) % 1.0
    return hue, (hue + 0.5 + 0.1 * ((c % 3) - 1)) % 1.0


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _draw_background(draw: Any, pattern: str, size: int, bg_hue: float) -> None:
    """Paint the class's background ``pattern`` (plain, stripes, dots, checker, gradient) over a ``size``-pixel square.

    ``draw`` (a ``PIL.ImageDraw.ImageDraw``) draws on an image already filled with the background colour.
    """
    fg2 = _hsv(bg_hue, 0.45, 0.65)
    step = max(size // 8, 4)
    if pattern == "stripes":
        for x in range(0, size, step):
            draw.rectangle([x, 0, x + step // 2, size], fill=fg2)
    elif pattern == "dots":
        for x in range(step // 2, size, step):
            for y in range(step // 2, size, step):
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=fg2)
    elif pattern == "checker":
        for x in range(0, size, step):
            for y in range(0, size, step):
                if (x // step + y // step) % 2:
                    draw.rectangle([x, y, x + step, y + step], fill=fg2)
    elif pattern == "gradient":
        for y in range(size):
            draw.line([0, y, size, y], fill=_hsv(bg_hue, 0.2 + 0.5 * y / size, 0.9))


def _draw_shape(
    draw: Any, shape: str, cx: float, cy: float, rad: float, rot: float, colour: tuple[int, int, int]
) -> None:
    """Draw the class object ``shape`` centred at (``cx``, ``cy``) with radius ``rad``, rotation ``rot`` (radians)."""

    def poly(n: int, r_in: float | None = None) -> list[tuple[float, float]]:
        pts = []
        for j in range(n * (2 if r_in else 1)):
            r = rad if (r_in is None or j % 2 == 0) else r_in
            a = rot + j * math.pi * (2 if r_in is None else 1) / n
            pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
        return pts

    box = [cx - rad, cy - rad, cx + rad, cy + rad]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=max(int(rad * 0.35), 2))
    elif shape == "square":
        draw.polygon(poly(4), fill=colour)
    elif shape == "diamond":
        draw.polygon([(cx, cy - rad), (cx + 0.6 * rad, cy), (cx, cy + rad), (cx - 0.6 * rad, cy)], fill=colour)
    elif shape == "triangle":
        draw.polygon(poly(3), fill=colour)
    elif shape == "hexagon":
        draw.polygon(poly(6), fill=colour)
    elif shape == "star":
        draw.polygon(poly(5, rad * 0.45), fill=colour)
    else:  # cross
        w = rad * 0.35
        draw.rectangle([cx - rad, cy - w, cx + rad, cy + w], fill=colour)
        draw.rectangle([cx - w, cy - rad, cx + w, cy + rad], fill=colour)


def _draw_stimulus(c: int, e: np.ndarray, size: int, rng: np.random.Generator) -> bytes:
    """JPEG bytes of the stimulus of class ``c`` whose deviation latent is ``e`` (d,)."""
    from PIL import Image, ImageDraw
    from scipy.special import ndtr

    u = ndtr(e[:8])  # image factors in (0, 1), driven by the latent deviation
    hue, bg_hue = _palette(c)
    shape = _SHAPES[c % len(_SHAPES)]
    pattern = _PATTERNS[(c // len(_SHAPES)) % len(_PATTERNS)]
    img = Image.new("RGB", (size, size), _hsv(bg_hue, 0.25, 0.85))
    draw = ImageDraw.Draw(img)
    _draw_background(draw, pattern, size, bg_hue)
    # The class object: position, size, rotation and hue follow the image latent.
    cx, cy = size * (0.3 + 0.4 * u[0]), size * (0.3 + 0.4 * u[1])
    rad = size * (0.16 + 0.14 * u[2])
    rot = 2 * math.pi * u[3]
    colour = _hsv(hue + 0.08 * (u[4] - 0.5), 0.65 + 0.3 * u[5], 0.6 + 0.35 * u[6])
    _draw_shape(draw, shape, cx, cy, rad, rot, colour)
    # a few small distractors (count from the latent) and pixel noise
    for _ in range(int(u[7] * 4)):
        x, y = rng.uniform(0, size, 2)
        r = rng.uniform(2, size * 0.05)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=_hsv(bg_hue + 0.25, 0.5, 0.5))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, 6.0, (size, size, 3))  # (size, size, 3)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# the world: latents, targets, subjects, waveforms


@dataclass
class SyntheticWorld:
    """Every fixed random quantity of one generator configuration (no EEG trials yet).

    Images are in class-major order: image ``i`` has class ``i // images_per_class``.
    """

    params: SynthParams
    class_of: np.ndarray = field(init=False)  # (M,) int64
    latents: np.ndarray = field(init=False)  # (M, d) z_i
    deviations: np.ndarray = field(init=False)  # (M, d) e_i
    prototypes: np.ndarray = field(init=False)  # (classes, d) p_c
    template_of: np.ndarray = field(init=False)  # (M,) caption template index
    image_targets: np.ndarray = field(init=False)  # (M, image_dim) float32
    text_targets: np.ndarray = field(init=False)  # (M, L, D) float32
    amplitudes: np.ndarray = field(init=False)  # (S, M, K) noise-free evoked amplitudes
    mixing: np.ndarray = field(init=False)  # (S, C, K)
    split_of: np.ndarray = field(init=False)  # (M,) 0/1/2

    def __post_init__(self) -> None:
        p = self.params
        ss = np.random.SeedSequence(p.seed)
        (lat_ss, img_ss, txt_ss, eeg_ss, split_ss, self._stim_ss, self._trial_ss) = ss.spawn(7)
        d, m = LATENT_DIM, p.classes * p.images_per_class
        rng = np.random.default_rng(lat_ss)
        self.prototypes = rng.standard_normal((p.classes, d))
        self.deviations = rng.standard_normal((m, d))
        self.class_of = np.repeat(np.arange(p.classes, dtype=np.int64), p.images_per_class)
        self.latents = self.prototypes[self.class_of] + IMAGE_DEVIATION * self.deviations
        self.template_of = rng.integers(0, len(TEMPLATES), m)
        self.image_targets = self._image_targets(np.random.default_rng(img_ss))
        self.text_targets = self._text_targets(np.random.default_rng(txt_ss))
        self._build_eeg_model(np.random.default_rng(eeg_ss))
        self.split_of = _stratified_split(
            np.random.default_rng(split_ss), p.classes, p.images_per_class, p.split_fractions
        )

    # targets ---------------------------------------------------------------------------
    def _image_targets(self, rng: np.random.Generator) -> np.ndarray:
        d, dim = LATENT_DIM, self.params.image_dim
        mean_dir = _normalize(rng.standard_normal(dim))
        w = rng.standard_normal((dim, d)) / math.sqrt(dim)
        noise = rng.standard_normal((len(self.latents), dim)) / math.sqrt(dim)
        z = self.latents / math.sqrt(d * (1 + IMAGE_DEVIATION**2))
        y = 1.0 * mean_dir + z @ w.T + 0.15 * noise  # (M, d) @ (d, D) -> (M, D)
        return _normalize(y).astype(np.float32)

    def _text_targets(self, rng: np.random.Generator) -> np.ndarray:
        n_tok, width = self.params.text_shape
        d, m = LATENT_DIM, len(self.latents)
        base = _normalize(rng.standard_normal((n_tok, width)))  # (L, D) b_j
        tpl = _normalize(rng.standard_normal((len(TEMPLATES), n_tok, width)))  # (n_tpl, L, D)
        proj_c = rng.standard_normal((d, n_tok, width)) / math.sqrt(width)  # P_j, stored (d, L, D)
        proj_e = rng.standard_normal((d, n_tok, width)) / math.sqrt(width)  # E_j

        def project(proj: np.ndarray, lat: np.ndarray, sl: slice) -> np.ndarray:
            sub = proj[:, sl]  # (d, l, D)
            return (lat @ sub.reshape(d, -1)).reshape(len(lat), *sub.shape[1:])  # (b, d) -> (b, l, D)

        pc = self.prototypes[self.class_of] / math.sqrt(d)  # (M, d)
        pe = self.deviations / math.sqrt(d)
        # token roles by position: 0 start, 1..4 template, 5..7 class name, 8.. end / padding
        sl_tpl, sl_name, sl_pad = slice(1, 5), slice(5, 8), slice(8, n_tok)
        out = np.empty((m, n_tok, width), dtype=np.float32)
        for lo in range(0, m, 256):  # image blocks keep memory small for large M
            blk = slice(lo, min(lo + 256, m))
            t = tpl[self.template_of[blk]]  # (b, L, D)
            h = np.broadcast_to(base, t.shape).copy()  # (b, L, D)
            h[:, sl_tpl] += 0.6 * t[:, sl_tpl]
            name_c = project(proj_c, pc[blk], sl_name)  # class part
            name_e = project(proj_e, pe[blk], sl_name)  # image part
            h[:, sl_name] = 0.5 * base[sl_name] + name_c + 0.35 * name_e + 0.2 * t[:, sl_name]
            content = project(proj_c, pc[blk], sl_pad) + project(proj_e, pe[blk], sl_pad)
            jitter = rng.standard_normal(content.shape) / math.sqrt(width)
            h[:, sl_pad] += 0.03 * content + 0.01 * jitter
            out[blk] = TEXT_NORM * _normalize(h)
        return out

    # EEG model -------------------------------------------------------------------------
    def _build_eeg_model(self, rng: np.random.Generator) -> None:
        """Draw the EEG model from ``rng`` (components, amplitudes, subject mixing, noise maps) and calibrate
        the noise to ``snr``. The draw order is part of the deterministic stream."""
        pos = _channel_positions(self.params.n_chans)  # (C, 3)
        self._pos = pos
        centres, widths, neg_offset = self._draw_components(rng)
        self.amplitudes = self._draw_amplitudes(rng)  # (S, M, K)
        self.mixing = self._draw_mixing(rng, pos, centres, widths, neg_offset)  # (S, C, K)
        self._draw_noise_maps(rng, pos)
        self._calibrate()

    def _draw_components(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw the K components' waveform parameters (stored) and spatial templates (returned).

        Returns ``centres`` (K, 3), ``widths`` (K,) and ``neg_offset`` (K, 3), the negative blob relative
        to the positive one. Centres run from occipital (early) to parietal/central (late).
        """
        k = N_COMPONENTS
        lat_ms = np.sort(rng.uniform(80, 400, k))
        lat_ms[0] = min(lat_ms[0], 110.0)
        y_centre = np.linspace(-0.8, 0.1, k) + rng.normal(0, 0.1, k)
        x_centre = rng.normal(0, 0.35, k)
        centres = np.stack([x_centre, y_centre, np.sqrt(np.clip(1 - x_centre**2 - y_centre**2, 0.05, 1))], 1)  # (K, 3)
        widths = rng.uniform(0.25, 0.45, k)  # (K,)
        neg_offset = rng.normal(0, 0.6, (k, 3))  # (K, 3) negative blob relative to the positive one
        # Waveforms (K, T) evaluated later with per-trial jitter: parameters only.
        self._lat_s = lat_ms / 1000.0
        self._kind = rng.integers(0, 2, k)  # 0 gamma ERP, 1 damped oscillation
        self._tau_s = rng.uniform(0.015, 0.04, k)
        self._freq = rng.uniform(4.0, 12.0, k)
        self._polarity = rng.choice([-1.0, 1.0], k)
        return centres, widths, neg_offset

    def _draw_amplitudes(self, rng: np.random.Generator) -> np.ndarray:
        """Noise-free evoked amplitudes (S, M, K): mean ERP plus subject gains times latent projections."""
        d, k = LATENT_DIM, N_COMPONENTS
        # Latent -> amplitude maps (unit-variance projections of z).
        scale = 1.0 / math.sqrt(d * (1 + IMAGE_DEVIATION**2))
        g, h, q = (rng.standard_normal((k, d)) * scale for _ in range(3))
        z = self.latents
        mod = z @ g.T + 0.6 * np.tanh(2.0 * (z @ h.T)) + 0.4 * ((z @ q.T) ** 2 - 1.0) / math.sqrt(2)  # (M, K)
        mu = rng.uniform(*MEAN_ERP, k)  # stimulus-independent mean ERP amplitude
        gains = np.exp(rng.normal(0, 0.2, (self.params.subjects, k)))  # (S, K)
        return mu[None, None] + gains[:, None, :] * mod[None]  # (S, M, K)

    def _draw_mixing(
        self,
        rng: np.random.Generator,
        pos: np.ndarray,
        centres: np.ndarray,
        widths: np.ndarray,
        neg_offset: np.ndarray,
    ) -> np.ndarray:
        """Subject mixing (S, C, K): jittered dipolar blobs around the templates, plus a little channel-level
        spatial noise, unit rms per column. ``pos`` (C, 3); templates as returned by :meth:`_draw_components`."""
        p, k = self.params, N_COMPONENTS
        mixing = np.empty((p.subjects, p.n_chans, k))
        for s in range(p.subjects):
            for j in range(k):
                c = centres[j] + rng.normal(0, 0.12, 3)
                w = widths[j] * math.exp(rng.normal(0, 0.1))
                col = _blob(pos, c, w) - 0.6 * _blob(pos, c + neg_offset[j], w * 1.3)
                mixing[s, :, j] = col * math.exp(rng.normal(0, 0.15))
            mixing[s] += 0.05 * rng.standard_normal((p.n_chans, k))
        return mixing / np.sqrt(np.mean(mixing**2, axis=1, keepdims=True))  # unit rms per column

    def _draw_noise_maps(self, rng: np.random.Generator, pos: np.ndarray) -> None:
        """Noise spatial structure over channel positions ``pos`` (C, 3): the mixed 1/f sources' maps and the
        occipital alpha weighting (stored)."""
        n_src = _NOISE_SOURCES
        src_c = _normalize(rng.standard_normal((n_src, 3)) * [1, 1, 0.5] + [0, 0, 0.5])  # (n_src, 3)
        src_maps = np.stack([_blob(pos, c, rng.uniform(0.3, 0.6)) for c in src_c], 1)  # (C, n_src)
        self._noise_maps = (src_maps / np.sqrt(np.mean(src_maps**2 * n_src, axis=0, keepdims=True))).astype(
            np.float32
        )  # (C, n_src), mean power over channels of the mixed sum = 1
        alpha_w = 1.0 / (1.0 + np.exp(6.0 * (pos[:, 1] + 0.3)))  # (C,) occipital (posterior, y < 0) weighting
        self._alpha_map = (alpha_w / np.sqrt(np.mean(alpha_w**2))).astype(np.float32)  # (C,) unit rms

    def _calibrate(self) -> None:
        """Evoked signal power (over subjects, images, channels and time; noise-free, no jitter), the noise
        std for ``snr`` and the output scale. Raises ConfigError when the epoch ends before any component."""
        p = self.params
        wave = self._waveforms(np.zeros((1, N_COMPONENTS)))[0]  # (K, T)
        gram_w = wave @ wave.T / p.n_times  # (K, K)
        gram_m = np.einsum("sck,scl->skl", self.mixing, self.mixing) / p.n_chans  # (S, K, K)
        a = self.amplitudes
        self.signal_power = float(np.mean(np.einsum("smk,skl,kl,sml->sm", a, gram_m, gram_w, a)))
        if not self.signal_power > 0:  # every waveform is still zero at the end of the epoch
            raise ConfigError(
                f"synthetic data: the epoch (n_times / sfreq = {1000 * p.n_times / p.sfreq:g} ms) ends before the "
                f"first evoked component (at {1000 * self._lat_s[0]:.0f} ms); use a longer epoch (e.g. n_times >= "
                f"{math.ceil(0.2 * p.sfreq)} at {p.sfreq:g} Hz)"
            )
        self.noise_std = math.sqrt(self.signal_power / p.snr)
        # Overall scale: microvolt-like units, noise std ~10 (signal scales with snr).
        self._unit = 10.0 / self.noise_std

    def _waveforms(self, jitter_s: np.ndarray) -> np.ndarray:
        """Component waveforms with per-trial latency jitter: (B, K) seconds -> (B, K, T)."""
        t = np.arange(self.params.n_times) / self.params.sfreq  # (T,)
        tt = t[None, None, :] - (self._lat_s[None, :, None] + jitter_s[:, :, None])  # (B, K, T)
        pos = np.clip(tt, 0, None)
        tau = self._tau_s[None, :, None]
        gamma = (pos / tau) ** 2 * np.exp(2.0 - pos / tau) / 4.0  # peak 1 at t = 2 tau
        damped = np.sin(2 * math.pi * self._freq[None, :, None] * pos) * np.exp(-pos / (3 * tau))
        damped *= 1.0 - np.exp(-pos / 0.005)  # smooth onset
        kind = self._kind[None, :, None]
        return self._polarity[None, :, None] * np.where(kind == 0, gamma, damped)

    def eeg(self, subject: np.ndarray, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Simulate trials: subject (B,) 0-based, image (B,) -> (B, C, T) float32."""
        p = self.params
        b, k, c_n, t_n = len(subject), N_COMPONENTS, p.n_chans, p.n_times
        jitter = rng.normal(0.0, LATENCY_JITTER_S, (b, k))
        amp = self.amplitudes[subject, image] + TRIAL_VARIABILITY * rng.standard_normal((b, k))  # (B, K)
        wave = self._waveforms(jitter) * amp[:, :, None]  # (B, K, T)
        x = np.einsum("bck,bkt->bct", self.mixing[subject], wave).astype(np.float32)  # (B, C, T)
        sources = _pink(rng, (b, _NOISE_SOURCES), t_n)  # (B, n_src, T)
        noise = math.sqrt(0.55) * np.einsum("cn,bnt->bct", self._noise_maps, sources)  # -> (B, C, T)
        noise += math.sqrt(0.2) * _pink(rng, (b, c_n), t_n)  # (B, C, T)
        f_alpha = rng.normal(10.0, 0.7, (b, 1))  # (B, 1) Hz
        phase = rng.uniform(0, 2 * math.pi, (b, 1))  # (B, 1)
        tsec = np.arange(t_n) / p.sfreq  # (T,)
        envelope = 1.0 + 0.3 * np.sin(2 * math.pi * rng.uniform(0.5, 2.0, (b, 1)) * tsec + phase)
        alpha = (math.sqrt(2) * np.sin(2 * math.pi * f_alpha * tsec + phase) * envelope / math.sqrt(1.045)).astype(
            np.float32
        )  # (B, T), unit power
        noise += math.sqrt(0.15) * self._alpha_map[None, :, None] * alpha[:, None, :]  # (1, C, 1) * (B, 1, T)
        walk = np.cumsum(rng.standard_normal((b, c_n, t_n), dtype=np.float32), axis=-1)  # (B, C, T), var t at step t
        noise += math.sqrt(0.1) * walk * np.float32(math.sqrt(2.0 / (t_n + 1)))  # mean var (T + 1) / 2 -> 1
        return ((x + np.float32(self.noise_std) * noise) * np.float32(self._unit)).astype(np.float32)

    # stimuli ---------------------------------------------------------------------------
    def stimuli(self) -> list[bytes]:
        """JPEG bytes of every image, class-major order."""
        p = self.params
        # The children spawn() would give on its first call, built explicitly: spawn() is stateful, so a
        # second call would draw other pixel noise (other JPEGs, other image ids than the targets').
        ss = self._stim_ss
        rngs = [
            np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, i), pool_size=ss.pool_size))
            for i in range(len(self.latents))
        ]
        return [
            _draw_stimulus(int(c), e, p.image_size, r)
            for c, e, r in zip(self.class_of, self.deviations, rngs)
        ]

    def trial_rng(self) -> np.random.Generator:
        """A fresh generator for the trial stream (the same stream on every call)."""
        return np.random.default_rng(self._trial_ss)


# --------------------------------------------------------------------------------------------
# block design (the ground truth of `eegalign audit`)


@dataclass
class BlockDesign:
    """Class-block presentation order of every subject's one session, and its drift offsets.

    ``position[s, i]``: when subject ``s`` saw image ``i`` (0..M-1); ``block[s, i]``: the index of
    the class block it sat in; ``offsets[s, i]``: the drift (C,) added to that trial over the whole
    epoch, in output units.
    """

    position: np.ndarray  # (S, M) int64
    block: np.ndarray  # (S, M) int64
    offsets: np.ndarray  # (S, M, C) float32


def block_design(world: SyntheticWorld, drift: float) -> BlockDesign:
    """Classes in random order per subject, each class's images (all splits) in one block, and a
    per-channel random walk over the session's trials scaled to ``drift`` noise SDs."""
    p = world.params
    rng = np.random.default_rng([p.seed, _BLOCK_STREAM])
    m = len(world.class_of)
    position = np.empty((p.subjects, m), dtype=np.int64)
    block = np.empty((p.subjects, m), dtype=np.int64)
    offsets = np.zeros((p.subjects, m, p.n_chans), dtype=np.float32)
    noise_sd = world.noise_std * world._unit  # background noise SD in output units (10)
    for s in range(p.subjects):
        order = []
        for b, c in enumerate(rng.permutation(p.classes)):
            images = rng.permutation(np.flatnonzero(world.class_of == c))
            block[s, images] = b
            order.extend(images)
        position[s, order] = np.arange(m)
        walk = np.cumsum(rng.standard_normal((m, p.n_chans)), axis=0)  # (M, C) in presentation order
        walk = (walk - walk.mean(axis=0)) / np.maximum(walk.std(axis=0), 1e-12)  # unit SD per channel
        offsets[s, order] = (drift * noise_sd * walk).astype(np.float32)
    return BlockDesign(position=position, block=block, offsets=offsets)


def _split_rows(world: SyntheticWorld, split_idx: int, rng: np.random.Generator, design: BlockDesign | None):
    """(subject (n,), image (n,)) rows of one split: subject-major, then presentation order."""
    imgs = np.flatnonzero(world.split_of == split_idx)
    if design is None:
        imgs = imgs[rng.permutation(len(imgs))]  # presentation order
        return np.repeat(np.arange(world.params.subjects), len(imgs)), np.tile(imgs, world.params.subjects)
    subj = np.repeat(np.arange(world.params.subjects), len(imgs))
    img = np.concatenate([imgs[np.argsort(design.position[s, imgs])] for s in range(world.params.subjects)])
    return subj, img.astype(np.int64)


# --------------------------------------------------------------------------------------------
# writer


def _features(layout: str, n_times: int, n_chans: int, blocked: bool = False):
    import datasets

    seq = getattr(datasets, "List", None) or datasets.Sequence
    eeg = (
        seq(seq(datasets.Value("float32")))
        if layout == "nested"
        else datasets.Array2D(shape=(n_times, n_chans), dtype="float32")
    )
    columns = {
        "image": datasets.Image(),
        "conditioning_image": eeg,
        "caption": datasets.Value("string"),
        "label_folder": datasets.Value("string"),
        "label": datasets.Value("int32"),
        "subject": datasets.Value("int32"),
    }
    if blocked:  # presentation order, which the hub schema does not carry
        columns.update({name: datasets.Value("int32") for name in ORDER_COLUMNS})
    return datasets.Features(columns)


def _params_json(params: SynthParams) -> dict:
    """Generator parameters for synthetic.json (the block-design ones only when used: default output unchanged)."""
    out = {**asdict(params), "text_shape": list(params.text_shape)}
    if not params.blocked:
        del out["drift"], out["blocked"]
    return out


def _nested_chunk(x_btc: np.ndarray):
    """(B, T, C) float32 -> arrow list<list<float>> array (zero-copy values)."""
    import pyarrow as pa

    b, t, c = x_btc.shape
    values = pa.array(np.ascontiguousarray(x_btc).reshape(-1))
    inner = pa.ListArray.from_arrays(pa.array(np.arange(0, b * t * c + 1, c, dtype=np.int32)), values)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, b * t + 1, t, dtype=np.int32)), inner)


@dataclass(frozen=True)
class _Stimuli:
    """What every trial row of an image repeats: its JPEG, id and caption, plus the class table."""

    jpegs: list[bytes]  # (M,) class-major
    image_ids: list[str]  # (M,)
    captions: list[str]  # (M,)
    table: list  # the first ``classes`` entries of ``cvpr40_classes()`` (wnid, name)


def _stimuli(world: SyntheticWorld) -> _Stimuli:
    """Draw every stimulus of ``world``, hash its id and caption it. Raises DataError on an id collision."""
    from eegalign.data.classes import cvpr40_classes

    table = cvpr40_classes()[: world.params.classes]
    jpegs = world.stimuli()
    image_ids = [image_id_from_bytes(b) for b in jpegs]
    if len(set(image_ids)) != len(image_ids):  # pragma: no cover - sha1 prefix collision
        raise DataError("synthetic data: two stimuli hash to the same image_id; use another seed")
    captions = [
        TEMPLATES[t].format(_with_article(table[c].name)) for t, c in zip(world.template_of, world.class_of)
    ]
    return _Stimuli(jpegs=jpegs, image_ids=image_ids, captions=captions, table=table)


def _chunk_columns(
    world: SyntheticWorld,
    stim: _Stimuli,
    design: BlockDesign | None,
    s_blk: np.ndarray,
    i_blk: np.ndarray,
    x: np.ndarray,
) -> dict:
    """Arrow columns of one block of trials: subjects ``s_blk`` (B,) 0-based, images ``i_blk`` (B,), EEG ``x`` (B, C, T)."""
    import pyarrow as pa

    columns = {
        "image": pa.array(
            [{"bytes": stim.jpegs[i], "path": None} for i in i_blk],
            type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        ),
        "conditioning_image": _nested_chunk(x.transpose(0, 2, 1)),  # (B, C, T) -> (B, T, C)
        "caption": pa.array([stim.captions[i] for i in i_blk], type=pa.string()),
        "label_folder": pa.array([stim.table[world.class_of[i]].wnid for i in i_blk], type=pa.string()),
        "label": pa.array(world.class_of[i_blk].astype(np.int32)),
        "subject": pa.array((s_blk + 1).astype(np.int32)),
    }
    if design is not None:
        columns["session"] = pa.array(np.ones(len(s_blk), dtype=np.int32))
        columns["block"] = pa.array(design.block[s_blk, i_blk].astype(np.int32))
        columns["trial_index"] = pa.array(design.position[s_blk, i_blk].astype(np.int32))
    return columns


def _write_split(
    path: Path,
    world: SyntheticWorld,
    stim: _Stimuli,
    design: BlockDesign | None,
    features: Any,
    rows: tuple[np.ndarray, np.ndarray],
    trial_rng: np.random.Generator,
    bar: Any,
) -> None:
    """Simulate the trials ``rows`` = (subject (n,), image (n,)) and write them to the parquet file ``path``.

    ``features`` (``datasets.Features``) sets the columns and schema. One parquet row group per block of
    ``_CHUNK`` trials, so memory stays bounded at any size; ``bar`` (a tqdm bar) advances per block.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import cast_array_to_feature

    subj, img = rows
    schema = features.arrow_schema  # carries the "huggingface" features metadata load_dataset reads
    with pq.ParquetWriter(str(path), schema=schema) as writer:
        for lo in range(0, len(img), _CHUNK):
            s_blk, i_blk = subj[lo : lo + _CHUNK], img[lo : lo + _CHUNK]
            x = world.eeg(s_blk, i_blk, trial_rng)  # (B, C, T)
            if design is not None:
                x += design.offsets[s_blk, i_blk][:, :, None]  # (B, C, 1): drift over the whole epoch
            columns = _chunk_columns(world, stim, design, s_blk, i_blk, x)
            arrays = [cast_array_to_feature(columns[name], feat) for name, feat in features.items()]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            bar.update(len(x))


def _write_targets(root: Path, world: SyntheticWorld, image_ids: list[str]) -> None:
    """Ground-truth ``targets/{image,text}.safetensors`` (rows in ``image_ids`` order) under ``root``."""
    from eegalign.io import save_tensors

    meta = {"image_ids": image_ids, "model": f"synthetic:{world.params.seed}"}
    save_tensors(
        root / "targets" / "image.safetensors",
        {"embeddings": world.image_targets},
        {**meta, "route": "image"},
    )
    save_tensors(
        root / "targets" / "text.safetensors",
        {"embeddings": world.text_targets},
        {**meta, "route": "text"},
    )


def _synthetic_info(world: SyntheticWorld, stim: _Stimuli, counts: dict[str, int]) -> dict:
    """The content of ``synthetic.json``: parameters, constants, calibration, classes, per-image rows and
    ``counts`` (trials per split)."""
    return {
        "generator": "eegalign.data.synthetic",
        "schema": "luigi-s/EEG_Image_CVPR_ALL_subj",
        "params": _params_json(world.params),
        "constants": {
            "latent_dim": LATENT_DIM,
            "n_components": N_COMPONENTS,
            "image_deviation": IMAGE_DEVIATION,
            "text_token_norm": TEXT_NORM,
            "templates": list(TEMPLATES),
        },
        "signal_power": world.signal_power,
        "noise_std": world.noise_std,
        "eeg_units_scale": world._unit,
        "classes": [c.wnid for c in stim.table],
        "class_names": [c.name for c in stim.table],
        "n_images": {s: int(np.sum(world.split_of == j)) for j, s in enumerate(SPLITS)},
        "n_trials": counts,
        "images": [
            {"image_id": iid, "label": int(c), "split": SPLITS[int(sp)], "caption": cap}
            for iid, c, sp, cap in zip(stim.image_ids, world.class_of, world.split_of, stim.captions)
        ],
    }


def _write_dataset(out: Path, params: SynthParams, *, overwrite: bool, progress: bool) -> Path:
    """Simulate the data set of validated ``params`` and write it to ``out`` atomically; return ``out``."""
    from tqdm.auto import tqdm

    from eegalign.io import atomic_dir, write_json

    world = SyntheticWorld(params)
    stim = _stimuli(world)
    features = _features(params.eeg_layout, params.n_times, params.n_chans, params.blocked)
    design = block_design(world, params.drift) if params.blocked else None
    trial_rng = world.trial_rng()  # one stream over all splits, in SPLITS order
    counts: dict[str, int] = {}

    with atomic_dir(out, overwrite=overwrite, kind="synthetic", command="eegalign data synth") as tmp:
        bar = tqdm(total=params.subjects * len(stim.image_ids), desc="synthesising EEG", unit="trial", disable=not progress)
        for split_idx, split in enumerate(SPLITS):
            rows = _split_rows(world, split_idx, trial_rng, design)  # subject-major rows
            counts[split] = len(rows[1])
            if not len(rows[1]):  # a split with fraction 0 gets no file (load_dataset rejects empty splits)
                continue
            _write_split(tmp / f"{split}.parquet", world, stim, design, features, rows, trial_rng, bar)
        bar.close()
        _write_targets(tmp, world, stim.image_ids)
        write_json(tmp / "synthetic.json", _synthetic_info(world, stim, counts))
    return out


def write_synthetic_dataset(
    out_dir: str | os.PathLike,
    *,
    subjects: int = 6,
    classes: int = 40,
    images_per_class: int = 5,
    seed: int = 0,
    snr: float = 1.0,
    n_chans: int = 128,
    n_times: int = 440,
    sfreq: float = 1000.0,
    image_dim: int = 1024,
    text_shape: Sequence[int] = (77, 768),
    image_size: int = 128,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    eeg_layout: str = "nested",
    drift: float = 0.0,
    blocked: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a synthetic data set in the hub schema, plus ground-truth targets; return ``out_dir``.

    Layout: ``train.parquet``, ``validation.parquet``, ``test.parquet`` (columns ``image``,
    ``conditioning_image`` (time x channels), ``caption``, ``label_folder``, ``label``,
    ``subject``), ``targets/image.safetensors``, ``targets/text.safetensors`` and
    ``synthetic.json``. The directory appears atomically. Raises ConfigError for bad
    parameters and DataError if ``out_dir`` exists and ``overwrite`` is false.

    ``blocked`` (implied by ``drift > 0``) presents each subject's trials in class blocks and adds
    the columns ``session``, ``block``, ``trial_index``; ``drift`` adds a per-channel random walk over
    the session of that many noise SDs (see :func:`block_design`). The defaults write exactly what
    they wrote before these options existed.
    """
    params = SynthParams(
        subjects=int(subjects),
        classes=int(classes),
        images_per_class=int(images_per_class),
        seed=int(seed),
        snr=float(snr),
        n_chans=int(n_chans),
        n_times=int(n_times),
        sfreq=float(sfreq),
        image_dim=int(image_dim),
        text_shape=tuple(int(v) for v in text_shape),
        image_size=int(image_size),
        split_fractions=tuple(float(v) for v in split_fractions),
        eeg_layout=str(eeg_layout),
        drift=float(drift),
        blocked=bool(blocked) or float(drift) > 0,
    )
    params.validate()
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass overwrite=True (--overwrite) to replace it")
    return _write_dataset(out, params, overwrite=overwrite, progress=progress)
