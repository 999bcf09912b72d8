"""The 40 ImageNet classes of the CVPR40 EEG data set (Spampinato et al. 2017).

The table ships with the package (``cvpr40_classes.csv``): wnid, ImageNet-1k index, name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class ImageNetClass:
    wnid: str
    imagenet1k_index: int
    name: str


@lru_cache(maxsize=1)
def cvpr40_classes() -> tuple[ImageNetClass, ...]:
    """The 40 classes in the table's order (sorted by wnid)."""
    text = resources.files("eegalign.data").joinpath("cvpr40_classes.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    return tuple(ImageNetClass(r["wnid"], int(r["imagenet1k_index"]), r["name"]) for r in rows)


def wnid_to_imagenet_index() -> dict[str, int]:
    return {c.wnid: c.imagenet1k_index for c in cvpr40_classes()}


def wnid_to_name() -> dict[str, str]:
    return {c.wnid: c.name for c in cvpr40_classes()}
