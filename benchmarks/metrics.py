"""Timing of the full evaluation metrics at the real test-set size, on this CPU.

    python benchmarks/metrics.py [--trials 2000] [--images 333] [--repeat 1]

Builds random targets for ``--images`` distinct images seen by 6 subjects (``--trials`` in all),
noisy predictions and 1,600 train-image targets, then times ``compute_metrics`` with the default
settings (1000 bootstrap resamples, 1000 permutations, 10 k-way draws) for the image route
(1024-d) and the text route (77 x 768), without and with averaging the trials of each image. Prints one table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from eegalign.metrics import compute_metrics


def _data(shape: tuple[int, ...], n_trials: int, n_images: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(n_images, *shape)).astype(np.float32)
    which = np.arange(n_trials) % n_images
    true = img[which]
    pred = (true + 3.0 * rng.normal(size=true.shape)).astype(np.float32)
    ids = [f"img{i}" for i in which]
    label = (which % 40).astype(np.int64)
    subject = (np.arange(n_trials) // n_images % 6 + 1).astype(np.int64)
    train = rng.normal(size=(1600, *shape)).astype(np.float32)
    return pred, true, ids, label, subject, train, np.arange(1600) % 40


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--images", type=int, default=333)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"{'route':<6} {'shape':<10} {'trials':>6} {'images':>6} {'averaging':>9} {'seconds':>8}  all_top1  perm_p")
    for route, shape in (("image", (1024,)), ("text", (77, 768))):
        pred, true, ids, label, subject, train, tl = _data(shape, args.trials, args.images)
        for avg in (False, "image"):
            best = np.inf
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                m, _ = compute_metrics(pred, true, ids, label, subject, train_targets=train, train_labels=tl, average_trials=avg)
                best = min(best, time.perf_counter() - t0)
            print(
                f"{route:<6} {'x'.join(map(str, shape)):<10} {args.trials:>6} {args.images:>6} {str(avg):>9} {best:>8.2f}  "
                f"{m['retrieval']['all_top1']['value']:.3f}     {m['baselines']['permutation_p']:.3g}"
            )


if __name__ == "__main__":
    main()
