"""The SSOD label-fraction protocol: a seeded random fraction of the training images keeps its
labels; the others join the unlabeled set without their annotations.

The semi-supervised detection peers (STAC, Unbiased Teacher, SoftTeacher) measure on COCO with
1 %, 5 % or 10 % of train2017 labeled and the rest unlabeled. Here it puts the embedded benchmark
where labels, not training steps, are what is scarce (docs/decisions.md D107): a teacher plateaus
and the control that trains it on overfits, so a student's unlabeled images can matter.

Categories are kept as they are, so the LVIS frequency groups (r/c/f) are those of the full
annotated set and APr/APc/APf name the same classes at every fraction (a rare class of the full
set keeps its group even when the fraction leaves it 0 labeled images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

Doc = dict[str, Any]


@dataclass(frozen=True)
class LabeledSplit:
    """``train``: the labeled fraction (its annotations); ``unlabeled``: the moved training images
    (no annotations, no ``neg``/``not_exhaustive`` lists), then the source's unlabeled images;
    ``truth``: the same images in the same order with their annotations (for measuring only)."""

    train: Doc
    unlabeled: Doc
    truth: Doc


def check_fraction(fraction: float, seed: int) -> None:
    """Raise ``InputError`` unless ``0 < fraction ≤ 1`` and ``seed`` is a non-negative integer."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise InputError(f"labeled_fraction: expected a number in (0, 1], got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed: expected a non-negative integer, got {seed!r}")


def labeled_subset(image_ids: list[int], fraction: float, seed: int) -> set[int]:
    """The image ids that keep their labels: ``max(1, round(fraction · n))`` of the ``n`` ids,
    chosen by ``numpy.random.default_rng(seed).permutation`` over the ids sorted ascending (so
    the choice does not depend on the order of the json). Raises ``InputError`` unless
    ``0 < fraction ≤ 1`` and ``seed ≥ 0``."""
    check_fraction(fraction, seed)
    ids = sorted(image_ids)
    if not ids:
        return set()
    keep_n = max(1, round(fraction * len(ids)))
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[int(i)] for i in order[:keep_n]}


def split_labeled(
    train: Doc,
    unlabeled: Doc,
    truth: Doc,
    fraction: float,
    seed: int,
    unannotated: list[Doc] | None = None,
) -> LabeledSplit:
    """Apply the protocol to LVIS dicts: ``train`` (annotated), ``unlabeled`` (its images, no
    annotations) and ``truth`` (the same images with their annotations). Inputs are not changed.

    In ``truth`` a moved image keeps its record as in ``train`` (its ``neg_category_ids`` and
    ``not_exhaustive_category_ids`` still say what its annotations cover) and its annotations.
    ``unannotated``: annotations of training images' instances that ``train`` leaves out (a
    generator knows them); given, the moved images' instances among them join ``truth`` and
    their ``not_exhaustive_category_ids`` are emptied, as their truth is then complete.
    Raises ``InputError`` on a bad fraction or seed, or when an image id is in both sets."""
    keep = labeled_subset([im["id"] for im in train["images"]], fraction, seed)
    moved = [im for im in train["images"] if im["id"] not in keep]
    clash = sorted({im["id"] for im in moved} & {im["id"] for im in unlabeled["images"]})
    if clash:
        raise InputError(f"images: ids in both the training and the unlabeled set: {clash[:5]}")
    stripped = [{**im, "neg_category_ids": [], "not_exhaustive_category_ids": []} for im in moved]
    moved_ids = {im["id"] for im in moved}
    truth_images = (
        moved if unannotated is None else [{**im, "not_exhaustive_category_ids": []} for im in moved]
    )
    hidden = [a for a in unannotated or [] if a["image_id"] in moved_ids]
    return LabeledSplit(
        train={
            **train,
            "images": [im for im in train["images"] if im["id"] in keep],
            "annotations": [a for a in train["annotations"] if a["image_id"] in keep],
        },
        unlabeled={**unlabeled, "images": stripped + list(unlabeled["images"]), "annotations": []},
        truth={
            **truth,
            "images": truth_images + list(truth["images"]),
            "annotations": [a for a in train["annotations"] if a["image_id"] in moved_ids]
            + hidden
            + list(truth["annotations"]),
        },
    )
