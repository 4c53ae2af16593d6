"""The pseudo-label check's counts (`pipeline.pseudo_label_quality.measure_pseudo_labels`, and
`measure_detections` for raw detections) on a stub teacher whose detections are hand-built, so
every count is known exactly; and the images the run's check samples (D117)."""

from __future__ import annotations

import random

import pytest
import torch

from tailteacher.data.dataset import Sample
from tailteacher.pipeline.pseudo_label_quality import (
    evenly_spaced,
    group_index,
    measure_detections,
    measure_pseudo_labels,
)
from tailteacher.pipeline.pseudo_labels import PseudoLabelConfig
from tailteacher.pipeline.run import PSEUDO_LABEL_CHECK_IMAGES, pseudo_label_check_ids

S = 64


class StubTeacher:
    """Three detections of the same image: class 0 at 0.9 on the true object, class 1 at 0.3 on
    the second true object, class 2 at 0.8 where nothing is."""

    def __init__(self) -> None:
        self.masks: list[bool] = []

    def eval(self) -> StubTeacher:
        return self

    def predict(self, images: list[torch.Tensor], *, masks: bool = True) -> list[dict[str, torch.Tensor]]:
        self.masks.append(masks)
        boxes = torch.tensor([[4.0, 4.0, 24.0, 24.0], [34.0, 34.0, 60.0, 60.0], [40.0, 2.0, 60.0, 20.0]])
        class_scores = torch.tensor([[0.9, 0.05, 0.0], [0.1, 0.3, 0.0], [0.0, 0.1, 0.8]])
        out = {
            "boxes": boxes,
            "scores": class_scores.max(dim=1).values,
            "labels": class_scores.argmax(dim=1),
            "class_scores": class_scores,
        }
        if masks:
            m = torch.zeros(3, 1, S, S)
            for i, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
                m[i, 0, y1:y2, x1:x2] = 0.9
            out["masks"] = m
        return [out for _ in images]


def sample() -> Sample:
    image = torch.zeros(3, S, S, dtype=torch.uint8)
    boxes = torch.tensor([[4.0, 4.0, 24.0, 24.0], [34.0, 34.0, 60.0, 60.0]])
    return Sample(1, image, boxes, torch.tensor([0, 1]), torch.zeros(2, S, S, dtype=torch.uint8))  # type: ignore[arg-type]


GROUPS = group_index(["r", "c", "f"])  # class 0 rare, 1 common, 2 frequent


def rows(rule: PseudoLabelConfig, masks: bool = False) -> dict[str, dict[str, object]]:
    teacher = StubTeacher()
    counts = measure_pseudo_labels(teacher, [sample()], rule, None, GROUPS, torch.device("cpu"), masks=masks)
    assert teacher.masks == [masks]
    return {r["group"]: r for r in counts.rows()}


def test_boxes_over_tau_are_counted_per_group_of_their_class():
    out = rows(PseudoLabelConfig(mode="onehot", box_threshold=0.5))
    rare = {"group": "rare", "boxes_per_image": 1.0, "precision": 1.0, "recall": 1.0, "objects": 1}
    assert out["rare"] == rare
    assert out["common"]["boxes_per_image"] == 0.0 and out["common"]["recall"] == 0.0
    assert out["frequent"] == {
        "group": "frequent",
        "boxes_per_image": 1.0,
        "precision": 0.0,
        "recall": None,
        "objects": 0,
    }
    assert out["all"]["precision"] == 0.5 and out["all"]["recall"] == 0.5


def test_ignored_boxes_are_no_pseudo_labels():
    # With the ignore band [0.2, 0.5) the class-1 box at 0.3 becomes an ignored region (weight 0):
    # the student takes no loss on it, so the check must not count it as found or as a box.
    out = rows(PseudoLabelConfig(mode="onehot", box_threshold=0.5, ignore_threshold=0.2))
    assert out["common"]["boxes_per_image"] == 0.0 and out["common"]["recall"] == 0.0
    assert out["all"]["boxes_per_image"] == 2.0


def test_masks_are_predicted_only_when_asked():
    with_masks = rows(PseudoLabelConfig(mode="onehot", box_threshold=0.5), masks=True)
    assert with_masks == rows(PseudoLabelConfig(mode="onehot", box_threshold=0.5), masks=False)


def test_raw_detections_are_counted_at_every_threshold_from_one_pass():
    teacher = StubTeacher()
    counts = measure_detections(teacher, [sample()], (0.2, 0.5, 0.95, 0.3), GROUPS, torch.device("cpu"))
    assert teacher.masks == [False]  # one pass, no masks
    assert list(counts) == [0.2, 0.5, 0.95, 0.3]
    # τ equal to a score keeps the detection (≥): the class-1 box scores exactly 0.3.
    assert {r["group"]: r for r in counts[0.3].rows()}["common"]["recall"] == 1.0
    low = {r["group"]: r for r in counts[0.2].rows()}
    # τ 0.2 keeps all three: the class-1 box at 0.3 finds the common object, the class-2 box is wrong.
    assert low["common"] == {
        "group": "common",
        "boxes_per_image": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "objects": 1,
    }
    assert low["all"]["precision"] == 2 / 3 and low["all"]["recall"] == 1.0
    mid = {r["group"]: r for r in counts[0.5].rows()}
    assert mid["common"]["recall"] == 0.0 and mid["all"]["boxes_per_image"] == 2.0
    high = {r["group"]: r for r in counts[0.95].rows()}
    assert high["all"]["boxes_per_image"] == 0.0 and high["all"]["precision"] is None


def test_the_runs_check_samples_every_part_of_the_unlabeled_set():
    # 250 unlabeled training images (ids 1-250) listed before 750 pool images (ids 1001-1750),
    # shuffled: the first 200 ids would all be training images; the check takes 50 and 150.
    ids = list(range(1, 251)) + list(range(1001, 1751))
    random.Random(0).shuffle(ids)
    picked = pseudo_label_check_ids(ids)
    assert len(picked) == PSEUDO_LABEL_CHECK_IMAGES == 200
    assert picked[:3] == [1, 6, 11] and picked[-1] == 1746
    assert sum(i <= 250 for i in picked) == 50


def test_evenly_spaced_spreads_the_sample_over_every_part_of_the_list():
    # An unlabeled set listing 6 unlabeled training images before 6 pool images: 4 draws take
    # 2 of each part (the first 4 would take none of the pool).
    ids = [1, 2, 3, 4, 5, 6, 101, 102, 103, 104, 105, 106]
    assert evenly_spaced(ids, 4) == [1, 4, 101, 104]
    assert evenly_spaced(ids, 12) == ids and evenly_spaced(ids, 50) == ids
    assert evenly_spaced(ids, 1) == [1]
    with pytest.raises(ValueError, match="m: expected"):
        evenly_spaced(ids, 0)
