"""Input coercion and the choices every score shares: candidates, baseline, centre, resamples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from eegalign.metrics.retrieval import candidates
from eegalign.metrics.significance import bootstrap_counts

KWAY = (2, 10, 50, 200)
KWAY_THINGS = (2, 4, 10, 50, 100, 200)  # the THINGS-EEG2 literature reports 2-, 4-, 10-, 50-, 100-way and 200-way


@dataclass
class EvaluationSetup:
    """One evaluation's inputs, coerced, and the choices every score shares.

    Args:
        pred, true: ``(N, ...)`` float32 predictions and targets; ``label``, ``subject``: ``(N,)`` int64.
        image_ids: the N image ids as given.
        route: ``"image"`` (2-D targets) or ``"text"`` (3-D).
        ids, cands, answer, cand_label: the M distinct images (first-seen order), their targets
            ``(M, ...)``, each trial's candidate index ``(N,)`` and each candidate's class ``(M,)``.
        source: ``"train"`` when train targets were given, else ``"split"`` (the split's own images stand in).
        ref_targets, ref_labels: the reference images' targets and classes (labels may be None).
        mean_target: ``(...)`` the reference mean target: the baseline's prediction for every trial.
        center: the text route's retrieval centre (``mean_target``), None on the image route.
        counts: ``(B, N)`` bootstrap resampling counts shared by every accuracy.
        kway, kway_draws, n_boot, n_perm, seed: as given to :func:`eegalign.metrics.compute_metrics`.
        average_by: ``"image"``, ``"image_subject"`` or None (no trial averaging).
        distractors: k-way distractor draws per k, shared by the model and the baseline.
    """

    pred: np.ndarray
    true: np.ndarray
    label: np.ndarray
    subject: np.ndarray
    image_ids: Sequence[str]
    route: str
    ids: list[str]
    cands: np.ndarray
    answer: np.ndarray
    cand_label: np.ndarray
    source: str
    ref_targets: np.ndarray
    ref_labels: np.ndarray | None
    mean_target: np.ndarray
    center: np.ndarray | None
    counts: np.ndarray
    kway: Sequence[int]
    kway_draws: int
    n_boot: int
    n_perm: int
    seed: int
    average_by: str | None
    distractors: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def baseline_pred(self) -> np.ndarray:
        """``(1, ...)``: the mean target, the same prediction for every trial."""
        return self.mean_target[None]


def averaging_mode(average_trials: bool | str) -> str | None:
    """``average_trials`` -> ``"image_subject"`` (True or "image-subject"), ``"image"``, or None (False)."""
    if not average_trials:
        return None
    by = "image_subject" if average_trials is True else str(average_trials).replace("-", "_")
    if by not in ("image", "image_subject"):
        raise ValueError(f"average_trials must be 'image' or 'image_subject', got {average_trials!r}")
    return by


def reference_targets(
    cands: np.ndarray, cand_label: np.ndarray, pred_shape: tuple[int, ...],
    train_targets: np.ndarray | None, train_labels: np.ndarray | None,
) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(source, targets, labels)`` of the baseline and the prototypes: the train images, else the split's."""
    if train_targets is None:
        return "split", cands, cand_label
    ref_targets = np.asarray(train_targets, dtype=np.float32)
    ref_labels = np.asarray(train_labels).astype(np.int64) if train_labels is not None else None
    if ref_targets.shape[1:] != pred_shape[1:]:
        raise ValueError(f"train targets {ref_targets.shape[1:]} do not match predictions {pred_shape[1:]}")
    return "train", ref_targets, ref_labels


def prepare_setup(
    pred: np.ndarray, true: np.ndarray, image_ids: Sequence[str], label: np.ndarray, subject: np.ndarray, *,
    train_targets: np.ndarray | None, train_labels: np.ndarray | None, kway: Sequence[int], kway_draws: int,
    n_boot: int, n_perm: int, seed: int, average_trials: bool | str,
) -> EvaluationSetup:
    """Coerce the inputs and make the shared choices (see :func:`eegalign.metrics.compute_metrics`)."""
    pred = np.asarray(pred, dtype=np.float32)
    true = np.asarray(true, dtype=np.float32)
    label = np.asarray(label).astype(np.int64)
    subject = np.asarray(subject).astype(np.int64)
    if pred.shape != true.shape:
        raise ValueError(f"pred {pred.shape} and true {true.shape} differ in shape")
    route = "text" if pred.ndim == 3 else "image"
    ids, cands, answer = candidates(true, image_ids)
    cand_label = label[np.unique(answer, return_index=True)[1]]  # class of each candidate
    source, ref_targets, ref_labels = reference_targets(cands, cand_label, pred.shape, train_targets, train_labels)
    mean_target = ref_targets.astype(np.float64).mean(axis=0).astype(np.float32)
    return EvaluationSetup(
        pred=pred, true=true, label=label, subject=subject, image_ids=image_ids, route=route,
        ids=ids, cands=cands, answer=answer, cand_label=cand_label,
        source=source, ref_targets=ref_targets, ref_labels=ref_labels, mean_target=mean_target,
        center=mean_target if route == "text" else None, counts=bootstrap_counts(len(pred), n_boot, seed),
        kway=kway, kway_draws=kway_draws, n_boot=n_boot, n_perm=n_perm, seed=seed,
        average_by=averaging_mode(average_trials),
    )


def evaluation_settings(setup: EvaluationSetup) -> dict:
    """The ``settings`` block of metrics.json: baseline and prototype source, centre, resamples, tie rule."""
    text, train = setup.route == "text", setup.source == "train"
    return {
        "baseline_source": setup.source,
        "baseline_label": "train mean" if train else "split mean (no train targets given; optimistic)",
        "prototype_source": "train-split images" if train else "evaluated split's images (optimistic)",
        "retrieval_center": "train mean target" if (text and train) else ("split mean target" if text else "none"),
        "kway_draws": setup.kway_draws,
        "bootstrap_resamples": setup.n_boot,
        "permutation_resamples": setup.n_perm,
        "seed": setup.seed,
        "tie_rule": "rank = number of candidates scoring >= the correct one (ties count as misses)",
        "n_classes": int(len(np.unique(setup.ref_labels))) if setup.ref_labels is not None else None,
    }
