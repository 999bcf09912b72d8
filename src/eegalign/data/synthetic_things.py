"""A synthetic twin of the THINGS-EEG2 release, in its exact file layout (see :mod:`eegalign.data.things`).

The generative model is :class:`eegalign.data.synthetic.SyntheticWorld` (docs/synthetic.md): one
world class per concept, ``train_concepts`` training concepts with ``images_per_concept`` images
each and ``test_concepts`` held-out concepts with one image each (concept-disjoint, as in the
release). Every image is shown ``repetitions[0]`` (training) or ``repetitions[1]`` (test) times
per subject; each repetition is a fresh trial (new noise, latency jitter and amplitude variability).
Trials are ``n_chans x n_times`` at ``n_times`` Hz (a one-second epoch from -0.2 s, like the
release's 17 x 100 and 63 x 250 variants). Ground-truth targets are written to
``targets/{image,text}.safetensors`` keyed by the images' ids, which ``prepare`` copies.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from eegalign.errors import ConfigError, DataError

_BLOCK = 128  # trials simulated per call


def _folder(k: int, name: str) -> str:
    return f"{k + 1:05d}_{name.replace(' ', '_')}"


def _simulate(world: object, subject: int, images: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(n_images, reps, C, T) float32 trials of one subject (0-based) for the given world images."""
    img = np.repeat(images, reps)  # image-major, repetitions together
    out = np.empty((len(img), world.params.n_chans, world.params.n_times), dtype=np.float32)  # (n*R, C, T)
    for lo in range(0, len(img), _BLOCK):
        blk = img[lo : lo + _BLOCK]
        out[lo : lo + len(blk)] = world.eeg(np.full(len(blk), subject), blk, rng)
    return out.reshape(len(images), reps, *out.shape[1:])


def write_synthetic_things(
    out_dir: str | os.PathLike,
    *,
    subjects: int = 2,
    train_concepts: int = 24,
    test_concepts: int = 8,
    images_per_concept: int = 4,
    repetitions: tuple[int, int] = (4, 8),
    n_chans: int = 17,
    n_times: int = 100,
    seed: int = 0,
    snr: float = 1.0,
    image_size: int = 64,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic THINGS-EEG2 release to ``out_dir`` (atomically) and return it."""
    from eegalign.data.classes import cvpr40_classes
    from eegalign.data.sources import image_id_from_name
    from eegalign.data.synthetic import SynthParams, SyntheticWorld
    from eegalign.data.things import META_FILE, TEST_FILE, TRAIN_FILE, image_key
    from eegalign.io import atomic_dir, save_tensors, write_json

    n_concepts = train_concepts + test_concepts
    if train_concepts < 2 or test_concepts < 2 or min(repetitions) < 1 or len(repetitions) != 2:
        raise ConfigError("synthetic THINGS-EEG2: need >= 2 training and >= 2 test concepts and >= 1 repetition")
    if n_concepts > len(cvpr40_classes()):
        raise ConfigError(f"synthetic THINGS-EEG2: at most {len(cvpr40_classes())} concepts in all")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it")
    params = SynthParams(subjects=subjects, classes=n_concepts, images_per_class=images_per_concept, seed=seed, snr=snr,
                         n_chans=n_chans, n_times=n_times, sfreq=float(n_times), image_size=image_size)
    params.validate()
    world = SyntheticWorld(params)
    names = [c.name for c in cvpr40_classes()[:n_concepts]]
    per = images_per_concept
    parts = {  # world image indices and (concept folder, file) per release image, in EEG order
        "train": [(c * per + j, _folder(c, names[c]), f"{names[c].replace(' ', '_')}_{j + 1:02d}s.jpg")
                  for c in range(train_concepts) for j in range(per)],
        "test": [(c * per, _folder(c - train_concepts, names[c]), f"{names[c].replace(' ', '_')}_01s.jpg")
                 for c in range(train_concepts, n_concepts)],
    }
    jpegs = world.stimuli()
    ch_names = [f"EEG{i + 1:02d}" for i in range(n_chans)]
    times = np.arange(n_times) / float(n_times) - 0.2  # seconds, -0.2 .. 0.8
    rng = world.trial_rng()
    with atomic_dir(out, overwrite=overwrite, kind="synthetic", command="eegalign data synth --layout things-eeg2") as tmp:
        meta = {}
        for part, rows in parts.items():
            folder = "training_images" if part == "train" else "test_images"
            for i, concept, file in rows:
                (tmp / folder / concept).mkdir(parents=True, exist_ok=True)
                (tmp / folder / concept / file).write_bytes(jpegs[i])
            meta[f"{part}_img_concepts"] = [c for _, c, _ in rows]
            meta[f"{part}_img_files"] = [f for _, _, f in rows]
        np.save(tmp / META_FILE, meta, allow_pickle=True)
        for s in range(subjects):
            sub = tmp / f"sub-{s + 1:02d}"
            sub.mkdir()
            for part, name, reps in (("train", TRAIN_FILE, repetitions[0]), ("test", TEST_FILE, repetitions[1])):
                idx = np.asarray([i for i, _, _ in parts[part]])
                data = _simulate(world, s, idx, reps, rng)  # (n_images, R, C, T)
                np.save(sub / name, {"preprocessed_eeg_data": data, "ch_names": ch_names, "times": times}, allow_pickle=True)
        all_rows = [(part, i, c, f) for part, rows in parts.items() for i, c, f in rows]
        ids = [image_id_from_name(image_key(part, c, f)) for part, _, c, f in all_rows]
        rows = [i for _, i, _, _ in all_rows]
        tag = {"image_ids": ids, "model": f"synthetic:{seed}"}
        save_tensors(tmp / "targets" / "image.safetensors", {"embeddings": world.image_targets[rows]}, {**tag, "route": "image"})
        save_tensors(tmp / "targets" / "text.safetensors", {"embeddings": world.text_targets[rows]}, {**tag, "route": "text"})
        write_json(tmp / "synthetic.json", {
            "generator": "eegalign.data.synthetic_things", "layout": "THINGS-EEG2 release",
            "params": {"subjects": subjects, "train_concepts": train_concepts, "test_concepts": test_concepts,
                       "images_per_concept": per, "repetitions": list(repetitions), "n_chans": n_chans,
                       "n_times": n_times, "sfreq": float(n_times), "seed": seed, "snr": snr},
        })
    return out
