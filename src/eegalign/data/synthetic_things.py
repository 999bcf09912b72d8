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
from typing import TYPE_CHECKING

import numpy as np

from eegalign.errors import ConfigError, DataError

if TYPE_CHECKING:
    from eegalign.data.synthetic import SyntheticWorld

_BLOCK = 128  # trials simulated per call


def _folder(k: int, name: str) -> str:
    return f"{k + 1:05d}_{name.replace(' ', '_')}"


def _simulate(world: SyntheticWorld, subject: int, images: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(n_images, reps, C, T) float32 trials of one subject (0-based) for the given world images."""
    img = np.repeat(images, reps)  # image-major, repetitions together
    out = np.empty((len(img), world.params.n_chans, world.params.n_times), dtype=np.float32)  # (n*R, C, T)
    for lo in range(0, len(img), _BLOCK):
        blk = img[lo : lo + _BLOCK]
        out[lo : lo + len(blk)] = world.eeg(np.full(len(blk), subject), blk, rng)
    return out.reshape(len(images), reps, *out.shape[1:])


# (world image index, concept folder, file name) of one release image
_Row = tuple[int, str, str]


def _check_sizes(train_concepts: int, test_concepts: int, repetitions: tuple[int, int]) -> None:
    """ConfigError unless there are >= 2 training and >= 2 test concepts, >= 1 repetition each and at most
    as many concepts in all as the class table has."""
    from eegalign.data.classes import cvpr40_classes

    if train_concepts < 2 or test_concepts < 2 or min(repetitions) < 1 or len(repetitions) != 2:
        raise ConfigError("synthetic THINGS-EEG2: need >= 2 training and >= 2 test concepts and >= 1 repetition")
    if train_concepts + test_concepts > len(cvpr40_classes()):
        raise ConfigError(f"synthetic THINGS-EEG2: at most {len(cvpr40_classes())} concepts in all")


def _release_rows(names: list[str], train_concepts: int, per: int) -> dict[str, list[_Row]]:
    """Per part (train/test), the release images in EEG order: ``per`` images of each training concept,
    then the first image of each held-out concept (``names`` lists every concept, training ones first)."""
    n_concepts = len(names)
    return {
        "train": [(c * per + j, _folder(c, names[c]), f"{names[c].replace(' ', '_')}_{j + 1:02d}s.jpg")
                  for c in range(train_concepts) for j in range(per)],
        "test": [(c * per, _folder(c - train_concepts, names[c]), f"{names[c].replace(' ', '_')}_01s.jpg")
                 for c in range(train_concepts, n_concepts)],
    }


def _write_images(root: Path, parts: dict[str, list[_Row]], jpegs: list[bytes]) -> None:
    """The ``training_images``/``test_images`` concept folders and the image metadata file under ``root``."""
    from eegalign.data.things import META_FILE

    meta = {}
    for part, rows in parts.items():
        folder = "training_images" if part == "train" else "test_images"
        for i, concept, file in rows:
            (root / folder / concept).mkdir(parents=True, exist_ok=True)
            (root / folder / concept / file).write_bytes(jpegs[i])
        meta[f"{part}_img_concepts"] = [c for _, c, _ in rows]
        meta[f"{part}_img_files"] = [f for _, _, f in rows]
    np.save(root / META_FILE, meta, allow_pickle=True)


def _write_subjects(
    root: Path, world: SyntheticWorld, parts: dict[str, list[_Row]], repetitions: tuple[int, int], rng: np.random.Generator
) -> None:
    """``sub-XX/`` training and test EEG files of every subject, simulated in order from the one stream ``rng``."""
    from eegalign.data.things import TEST_FILE, TRAIN_FILE

    p = world.params
    ch_names = [f"EEG{i + 1:02d}" for i in range(p.n_chans)]
    times = np.arange(p.n_times) / float(p.n_times) - 0.2  # seconds, -0.2 .. 0.8
    for s in range(p.subjects):
        sub = root / f"sub-{s + 1:02d}"
        sub.mkdir()
        for part, name, reps in (("train", TRAIN_FILE, repetitions[0]), ("test", TEST_FILE, repetitions[1])):
            idx = np.asarray([i for i, _, _ in parts[part]])
            data = _simulate(world, s, idx, reps, rng)  # (n_images, R, C, T)
            np.save(sub / name, {"preprocessed_eeg_data": data, "ch_names": ch_names, "times": times}, allow_pickle=True)


def _write_targets(root: Path, world: SyntheticWorld, parts: dict[str, list[_Row]], seed: int) -> None:
    """Ground-truth ``targets/{image,text}.safetensors`` keyed by the release images' ids (train, then test)."""
    from eegalign.data.sources import image_id_from_name
    from eegalign.data.things import image_key
    from eegalign.io import save_tensors

    all_rows = [(part, i, c, f) for part, rows in parts.items() for i, c, f in rows]
    ids = [image_id_from_name(image_key(part, c, f)) for part, _, c, f in all_rows]
    rows = [i for _, i, _, _ in all_rows]
    tag = {"image_ids": ids, "model": f"synthetic:{seed}"}
    save_tensors(root / "targets" / "image.safetensors", {"embeddings": world.image_targets[rows]}, {**tag, "route": "image"})
    save_tensors(root / "targets" / "text.safetensors", {"embeddings": world.text_targets[rows]}, {**tag, "route": "text"})


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
    from eegalign.data.synthetic import SynthParams, SyntheticWorld
    from eegalign.io import atomic_dir, write_json

    n_concepts = train_concepts + test_concepts
    _check_sizes(train_concepts, test_concepts, repetitions)
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it")
    params = SynthParams(subjects=subjects, classes=n_concepts, images_per_class=images_per_concept, seed=seed, snr=snr,
                         n_chans=n_chans, n_times=n_times, sfreq=float(n_times), image_size=image_size)
    params.validate()
    world = SyntheticWorld(params)
    parts = _release_rows([c.name for c in cvpr40_classes()[:n_concepts]], train_concepts, images_per_concept)
    jpegs = world.stimuli()
    rng = world.trial_rng()
    with atomic_dir(out, overwrite=overwrite, kind="synthetic", command="eegalign data synth --layout things-eeg2") as tmp:
        _write_images(tmp, parts, jpegs)
        _write_subjects(tmp, world, parts, repetitions, rng)
        _write_targets(tmp, world, parts, seed)
        write_json(tmp / "synthetic.json", {
            "generator": "eegalign.data.synthetic_things", "layout": "THINGS-EEG2 release",
            "params": {"subjects": subjects, "train_concepts": train_concepts, "test_concepts": test_concepts,
                       "images_per_concept": images_per_concept, "repetitions": list(repetitions), "n_chans": n_chans,
                       "n_times": n_times, "sfreq": float(n_times), "seed": seed, "snr": snr},
        })
    return out
