"""Pseudo-labels from hand-built teacher detections: exact targets per mode, dedupe, geometry."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from tailteacher.data.geometry import Geometry
from tailteacher.modeling import ModelConfig, build_model
from tailteacher.pipeline.pseudo_labels import (
    PseudoLabelConfig,
    make_pseudo_labels,
    merge_duplicates,
    pseudo_label_stats,
)

S = 32  # the weak view is the S × S original image
IDENTITY = Geometry.identity((S, S))
BOX_A, BOX_B, BOX_C = [2.0, 2.0, 12.0, 12.0], [16.0, 16.0, 28.0, 26.0], [20.0, 2.0, 30.0, 10.0]
# Four detections, C = 4: 0 and 1 are one box scored for classes 0 and 1 (same row, as after
# per-class NMS); 2 and 3 are other boxes.
ROWS = torch.tensor(
    [
        [0.7, 0.2, 0.05, 0.0],
        [0.7, 0.2, 0.05, 0.0],
        [0.0, 0.15, 0.4, 0.2],
        [0.05, 0.0, 0.0, 0.2],
    ]
)
DELTA = torch.tensor([-0.1, 0.05, 0.15, 0.0])  # λ = 2: shifts −0.2, 0.1, 0.3, 0


def detections(mask_prob: float = 0.9, size: int = S) -> dict[str, torch.Tensor]:
    boxes = torch.tensor([BOX_A, BOX_A, BOX_B, BOX_C])
    masks = torch.zeros(4, 1, size, size)
    for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
        masks[i, 0, y0:y1, x0:x1] = mask_prob
    return {
        "boxes": boxes,
        "scores": torch.tensor([0.7, 0.2, 0.4, 0.2]),
        "labels": torch.tensor([0, 1, 2, 3]),
        "class_scores": ROWS.clone(),
        "masks": masks,
    }


def empty_detections() -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.int64),
        "class_scores": torch.zeros(0, 4),
        "masks": torch.zeros(0, 1, S, S),
    }


def run(
    cfg: PseudoLabelConfig,
    dets: dict[str, torch.Tensor] | None = None,
    weak: Geometry = IDENTITY,
    strong: Geometry = IDENTITY,
) -> dict[str, torch.Tensor]:
    return make_pseudo_labels(detections() if dets is None else dets, cfg, DELTA, weak, strong)


def test_onehot_keeps_scores_at_or_above_threshold_one_per_box() -> None:
    out = run(PseudoLabelConfig(mode="onehot", box_threshold=0.5))
    assert_close(out["boxes"], torch.tensor([BOX_A]))
    assert out["labels"].tolist() == [0]
    assert_close(out["class_targets"], torch.tensor([[1.0, 0, 0, 0]]))
    # τ = 0.2: detection 1 (same box as 0, class 1) is merged into 0; 2 and 3 stay.
    out = run(PseudoLabelConfig(mode="onehot", box_threshold=0.2))
    assert_close(out["boxes"], torch.tensor([BOX_A, BOX_B, BOX_C]))
    assert out["labels"].tolist() == [0, 2, 3]
    assert_close(out["class_targets"], torch.eye(4)[[0, 2, 3]])


def test_soft_uses_the_teacher_row_after_top_k() -> None:
    out = run(PseudoLabelConfig(mode="soft", box_threshold=0.3, top_k=2))
    assert_close(out["boxes"], torch.tensor([BOX_A, BOX_B]))
    assert_close(out["class_targets"], torch.tensor([[0.7, 0.2, 0, 0], [0, 0, 0.4, 0.2]]))
    assert out["labels"].tolist() == [0, 2]
    out = run(PseudoLabelConfig(mode="soft", box_threshold=0.3, top_k=None))
    assert_close(out["class_targets"], ROWS[[0, 2]])


def test_calibrated_thresholds_the_teachers_score_and_teaches_the_corrected_row() -> None:
    out = run(PseudoLabelConfig(mode="calibrated", box_threshold=0.25, top_k=2, lam=2.0, support="all"))
    # The teacher's top scores 0.7, 0.7, 0.4, 0.2 decide which boxes stay (τ = 0.25: not
    # detection 3; 1 is merged into 0); the rows are Eq. 5's, then top-2: [0.5, 0.3, 0.35, 0] →
    # [0.5, 0, 0.35, 0] and [0, 0.25, 0.7, 0.2] → [0, 0.25, 0.7, 0]. Ordered by the teacher's score.
    assert_close(out["boxes"], torch.tensor([BOX_A, BOX_B]))
    assert_close(out["class_targets"], torch.tensor([[0.5, 0, 0.35, 0], [0, 0.25, 0.7, 0]]))
    assert out["labels"].tolist() == [0, 2]


def test_calibrated_is_eq5_then_top_k_thresholded_on_the_corrected_score() -> None:
    cfg = PseudoLabelConfig(
        mode="calibrated", box_threshold=0.25, top_k=2, lam=2.0, support="all", threshold_on="corrected"
    )
    out = run(cfg)
    # Corrected rows: [0.5, 0.3, 0.35, 0], [0, 0.25, 0.7, 0.2], [0, 0.1, 0.3, 0.2]; detection 3's
    # raw top score 0.2 becomes 0.3 ≥ τ through +λΔ on a class the teacher gave 0. Not renormalised.
    assert_close(out["boxes"], torch.tensor([BOX_B, BOX_A, BOX_C]))
    expected = torch.tensor([[0, 0.25, 0.7, 0], [0.5, 0, 0.35, 0], [0, 0, 0.3, 0.2]])
    assert_close(out["class_targets"], expected)
    assert out["labels"].tolist() == [2, 0, 2]


def test_calibrated_nonzero_support_keeps_the_teacher_zeros() -> None:
    cfg = PseudoLabelConfig(mode="calibrated", box_threshold=0.15, top_k=None, support="nonzero")
    out = run(cfg)
    expected = torch.tensor([[0.5, 0.3, 0.35, 0], [0, 0.25, 0.7, 0.2], [0, 0, 0, 0.2]])
    assert_close(out["class_targets"], expected)
    assert out["labels"].tolist() == [0, 2, 3]
    # With top-k, only the teacher's k classes are corrected: class 2 of row 0 (0.05, not in its
    # top 2) stays 0 although λΔ_2 = +0.3.
    out = run(PseudoLabelConfig(mode="calibrated", box_threshold=0.15, top_k=2, support="nonzero"))
    assert_close(out["class_targets"][0], torch.tensor([0.5, 0.3, 0, 0]))
    # With λ = 0 Eq. 5 is the identity: calibrated equals soft.
    soft = run(PseudoLabelConfig(mode="soft", box_threshold=0.15, top_k=3))
    same = run(PseudoLabelConfig(mode="calibrated", box_threshold=0.15, top_k=3, lam=0.0))
    assert_close(same["class_targets"], soft["class_targets"])


def test_calibrated_needs_delta() -> None:
    with pytest.raises(ValueError, match="delta"):
        make_pseudo_labels(detections(), PseudoLabelConfig(mode="calibrated"), None, IDENTITY, IDENTITY)


def test_merge_duplicates_at_iou_point_nine() -> None:
    boxes = torch.tensor([[0, 0, 10, 10.9], [0, 0, 10, 10], [0, 0, 10, 11.5], [50, 50, 60, 60.0]])
    scores = torch.tensor([0.3, 0.8, 0.5, 0.1])
    # IoU(1, 0) = 100/109 ≈ 0.917 → merged into 1; IoU(1, 2) = 100/115 ≈ 0.87 → separate.
    assert merge_duplicates(boxes, scores, 0.9).tolist() == [1, 2, 3]
    assert merge_duplicates(boxes[:0], scores[:0], 0.9).tolist() == []


def test_dedupe_keeps_the_highest_scoring_box_mask_and_row() -> None:
    dets = detections()
    dets["boxes"][1] = torch.tensor([2.0, 2.0, 12.0, 12.5])  # IoU 0.952 with detection 0
    dets["scores"][1] = 0.9
    dets["labels"][1] = 1
    dets["class_scores"][1] = torch.tensor([0.05, 0.9, 0.0, 0.0])
    out = run(PseudoLabelConfig(mode="soft", box_threshold=0.5, top_k=None), dets)
    assert_close(out["boxes"], torch.tensor([[2.0, 2.0, 12.0, 12.5]]))
    assert_close(out["class_targets"], torch.tensor([[0.05, 0.9, 0.0, 0.0]]))
    assert out["masks"].shape == (1, S, S)


def test_identity_views_keep_boxes_and_thresholded_masks() -> None:
    dets = detections()
    out = run(PseudoLabelConfig(mode="onehot", box_threshold=0.2))
    assert_close(out["boxes"], dets["boxes"][[0, 2, 3]])
    assert out["masks"].dtype == torch.uint8
    assert torch.equal(out["masks"], (dets["masks"][[0, 2, 3], 0] >= 0.5).to(torch.uint8))


def test_flipped_strong_view_mirrors_boxes_and_masks_exactly() -> None:
    flipped = Geometry((S, S), (S, S), flip=True)
    plain = run(PseudoLabelConfig(mode="onehot", box_threshold=0.2))
    out = run(PseudoLabelConfig(mode="onehot", box_threshold=0.2), strong=flipped)
    x = plain["boxes"]
    assert torch.equal(out["boxes"], torch.stack([S - x[:, 2], x[:, 1], S - x[:, 0], x[:, 3]], dim=1))
    assert torch.equal(out["masks"], plain["masks"].flip(-1))
    assert torch.equal(out["class_targets"], plain["class_targets"])
    # Both views flipped: the map is the identity again.
    both = run(PseudoLabelConfig(mode="onehot", box_threshold=0.2), weak=flipped, strong=flipped)
    assert torch.equal(both["boxes"], plain["boxes"])


def test_scaled_strong_view_scales_boxes_and_masks() -> None:
    big = Geometry((S, S), (2 * S, 2 * S))
    out = run(PseudoLabelConfig(mode="onehot", box_threshold=0.5), strong=big)
    assert_close(out["boxes"], torch.tensor([BOX_A]) * 2)
    assert out["masks"].shape == (1, 2 * S, 2 * S)
    assert int(out["masks"].sum()) == 20 * 20


def test_mask_threshold_drops_emptied_masks_with_their_rows() -> None:
    dets = detections()
    dets["masks"][2] *= 0.6 / 0.9  # detection 2's mask probabilities are 0.6
    out = run(PseudoLabelConfig(mode="soft", box_threshold=0.3, mask_threshold=0.7), dets)
    assert_close(out["boxes"], torch.tensor([BOX_A]))
    assert out["labels"].tolist() == [0]
    assert out["masks"].shape == (1, S, S) and out["class_targets"].shape == (1, 4)


def test_max_boxes_keeps_the_highest_scores() -> None:
    out = run(PseudoLabelConfig(mode="onehot", box_threshold=0.1, max_boxes=2))
    assert out["labels"].tolist() == [0, 2]


@pytest.mark.parametrize("mode", ["onehot", "soft", "calibrated"])
def test_empty_detections_give_empty_targets(mode: str) -> None:
    small = Geometry((S, S), (20, 24))
    for dets in (empty_detections(), detections()):
        cfg = PseudoLabelConfig(mode=mode, box_threshold=1.0)  # type: ignore[arg-type]
        out = run(cfg, dets, strong=small)
        assert out["boxes"].shape == (0, 4) and out["boxes"].dtype == torch.float32
        assert out["labels"].shape == (0,) and out["labels"].dtype == torch.int64
        assert out["masks"].shape == (0, 20, 24) and out["masks"].dtype == torch.uint8
        assert out["class_targets"].shape == (0, 4)


def test_no_gradient_is_tracked() -> None:
    dets = detections()
    dets["class_scores"].requires_grad_(True)
    dets["masks"].requires_grad_(True)
    out = run(PseudoLabelConfig(mode="calibrated", box_threshold=0.25), dets)
    assert not any(v.requires_grad for v in out.values())


def test_config_rejects_bad_values() -> None:
    for mode in ("onehot", "soft", "calibrated"):  # D59, D121: τ 0.5 in every mode
        assert PseudoLabelConfig(mode=mode).threshold == 0.5  # type: ignore[arg-type]
    assert PseudoLabelConfig().support == "nonzero"  # D51, D121; the literal "all" is selectable
    for bad in (
        {"mode": "hard"},
        {"box_threshold": 0.0},
        {"top_k": 0},
        {"max_boxes": None},
        {"lam": math.nan},
    ):
        with pytest.raises(ValueError):
            PseudoLabelConfig(**bad)  # type: ignore[arg-type]


def test_stats() -> None:
    onehot = {"class_targets": torch.tensor([[1.0, 0, 0, 0]]), "labels": torch.tensor([0])}
    soft = {"class_targets": torch.tensor([[0, 0, 0.25, 0.5]]), "labels": torch.tensor([3])}
    empty = {"class_targets": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    stats = pseudo_label_stats([onehot, soft, empty], class_groups=["f", "f", "c", "r"])
    # Soft row with background: [0, 0, 0.25, 0.5, 0.25] → entropy ln 2 · 1.5.
    assert stats["boxes"] == 2 and stats["boxes_per_image"] == pytest.approx(2 / 3)
    assert stats["mean_entropy"] == pytest.approx(1.5 * math.log(2) / 2, rel=1e-6)
    assert stats["top_class_fraction"] == pytest.approx((1 + 2 / 3) / 2, rel=1e-6)
    assert stats["foreground_mass"] == pytest.approx((1 + 0.75) / 2)
    assert stats["labels_by_group"] == {"f": 1, "c": 0, "r": 1}
    assert math.isnan(float(pseudo_label_stats([empty])["mean_entropy"]))  # type: ignore[arg-type]


def test_targets_train_the_model() -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_classes=4, image_min_size=64, image_max_size=64)).train()
    weak, strong = Geometry((64, 64), (64, 64)), Geometry((64, 64), (64, 64), flip=True)
    image = torch.rand(3, 64, 64)
    for mode, dets in (("calibrated", detections(size=64)), ("onehot", detections(size=64))):
        cfg = PseudoLabelConfig(mode=mode, box_threshold=0.2)  # type: ignore[arg-type]
        targets = make_pseudo_labels(dets, cfg, DELTA, weak, strong)
        assert targets["boxes"].shape[0] >= 2
        losses = model([image], [targets])
        assert isinstance(losses, dict)
        assert all(bool(torch.isfinite(v)) for v in losses.values()), losses
    # An image without pseudo-labels is all background, still a finite loss.
    empty = {**empty_detections(), "masks": torch.zeros(0, 1, 64, 64)}
    targets = make_pseudo_labels(empty, PseudoLabelConfig(mode="soft"), None, weak, strong)
    losses = model([image], [targets])
    assert isinstance(losses, dict) and all(bool(torch.isfinite(v)) for v in losses.values())


def test_ignore_band_adds_weight_zero_boxes() -> None:
    # soft, τ = 0.3: row maxima 0.7, 0.7 (same box A), 0.4 (B), 0.2 (C). With the band [0.1, 0.3)
    # C enters as an ignored box; A's second detection is still merged into the first.
    out = run(PseudoLabelConfig(mode="soft", box_threshold=0.3, ignore_threshold=0.1))
    assert_close(out["boxes"], torch.tensor([BOX_A, BOX_B, BOX_C]))
    assert_close(out["weights"], torch.tensor([1.0, 1.0, 0.0]))
    assert out["masks"].shape[0] == 3
    assert "weights" not in run(PseudoLabelConfig(mode="soft", box_threshold=0.3))  # no band: unit weights
    with pytest.raises(ValueError, match="ignore_threshold"):
        PseudoLabelConfig(mode="soft", box_threshold=0.3, ignore_threshold=0.3)


def test_renormalize_makes_each_kept_row_sum_to_one() -> None:
    # soft, τ = 0.3, top-2: rows [0.7, 0.2, 0, 0] and [0, 0, 0.4, 0.2] → divided by 0.9 and 0.6.
    out = run(PseudoLabelConfig(mode="soft", box_threshold=0.3, top_k=2, renormalize=True))
    assert_close(out["class_targets"], torch.tensor([[7 / 9, 2 / 9, 0, 0], [0, 0, 2 / 3, 1 / 3]]))
    assert out["labels"].tolist() == [0, 2]
    # calibrated (support all, τ on the teacher's score): [0.5, 0, 0.35, 0] → / 0.85.
    cfg = PseudoLabelConfig(mode="calibrated", box_threshold=0.25, top_k=2, support="all", renormalize=True)
    assert_close(run(cfg)["class_targets"][0], torch.tensor([0.5 / 0.85, 0, 0.35 / 0.85, 0]))


def test_foreground_threshold_keeps_sure_objects_of_unsure_class() -> None:
    # The top-2 rows' sums are 0.9 (box A), 0.6 (box B), 0.25 (box C). τ = 0.5 on the top class
    # keeps A only (B's top class is 0.4); on the foreground mass it keeps A and B, B's row soft.
    assert run(PseudoLabelConfig(mode="soft", box_threshold=0.5, top_k=2))["labels"].tolist() == [0]
    out = run(PseudoLabelConfig(mode="soft", box_threshold=0.5, top_k=2, threshold_on="foreground"))
    assert_close(out["boxes"], torch.tensor([BOX_A, BOX_B]))
    assert_close(out["class_targets"], torch.tensor([[0.7, 0.2, 0, 0], [0, 0, 0.4, 0.2]]))
    # Calibrated (support nonzero): the same boxes, Eq. 5 on the teacher's top-2 classes of each.
    cfg = PseudoLabelConfig(
        mode="calibrated", box_threshold=0.5, top_k=2, support="nonzero", threshold_on="foreground"
    )
    out = run(cfg)
    assert_close(out["boxes"], torch.tensor([BOX_A, BOX_B]))
    assert_close(out["class_targets"], torch.tensor([[0.5, 0.3, 0, 0], [0, 0, 0.7, 0.2]]))
    # τ = 0.2: box C (0.05 + 0.2) too, ordered by foreground mass.
    out = run(PseudoLabelConfig(mode="soft", box_threshold=0.2, top_k=2, threshold_on="foreground"))
    assert_close(out["boxes"], torch.tensor([BOX_A, BOX_B, BOX_C]))


def test_logit_adjustment_weights_are_inverse_powers_of_the_labeled_counts() -> None:
    from tailteacher.labels import labeled_count_weights

    assert_close(labeled_count_weights(torch.tensor([0.0, 3.0, 8.0]), 0.5), torch.tensor([1.0, 0.5, 1 / 3]))
    assert_close(labeled_count_weights(torch.tensor([0.0, 99.0]), 0.0), torch.ones(2))
    with pytest.raises(ValueError, match="alpha"):
        labeled_count_weights(torch.tensor([1.0]), -0.5)
    with pytest.raises(ValueError, match="alpha"):
        labeled_count_weights(torch.tensor([1.0]), True)
    with pytest.raises(ValueError, match="counts"):
        labeled_count_weights(torch.tensor([[1.0]]), 0.5)


def test_reweighted_rows_keep_their_foreground_mass() -> None:
    from tailteacher.labels import reweight_rows

    out = reweight_rows(torch.tensor([[0.4, 0.4], [0.0, 0.0]]), torch.tensor([3.0, 1.0]))
    assert_close(out, torch.tensor([[0.6, 0.2], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="weights"):
        reweight_rows(torch.ones(1, 2), torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="rows"):
        reweight_rows(torch.tensor([0.4, 0.4]), torch.tensor([3.0, 1.0]))
    with pytest.raises(ValueError, match="rows"):
        reweight_rows(torch.tensor([[-1.0, 1.0]]), torch.tensor([3.0, 1.0]))


def test_class_weights_reweight_the_rows_before_the_threshold() -> None:
    cfg = PseudoLabelConfig(mode="soft", box_threshold=0.5, top_k=None)
    d = detections()
    plain = make_pseudo_labels(d, cfg, None, IDENTITY, IDENTITY)
    assert plain["labels"].tolist() == [0]  # box A (0.7); box B's top score 0.4 is under τ
    weighted = make_pseudo_labels(d, cfg, None, IDENTITY, IDENTITY, torch.tensor([1.0, 1.0, 4.0, 1.0]))
    # Box B: [0, .15, .4, .2] · [1, 1, 4, 1] = [0, .15, 1.6, .2], rescaled to its mass 0.75;
    # box A: [.7, .2, .2, 0] rescaled to 0.95. B (0.615) now passes τ and ranks first.
    assert weighted["labels"].tolist() == [2, 0]
    assert_close(weighted["boxes"], torch.tensor([BOX_B, BOX_A]))
    b = torch.tensor([0.0, 0.15, 1.6, 0.2]) * 0.75 / 1.95
    a = torch.tensor([0.7, 0.2, 0.2, 0.0]) * 0.95 / 1.1
    assert_close(weighted["class_targets"], torch.stack([b, a]))


def test_the_students_class_weights_follow_the_labeled_counts_in_class_order(tmp_path) -> None:
    from collections import Counter

    from lvis_factory import tiny_lvis, write
    from tailteacher.data.lvis_json import load_lvis
    from tailteacher.pipeline.student import class_weights

    data = load_lvis(write(tmp_path, tiny_lvis(), with_images=False))
    counts = Counter(a["category_id"] for a in data.annotations)
    expected = torch.tensor([(counts[c] + 1) ** -0.5 for c in data.category_ids])
    assert_close(class_weights(data, 0.5), expected)
    assert class_weights(data, 0.0) is None
