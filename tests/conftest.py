"""Shared fixtures: a tiny synthetic data set in the hub schema and its prepared cache.

They are session-scoped and built once (a few seconds); tests that need to modify them copy
them first. Nothing here downloads anything.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Tests never reach a hub: make any accidental download fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# LSL (eegalign.realtime) stays on loopback in every test: the packaged config, unless the caller set one.
if not os.environ.get("LSLAPICFG"):
    os.environ["LSLAPICFG"] = str(Path(__file__).resolve().parents[1] / "src" / "eegalign" / "realtime" / "lsl_local.cfg")

# A small but complete configuration: 2 subjects x 4 classes x 4 images, full 128 x 440 EEG.
TINY = dict(subjects=2, classes=4, images_per_class=4, seed=0)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic data set directory (train/validation/test parquet + ground-truth targets)."""
    from eegalign.data.synthetic import write_synthetic_dataset

    out = tmp_path_factory.mktemp("synth") / "ds"
    write_synthetic_dataset(out, **TINY)
    return out


@pytest.fixture(scope="session")
def small_cache(synthetic_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prepared cache of ``synthetic_dir``, with image and text targets."""
    from eegalign.data.cache import prepare_cache

    out = tmp_path_factory.mktemp("cache") / "cache"
    return prepare_cache(synthetic_dir, out)


@pytest.fixture
def cache_copy(small_cache: Path, tmp_path: Path) -> Path:
    """A private, writable copy of ``small_cache`` for tests that change it."""
    dst = tmp_path / "cache"
    shutil.copytree(small_cache, dst)
    return dst
