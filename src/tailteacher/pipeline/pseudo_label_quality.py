"""How good are the teacher's pseudo-labels? Precision and recall against the unlabeled pool's truth.

Only a pool whose truth is known can say so: the embedded benchmark writes ``unlabeled_truth.json``
beside ``unlabeled.json`` (never used for training). The teacher runs on each image without
augmentation (weak = strong view), the student's pseudo-label rule makes its boxes, and a box is
correct when it overlaps a true object of its top class at box IoU ≥ 0.5. Per frequency group
(of the true class for recall, of the box's class for precision) and overall.

Shapes: D detections, B kept pseudo-boxes, G true objects of one image, C classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torchvision.ops import box_iou

from ..data.geometry import Geometry
from ..modeling import Predictor
from .pseudo_labels import PseudoLabelConfig, make_pseudo_labels

GROUPS = ("r", "c", "f")
GROUP_NAMES = {"r": "rare", "c": "common", "f": "frequent"}


@dataclass
class QualityCounts:
    """Running counts per group [3] (r, c, f): true objects found with their class, true objects,
    correct pseudo-boxes, pseudo-boxes; and the images seen."""

    found: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.long))
    objects: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.long))
    correct: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.long))
    boxes: torch.Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.long))
    images: int = 0

    def add(
        self,
        boxes: torch.Tensor,
        labels: torch.Tensor,
        true_boxes: torch.Tensor,
        true_labels: torch.Tensor,
        group_of: torch.Tensor,
    ) -> None:
        """One image: pseudo-boxes [B, 4] XYXY with classes [B], true boxes [G, 4] with classes [G];
        ``group_of`` [C] maps a class to 0/1/2 (r/c/f)."""
        self.images += 1
        self.objects += torch.bincount(group_of[true_labels], minlength=3)
        self.boxes += torch.bincount(group_of[labels], minlength=3)
        if len(labels) == 0 or len(true_labels) == 0:
            return
        matched = (box_iou(boxes, true_boxes) >= 0.5) & (labels[:, None] == true_labels[None, :])
        self.found += torch.bincount(group_of[true_labels[matched.any(dim=0)]], minlength=3)
        self.correct += torch.bincount(group_of[labels[matched.any(dim=1)]], minlength=3)

    def rows(self) -> list[dict[str, Any]]:
        """One row per group and one for all: boxes per image, precision, recall, true objects."""

        def row(name: str, found: int, objects: int, correct: int, boxes: int) -> dict[str, Any]:
            return {
                "group": name,
                "boxes_per_image": boxes / max(self.images, 1),
                "precision": correct / boxes if boxes else None,
                "recall": found / objects if objects else None,
                "objects": objects,
            }

        out = [
            row(GROUP_NAMES[g], *(int(t[k]) for t in (self.found, self.objects, self.correct, self.boxes)))
            for k, g in enumerate(GROUPS)
        ]
        out.append(row("all", *(int(t.sum()) for t in (self.found, self.objects, self.correct, self.boxes))))
        return out


def evenly_spaced(items: Sequence[Any], m: int) -> list[Any]:
    """``m`` items spread evenly over ``items`` (in order: ``items[k·n // m]`` for k < m), or all
    of them when ``m ≥ n``. The pseudo-label check samples the unlabeled set's sorted image ids
    with it: an unlabeled set may hold its parts in id ranges (the label-fraction protocol's
    training images it unlabeled, with the training set's class mix, have lower ids than the
    pool's), so its first ``m`` ids are not a sample of what the student draws from (ours, D117).

    Raises:
        ValueError: ``m`` < 1.
    """
    if m < 1:
        raise ValueError(f"m: expected an integer ≥ 1, got {m!r}")
    n = len(items)
    return list(items) if m >= n else [items[k * n // m] for k in range(m)]


def group_index(frequencies: Sequence[str]) -> torch.Tensor:
    """[C] 0/1/2 for each class's LVIS frequency letter (r/c/f); unknown letters count as f."""
    return torch.tensor([GROUPS.index(f) if f in GROUPS else 2 for f in frequencies], dtype=torch.long)


@torch.no_grad()
def measure_pseudo_labels(
    model: Predictor,
    samples: Any,
    rule: PseudoLabelConfig,
    delta: torch.Tensor | None,
    group_of: torch.Tensor,
    device: torch.device,
    *,
    masks: bool = True,
    class_weights: torch.Tensor | None = None,
) -> QualityCounts:
    """Counts of ``rule``'s pseudo-labels from ``model`` (eval mode) on ``samples`` (an iterable of
    ``data.dataset.Sample`` with the pool's true boxes and classes). ``masks``: predict masks, as
    the student's teacher does only with ``student.unsup_mask_loss`` (a box whose mask is empty is
    then dropped with it; D114). Boxes the rule ignores (weight 0: a score in
    [``ignore_threshold``, τ)) are no pseudo-labels and are not counted, as the student's
    ``pseudo_boxes`` does not count them. ``class_weights``: as `make_pseudo_labels`."""
    from .data import images_of

    counts = QualityCounts()
    model.eval()
    for s in samples:
        detections = model.predict(images_of([s], device), masks=masks)[0]
        detections = {k: v.cpu() for k, v in detections.items()}
        view = Geometry.identity(tuple(s.image.shape[-2:]))
        pseudo = make_pseudo_labels(detections, rule, delta, view, view, class_weights)
        labeled = pseudo["weights"] > 0 if "weights" in pseudo else slice(None)
        true_boxes = s.boxes.as_subclass(torch.Tensor)
        counts.add(pseudo["boxes"][labeled], pseudo["labels"][labeled], true_boxes, s.labels, group_of)
    return counts


@torch.no_grad()
def measure_detections(
    model: Predictor,
    samples: Any,
    thresholds: Sequence[float],
    group_of: torch.Tensor,
    device: torch.device,
) -> dict[float, QualityCounts]:
    """Counts of ``model``'s raw detections (eval output, after its per-class NMS, no pseudo-label
    rule) scoring ≥ each threshold, from one pass over ``samples`` (as `measure_pseudo_labels`).

    An upper bound on what a per-class threshold could reach: a true object counts as found at τ
    when a detection of its class at IoU ≥ 0.5 scores ≥ τ, and precision per group is that of the
    detections of the group's classes scoring ≥ τ. Detections are (box, class) pairs, so one box
    may count under several classes (a pseudo-label rule keeps one class per box, merges
    duplicates and caps ``max_boxes``); the model's own ``score_threshold`` and
    ``detections_per_image`` bound them. Masks are not predicted.

    Returns:
        {τ: counts}, one entry per threshold, in the order given.
    """
    from .data import images_of

    counts = {t: QualityCounts() for t in thresholds}
    model.eval()
    for s in samples:
        d = model.predict(images_of([s], device), masks=False)[0]
        boxes, scores, labels = d["boxes"].cpu().float(), d["scores"].cpu(), d["labels"].cpu().long()
        true_boxes = s.boxes.as_subclass(torch.Tensor)
        for t, c in counts.items():
            keep = scores >= t
            c.add(boxes[keep], labels[keep], true_boxes, s.labels, group_of)
    return counts
