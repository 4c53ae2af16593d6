"""Detection calibration samples (Eq. 4, ECE) from LVIS matching, on the hand-computed case."""

import pytest
import torch

from tailteacher.evaluation import calibration_report, detection_samples, load_ground_truth
from tailteacher.evaluation.synthetic import synthetic_lvis_case
from tailteacher.labels import ccece, expected_calibration_error
from test_evaluation_lvis import hand_case


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_samples_on_the_hand_case(iou_type):
    gt, results = hand_case()
    samples = detection_samples(gt, results, iou_type=iou_type)
    assert samples.category_ids == [1, 2, 3]
    got = sorted(
        zip(samples.confidences.tolist(), samples.correct.tolist(), samples.classes.tolist(), strict=True),
        reverse=True,
    )
    # d4 (not exhaustive, unmatched) and d7 (category not verified in its image) are no samples.
    assert got == [
        (0.9, True, 0),
        (0.85, False, 0),  # a duplicate of d1
        (0.7, True, 0),
        (0.6, True, 0),
        (0.5, False, 1),  # a category verified absent
        (0.3, False, 2),
    ]
    assert samples.confidences.dtype == torch.float64 and samples.classes.dtype == torch.int64


def test_report_on_the_hand_case():
    gt, results = hand_case()
    loaded = load_ground_truth(gt)
    samples = detection_samples(loaded, results, iou_type="bbox")
    report = calibration_report(loaded, samples, num_bins=10)
    # Δ_i is the mean of (correct − confidence) over class i's detections.
    expected_delta = [(0.1 - 0.85 + 0.3 + 0.4) / 4, -0.5, -0.3]
    torch.testing.assert_close(report.delta, torch.tensor(expected_delta, dtype=torch.float64))
    torch.testing.assert_close(report.delta, ccece(samples.confidences, samples.correct, samples.classes, 3))
    # ECE, 10 bins: |1 − 1.75| (0.8, 0.9], 0.3, 0.4, 0.5, 0.3 → 2.25 over 6 detections.
    assert report.ece("all") == pytest.approx(0.375, abs=1e-12)
    assert report.ece("all") == pytest.approx(
        expected_calibration_error(samples.confidences, samples.correct)
    )
    assert report.ece("f") == pytest.approx((0.75 + 0.3 + 0.4) / 4, abs=1e-12)
    assert report.ece("r") == pytest.approx(0.5, abs=1e-12)
    assert report.ece("c") == pytest.approx(0.3, abs=1e-12)
    payload = report.to_json(loaded.categories)
    assert payload["delta"] == pytest.approx({"1": expected_delta[0], "2": -0.5, "3": -0.3})
    assert payload["num_detections"] == {"all": 6, "r": 1, "c": 1, "f": 4}
    assert payload["num_correct"] == {"all": 3, "r": 0, "c": 0, "f": 3}
    assert payload["reliability"]["all"]["count"] == [0, 0, 1, 0, 1, 1, 1, 0, 2, 0]


def test_a_group_without_detections_has_no_ece():
    gt, results = hand_case()
    loaded = load_ground_truth(gt)
    kept = [r for r in results if r["category_id"] != 2]
    report = calibration_report(loaded, detection_samples(loaded, kept, iou_type="bbox"))
    assert report.ece("r") is None and report.num_samples("r") == 0
    assert report.to_json(loaded.categories)["ece"]["r"] is None
    assert float(report.delta[1]) == 0.0  # Eq. 4: a class without detections has Δ = 0


def test_samples_follow_the_ap_matching_on_a_generated_case():
    gt, results = synthetic_lvis_case(num_images=6, num_categories=10, dets_per_image=40, seed=2)
    samples = detection_samples(gt, results, iou_type="segm")
    assert 0 < int(samples.correct.sum()) < samples.correct.numel()
    assert samples.classes.max() < 10 and samples.classes.min() >= 0
    # Every detection of a category neither positive nor negative for its image is left out.
    positives = {(a["image_id"], a["category_id"]) for a in gt["annotations"]}
    negatives = {(im["id"], c) for im in gt["images"] for c in im["neg_category_ids"]}
    counted = sum((r["image_id"], r["category_id"]) in positives | negatives for r in results)
    assert samples.confidences.numel() <= counted
