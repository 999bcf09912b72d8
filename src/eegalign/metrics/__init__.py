"""Evaluation metrics: pure, vectorised numpy functions over (pred, true, image_ids, ...).

Definitions follow ``docs/evaluation.md``. Shapes: ``pred`` and ``true`` are ``(N, D)`` (image
route) or ``(N, 77, 768)`` (text route); everything that compares whole targets flattens the
trailing dimensions.

Tie rule (used everywhere a rank is taken): the rank of the correct candidate is the number of
candidates whose score is *greater than or equal to* its own score (itself included). A tie
therefore counts against the prediction: a constant or all-zero prediction, which ties with
every candidate, never scores above chance by luck of the sort order.

* :mod:`~eegalign.metrics.similarity` -- scale-free cosines, similarity matrices, per-trial distances;
* :mod:`~eegalign.metrics.retrieval` -- candidates, ranks, all-way and k-way hits, trial averaging;
* :mod:`~eegalign.metrics.classification` -- class prototypes and their ranks;
* :mod:`~eegalign.metrics.significance` -- bootstrap CIs, the permutation test, accuracy entries;
* :mod:`~eegalign.metrics.results` -- typed results and the metrics.json entries they serialise to;
* :mod:`~eegalign.metrics.setup` -- input coercion, candidates, baseline and centre choice, settings;
* :mod:`~eegalign.metrics.scoring` -- the named scoring steps (similarity, retrieval, classification,
  significance, per-subject, averaged);
* :mod:`~eegalign.metrics.compute` -- :func:`compute_metrics`: all of them, in metrics.json's layout.
"""

from eegalign.metrics.classification import class_prototypes, prototype_ranks
from eegalign.metrics.compute import compute_metrics
from eegalign.metrics.results import finite_or_null
from eegalign.metrics.retrieval import (
    all_way_hits, average_by_group, candidates, kway_distractors, kway_hits, ranks, retrieval_hits, retrieval_topk,
)
from eegalign.metrics.setup import KWAY, KWAY_THINGS
from eegalign.metrics.significance import accuracies, bootstrap_ci, bootstrap_counts, permutation_test
from eegalign.metrics.similarity import (
    EPS, TOKEN_THRESHOLDS, cosine_per_trial, flatten, mean_std, per_trial_similarity, row_norms, scaled_rows,
    similarity_matrices, similarity_matrix, similarity_summary, text_summary, unit_rows,
)

__all__ = [
    "EPS", "KWAY", "KWAY_THINGS", "TOKEN_THRESHOLDS", "accuracies", "all_way_hits", "average_by_group",
    "bootstrap_ci", "bootstrap_counts", "candidates", "class_prototypes", "compute_metrics", "cosine_per_trial",
    "finite_or_null", "flatten", "kway_distractors", "kway_hits", "mean_std", "per_trial_similarity",
    "permutation_test", "prototype_ranks", "ranks", "retrieval_hits", "retrieval_topk", "row_norms", "scaled_rows",
    "similarity_matrices", "similarity_matrix", "similarity_summary", "text_summary", "unit_rows",
]
