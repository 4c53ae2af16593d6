"""The paper's protocol: an 85/15 split of the training images, the 15 % held out for tuning and
for measuring the teacher's calibration (Eq. 4) on images it never trained on.

Deterministic for a seed. Every class with at least 2 images keeps one in each part: classes
are served rarest first, each reserving one of its images for training and one for the held-out
part, so a rare class is not starved by a frequent one that shares its images; the rest of the
held-out quota is then filled at random. A class with one image keeps it for training (D116): no
reservation takes it, and the random fill takes it last. When constraints conflict (an image is the only
training image of one class and the only candidate held-out image of another) the class served
first wins, and the report says how many classes miss a part.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, Problem
from ..io import atomic_write_json
from .frequency import GROUP_NAMES, frequency_groups, image_counts
from .lvis_json import LvisData


@dataclass(frozen=True)
class SplitReport:
    train_images: int
    heldout_images: int
    # per group name: (classes, classes with images in both parts, classes with ≥ 2 images)
    groups: dict[str, tuple[int, int, int]]

    def lines(self) -> list[str]:
        out = [f"train {self.train_images} images, held-out {self.heldout_images} images"]
        for name, (n, both, eligible) in self.groups.items():
            out.append(f"  {name:<9} {n:>5} classes; in both parts: {both} of the {eligible} with ≥ 2 images")
        return out


def split_heldout(data: LvisData, heldout: float = 0.15, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train image ids, held-out image ids), each sorted and both non-empty.

    The held-out part has ``round(heldout × images)`` images, at least 1 and at most all but one.

    Raises:
        ValueError: ``heldout`` outside (0, 1).
        InputError: fewer than 2 images (nothing to hold out without emptying the training part).
    """
    if not 0 < heldout < 1:
        raise InputError(f"--heldout: expected a fraction in (0, 1), got {heldout}")
    rng = np.random.default_rng(seed)
    ids = sorted(data.images)
    if len(ids) < 2:
        message = f"{len(ids)} image(s): a split needs at least 2, one for each part"
        raise InputError([Problem(str(data.path), "file", "images", message)])
    target = min(max(round(heldout * len(ids)), 1), len(ids) - 1)
    images_of: dict[int, list[int]] = defaultdict(list)
    for iid in ids:
        for cid in sorted({int(a["category_id"]) for a in data.anns_by_image.get(iid, [])}):
            images_of[cid].append(iid)
    keep_train: set[int] = set()
    held: set[int] = set()
    only = {imgs[0] for imgs in images_of.values() if len(imgs) == 1}  # a class's only image
    counts = image_counts(data)
    for cid in sorted(images_of, key=lambda c: (counts[c], c)):
        imgs = images_of[cid]
        if len(imgs) < 2:
            continue
        order = [imgs[k] for k in rng.permutation(len(imgs))]
        if not any(i in keep_train for i in imgs):
            free = [i for i in order if i not in held]
            if free:
                keep_train.add(free[0])
        if not any(i in held for i in imgs):
            free = [i for i in order if i not in keep_train and i not in only]
            if free:
                held.add(free[0])
    rest = [ids[k] for k in rng.permutation(len(ids)) if ids[k] not in keep_train and ids[k] not in held]
    rest = [i for i in rest if i not in only] + [i for i in rest if i in only]
    held.update(rest[: max(0, target - len(held))])
    return sorted(set(ids) - held), sorted(held)


def subset_json(raw: dict[str, Any], image_ids: list[int]) -> dict[str, Any]:
    """``raw`` (an LVIS/COCO json) with only ``image_ids``' images and their annotations."""
    keep = set(image_ids)
    out = {k: v for k, v in raw.items() if k not in ("images", "annotations")}
    out["images"] = [img for img in raw["images"] if img["id"] in keep]
    out["annotations"] = [a for a in raw["annotations"] if a["image_id"] in keep]
    return out


def write_split(
    data: LvisData, out: str | os.PathLike[str], heldout: float = 0.15, seed: int = 0
) -> SplitReport:
    """Write ``out/train.json`` and ``out/heldout.json``; categories (and their frequency groups,
    which are those of the full training set) are copied unchanged into both."""
    train_ids, held_ids = split_heldout(data, heldout, seed)
    out_dir = Path(out)
    atomic_write_json(out_dir / "train.json", subset_json(data.raw, train_ids))
    atomic_write_json(out_dir / "heldout.json", subset_json(data.raw, held_ids))
    groups = frequency_groups(data)
    held_set = set(held_ids)
    in_train = {int(a["category_id"]) for a in data.annotations if a["image_id"] not in held_set}
    in_held = {int(a["category_id"]) for a in data.annotations if a["image_id"] in held_set}
    counts = image_counts(data)
    report: dict[str, tuple[int, int, int]] = {}
    for g, name in GROUP_NAMES.items():
        cids = [c for c in data.category_ids if groups[c] == g]
        eligible = [c for c in cids if counts[c] >= 2]
        both = sum(1 for c in eligible if c in in_train and c in in_held)
        report[name] = (len(cids), both, len(eligible))
    return SplitReport(len(train_ids), len(held_ids), report)
