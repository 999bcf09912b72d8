"""How numbers read in the reports: percentages, accuracies with CIs, p-values, metric labels."""

from __future__ import annotations

from typing import Any


def percent(x: float | None) -> str:
    """``0.1234 -> "12.3%"``; None -> ``"n/a"``."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def accuracy_with_ci(entry: dict[str, Any] | None) -> str:
    """An accuracy entry ``{"value", "ci95"}`` as ``"v% [lo%, hi%]"`` ("n/a" when missing)."""
    if not entry:
        return "n/a"
    lo, hi = entry["ci95"]
    return f"{percent(entry['value'])} [{percent(lo)}, {percent(hi)}]"


def number(x: float | None, digits: int = 4) -> str:
    """A similarity or distance with ``digits`` significant digits (scientific below 1e-3)."""
    if x is None:
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def mean_and_std(entry: dict[str, Any] | None) -> str:
    """A ``{"mean", "std"}`` entry as ``"mean ± std"``."""
    return "n/a" if not entry else f"{number(entry['mean'])} ± {number(entry['std'], 3)}"


def permutation_p(p: float, n_permutations: int) -> str:
    """A permutation p-value, flagged when it sits at the floor ``1 / (n + 1)`` of the test."""
    floor = 1.0 / (n_permutations + 1)
    return f"{p:.3g}" + (f" (the floor for {n_permutations} permutations)" if p <= floor + 1e-12 else "")


def retrieval_label(key: str) -> str:
    """``"all_top1" -> "all-way top-1"``, ``"10way_top5" -> "10-way top-5"``."""
    if key.startswith("all_"):
        return f"all-way {key[4:].replace('top', 'top-')}"
    k, top = key.split("way_")
    return f"{k}-way {top.replace('top', 'top-')}"


def retrieval_sort_key(key: str) -> tuple[int, int]:
    """Order retrieval keys by top-t, then by k (all-way last)."""
    k = 10**9 if key.startswith("all_") else int(key.split("way_")[0])
    return (int(key.rsplit("top", 1)[1]), k)


def centre_name(metrics: dict[str, Any]) -> str:
    """The mean target the similarity-matrix figure is centred on: "train mean" or "split mean"."""
    return "train mean" if metrics["settings"]["baseline_source"] == "train" else "split mean"


def baseline_short_name(metrics: dict[str, Any]) -> str:
    """The baseline's column name in tables: "train mean", or "split mean*" (footnoted as optimistic)."""
    return "train mean" if metrics["settings"]["baseline_source"] == "train" else "split mean*"


def subject_chance(metrics: dict[str, Any], key: str) -> float | None:
    """Chance level of a per-subject column (``all_top1``, ``classification_top1``, ...); None for cosine."""
    if key == "cosine":
        return None
    if key.startswith("classification_"):
        return metrics["classification"][key.split("_", 1)[1]]["chance"]
    return metrics["retrieval"][key]["chance"]
