"""The SSOD label-fraction protocol: a seeded random fraction of the training images keeps its
labels; the others join the unlabeled set without their annotations.

The semi-supervised detection peers (STAC, Unbiased Teacher, SoftTeacher) measure on COCO with
1 %, 5 % or 10 % of train2017 labeled and the rest unlabeled. Here it puts the embedded benchmark
where labels, not training steps, are what is scarce (docs/decisions.md D107): a teacher plateaus
and the control that trains it on overfits, so a student's unlabeled images can matter.

Categories are kept as they are, so the LVIS frequency groups (r/c/f) are those of the full
annotated set and APr/APc/APf name the same classes at every fraction. Every class with an image
keeps at least one labeled image (D116): LVIS calls a class rare when it has 1–10 training
images, never 0, and a class without a labeled image is a zero-shot class that no pseudo-label
method can learn (a uniformly random 25 % left 16 of `demo`'s 28 rare classes without one).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
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


def labeled_subset(
    image_ids: list[int],
    fraction: float,
    seed: int,
    classes_of: Mapping[int, Set[int]] | None = None,
) -> set[int]:
    """The image ids that keep their labels: ``max(1, round(fraction · n))`` of the ``n`` ids,
    first in the order of ``numpy.random.default_rng(seed).permutation`` over the ids sorted
    ascending (so the choice does not depend on the order of the json).

    With ``classes_of`` (image id → the classes annotated in it), every class that some image
    has keeps at least one labeled image (D116): classes left without one are served rarest first
    (fewest images, then id); each takes its first image in permutation order, and the last chosen
    image whose classes all keep another labeled image leaves, so the count stays the same. Only
    where no image can leave does the subset grow by one.

    Raises:
        InputError: unless ``0 < fraction ≤ 1`` and ``seed ≥ 0``.
    """
    check_fraction(fraction, seed)
    ids = sorted(image_ids)
    if not ids:
        return set()
    keep_n = max(1, round(fraction * len(ids)))
    order = [ids[int(i)] for i in np.random.default_rng(seed).permutation(len(ids))]
    chosen = order[:keep_n]
    if classes_of is None:
        return set(chosen)
    images_of: dict[int, list[int]] = {}
    for iid in order:  # permutation order: a class's first image is its first candidate
        for c in classes_of.get(iid, ()):
            images_of.setdefault(c, []).append(iid)
    chosen_set = set(chosen)
    labeled = {c: sum(1 for i in imgs if i in chosen_set) for c, imgs in images_of.items()}
    protected: set[int] = set()
    for c in sorted(images_of, key=lambda c: (len(images_of[c]), c)):
        if labeled[c] > 0:
            continue
        new = images_of[c][0]
        chosen.append(new)
        protected.add(new)
        for k in classes_of.get(new, ()):
            labeled[k] += 1
        for old in reversed(chosen):
            if old not in protected and all(labeled[k] > 1 for k in classes_of.get(old, ())):
                chosen.remove(old)
                for k in classes_of.get(old, ()):
                    labeled[k] -= 1
                break
    return set(chosen)


def split_labeled(
    train: Doc,
    unlabeled: Doc,
    truth: Doc,
    fraction: float,
    seed: int,
    unannotated: list[Doc] | None = None,
    cover_classes: bool = True,
) -> LabeledSplit:
    """Apply the protocol to LVIS dicts: ``train`` (annotated), ``unlabeled`` (its images, no
    annotations) and ``truth`` (the same images with their annotations). Inputs are not changed.

    In ``truth`` a moved image keeps its record as in ``train`` (its ``neg_category_ids`` and
    ``not_exhaustive_category_ids`` still say what its annotations cover) and its annotations.
    ``unannotated``: annotations of training images' instances that ``train`` leaves out (a
    generator knows them); given, the moved images' instances among them join ``truth`` and
    their ``not_exhaustive_category_ids`` are emptied, as their truth is then complete.
    ``cover_classes``: every class keeps a labeled image (``labeled_subset``, D116); False gives
    the uniformly random subset of D107.
    Raises ``InputError`` on a bad fraction or seed, or when an image id is in both sets."""
    classes_of: dict[int, set[int]] | None = None
    if cover_classes:
        classes_of = {}
        for a in train["annotations"]:
            classes_of.setdefault(a["image_id"], set()).add(a["category_id"])
    keep = labeled_subset([im["id"] for im in train["images"]], fraction, seed, classes_of)
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
