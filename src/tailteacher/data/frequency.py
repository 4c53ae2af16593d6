"""LVIS frequency groups: rare ≤ 10 training images, common 11–100, frequent > 100."""

from __future__ import annotations

from collections import Counter
from typing import Literal

from .lvis_json import LvisData

Group = Literal["r", "c", "f"]
GROUP_NAMES: dict[str, str] = {"r": "rare", "c": "common", "f": "frequent"}


def group_of(image_count: int) -> Group:
    """The LVIS rule on the number of training images that contain the class."""
    if image_count <= 10:
        return "r"
    return "c" if image_count <= 100 else "f"


def image_counts(data: LvisData) -> dict[int, int]:
    """Number of images with at least one annotation of each category id (0 if none)."""
    seen = {(int(a["image_id"]), int(a["category_id"])) for a in data.annotations}
    counts = Counter(cid for _, cid in seen)
    return {cid: counts.get(cid, 0) for cid in data.category_ids}


def instance_counts(data: LvisData) -> dict[int, int]:
    counts = Counter(int(a["category_id"]) for a in data.annotations)
    return {cid: counts.get(cid, 0) for cid in data.category_ids}


def frequency_groups(data: LvisData, *, from_file: bool = True) -> dict[int, Group]:
    """Group of each category id: the file's ``frequency`` when every category has one
    (LVIS files do, computed on the full training set), else computed from ``data``'s own
    annotations, which must then be the training annotations."""
    if from_file and all(c.get("frequency") in ("r", "c", "f") for c in data.categories):
        return {int(c["id"]): c["frequency"] for c in data.categories}
    return {cid: group_of(n) for cid, n in image_counts(data).items()}
