"""Run every probe on a cache, decide with a multiple-test correction, write audit.json + audit.html."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eegalign.audit.features import (
    DEFAULT_WINDOW_END_MS, EpochTiming, epoch_timing, pre_response_features, slow_drift_features, window_samples,
)
from eegalign.audit.hygiene import HygieneResult, split_hygiene
from eegalign.audit.probes import ProbeResult, run_probe
from eegalign.errors import ConfigError

AUDIT_VERSION = 1


@dataclass
class AuditSettings:
    """What the audit was asked to do (all times onset-relative, in ms)."""

    window_ms: tuple[float | None, float] = (None, DEFAULT_WINDOW_END_MS)
    epoch_start_ms: float | None = None
    bin_ms: float = 10.0
    n_permutations: int = 500
    n_bootstrap: int = 1000
    alpha: float = 0.01
    seed: int = 0

    def validate(self, n_probes: int) -> None:
        if self.n_permutations < 1 or self.n_bootstrap < 1:
            raise ConfigError("--permutations and --bootstrap must be >= 1")
        if not 0 < self.alpha < 1:
            raise ConfigError("--alpha must be between 0 and 1")
        smallest = n_probes / (self.n_permutations + 1)
        if smallest > self.alpha:
            raise ConfigError(
                f"with {self.n_permutations} permutations the smallest Holm-adjusted p-value of {n_probes} probes is "
                f"{smallest:.3g} > alpha {self.alpha:g}: nothing could be detected; use --permutations >= "
                f"{int(np.ceil(n_probes / self.alpha)) - 1}"
            )


@dataclass
class AuditResult:
    """The audit's outcome, serialised as audit.json."""

    leakage_detected: bool
    criterion: str
    probes: dict[str, ProbeResult]
    split_hygiene: HygieneResult
    timing: EpochTiming
    settings: AuditSettings
    cache: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "audit_version": AUDIT_VERSION,
            "leakage_detected": self.leakage_detected,
            "criterion": self.criterion,
            "probes": {k: v.to_json() for k, v in self.probes.items()},
            "split_hygiene": self.split_hygiene.to_json(),
            "timing": asdict(self.timing),
            "settings": asdict(self.settings),
            "cache": self.cache,
        }


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def criterion_text(settings: AuditSettings, names: list[str]) -> str:
    return (
        f"leakage_detected is true when at least one of the {len(names)} probes ({', '.join(names)}) decodes the class "
        f"above chance with a Holm-Bonferroni adjusted permutation p-value <= {settings.alpha:g} "
        f"({settings.n_permutations} permutations of the training labels within each subject, classifier refitted "
        "each time). The probes see no stimulus information, so a reliable score is a confound, not decoding."
    )


@dataclass
class ProbeSpec:
    """A probe to run: its name, question, feature description, feature function and role."""

    name: str
    question: str
    features: str
    features_of: Any  # rows (n,) -> (n, p)
    in_decision: bool = True


def _probe_specs(cache: Any, timing: EpochTiming, settings: AuditSettings) -> list[ProbeSpec]:
    """The decision probes (pre-response window, slow drift in it) and the descriptive whole-epoch one."""
    window = window_samples(timing, settings.window_ms, cache.n_times)
    span = f"{timing.start_ms + 1000.0 * window.start / timing.sfreq:g}-{timing.start_ms + 1000.0 * window.stop / timing.sfreq:g} ms"
    bin_samples = max(int(round(settings.bin_ms * timing.sfreq / 1000.0)), 1)
    eeg, whole = cache.eeg, slice(0, cache.n_times)
    return [
        ProbeSpec(
            "pre_response", "Is the class decodable before any visual response can reach the cortex?",
            f"samples {window.start}:{window.stop} ({span} after onset), averaged in {settings.bin_ms:g} ms bins, all channels",
            lambda rows: pre_response_features(eeg, rows, window, bin_samples),
        ),
        ProbeSpec(
            "slow_drift", "Is the class decodable from per-trial channel offsets and trends alone?",
            f"per-channel mean and linear trend over the pre-response window ({span} after onset)",
            lambda rows: slow_drift_features(eeg, rows, window),
        ),
        ProbeSpec(
            "epoch_slow", "Descriptive: how much do whole-epoch channel means and trends (sub-1 Hz content) decode?",
            "per-channel mean and linear trend over the whole epoch; carries the evoked response's slow part too, "
            "so it is not part of the decision -- compare it with slow_drift",
            lambda rows: slow_drift_features(eeg, rows, whole), in_decision=False,
        ),
    ]


def run_audit(cache_dir: str | os.PathLike, settings: AuditSettings | None = None) -> AuditResult:
    """Run the probes and the split-hygiene checks on the cache at ``cache_dir``."""
    from threadpoolctl import threadpool_limits

    from eegalign.data.cache import Cache

    settings = settings or AuditSettings()
    if not 0 < settings.bin_ms < float("inf"):  # 0 ran with one-sample bins while audit.json said "0 ms bins"
        raise ConfigError(f"--bin-ms must be a positive number of milliseconds, got {settings.bin_ms:g}")
    cache = Cache.open(cache_dir)
    timing = epoch_timing(cache.manifest, settings.epoch_start_ms)
    specs = _probe_specs(cache, timing, settings)
    deciding = [spec.name for spec in specs if spec.in_decision]
    settings.validate(len(deciding))
    probes: dict[str, ProbeResult] = {}
    # Thousands of small matrix products: one BLAS thread is fastest, and a multi-threaded BLAS on a busy
    # machine can be a hundred times slower.
    with threadpool_limits(limits=1, user_api="blas"):
        for k, spec in enumerate(specs):
            probes[spec.name] = run_probe(
                spec.name, spec.question, spec.features, spec.features_of, cache.meta, n_perm=settings.n_permutations,
                n_boot=settings.n_bootstrap, seed=settings.seed + k, in_decision=spec.in_decision,
            )
    ran = [p for p in probes.values() if p.p is not None and p.in_decision]
    for probe, adj in zip(ran, holm([p.p for p in ran])):  # type: ignore[misc]
        probe.p_holm = adj
        probe.reliable = bool(adj <= settings.alpha and probe.value > probe.chance)  # type: ignore[operator]
    params = cache.manifest.get("params", {})
    return AuditResult(
        leakage_detected=any(p.reliable for p in probes.values()),
        criterion=criterion_text(settings, deciding),
        probes=probes,
        split_hygiene=split_hygiene(cache.meta),
        timing=timing,
        settings=settings,
        cache={"path": str(Path(cache_dir)), "fingerprint": cache.manifest.get("fingerprint"),
               "source": cache.manifest.get("source"), "split_by": params.get("split_by", "source"),
               "n_trials": int(len(cache.meta))},
    )


def write_audit(result: AuditResult, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``audit.json``, ``audit.md`` and ``audit.html`` into ``out_dir`` atomically."""
    from eegalign.audit.report import audit_page
    from eegalign.io import atomic_dir, write_json

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ConfigError(f"output directory {out} already exists (pass --overwrite to replace it)")
    data = result.to_json()
    markdown, page = audit_page(data)
    with atomic_dir(out, overwrite=overwrite, kind="audit", command="eegalign audit") as tmp:
        write_json(tmp / "audit.json", data)
        (tmp / "audit.md").write_text(markdown, encoding="utf-8")
        (tmp / "audit.html").write_text(page, encoding="utf-8")
    return out


def load_audit(path: str | os.PathLike) -> dict[str, Any]:
    """The audit.json of an audit directory (or the file itself)."""
    import json

    from eegalign.errors import DataError

    p = Path(path)
    f = p / "audit.json" if p.is_dir() else p
    if not f.is_file():
        raise DataError(f"no audit.json in {p} (write one with `eegalign audit --cache CACHE --out {p}`)")
    try:
        data = json.loads(f.read_text())
    except ValueError as e:
        raise DataError(f"{f} is not valid JSON ({e})") from e
    if not isinstance(data, dict) or "leakage_detected" not in data or "probes" not in data:
        raise DataError(f"{f} is not an eegalign audit (no leakage_detected/probes)")
    return data
