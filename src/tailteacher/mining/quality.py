"""How rare-rich a mined set is, against the pool's truth (a benchmark knows it; measuring only).

Figures per LVIS group g (of the training set): instances of g in the chosen images, their share of
all instances there, and recall: the share of the pool's instances of g that lie in the chosen
images (issue 13 §2).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..data.lvis_json import LvisData


def truth_figures(truth: LvisData, image_ids: Iterable[int], groups: Mapping[int, str]) -> dict[str, Any]:
    """``{"images", "instances", "groups": {g: {"instances", "share", "recall"}}}`` for the images
    ``image_ids`` of ``truth`` (ids of ``truth``); ``groups``: category id → "r" / "c" / "f"."""
    chosen = set(image_ids)
    total = {g: 0 for g in "rcf"}
    found = {g: 0 for g in "rcf"}
    for ann in truth.annotations:
        g = groups.get(int(ann["category_id"]))
        if g is None:
            continue
        total[g] += 1
        if int(ann["image_id"]) in chosen:
            found[g] += 1
    n = sum(found.values())
    return {
        "images": len(chosen),
        "instances": n,
        "groups": {
            g: {
                "instances": found[g],
                "share": found[g] / n if n else 0.0,
                "recall": found[g] / total[g] if total[g] else 0.0,
            }
            for g in "rcf"
        },
    }
