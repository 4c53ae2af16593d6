"""Our LVIS evaluator against the official lvis-api LVISEval, and a case computed on paper.

lvis 0.5.3 calls ``np.float``, which numpy ≥ 1.24 removed: the reference runs with the alias
``np.float = float`` put back for its duration only (``_numpy_float_alias``), nothing else.
"""

import contextlib
import copy
import json
import logging

import numpy as np
import pycocotools.mask as mask_utils
import pytest

from tailteacher.evaluation import evaluate, load_ground_truth
from tailteacher.evaluation.synthetic import synthetic_lvis_case

# lvis 0.5.3 calls the deprecated Logger.warn when given a list of results.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated:DeprecationWarning")


@contextlib.contextmanager
def _numpy_float_alias():
    assert not hasattr(np, "float")
    np.float = float  # noqa: NPY001 (what lvis 0.5.3's accumulate() needs on numpy 2)
    try:
        yield
    finally:
        del np.float  # noqa: NPY001


def lvis_reference(tmp_path, gt, results, iou_type, max_dets=300):
    """Official LVISEval on copies of the inputs (it writes into the result dicts)."""
    from lvis import LVIS, LVISEval, LVISResults

    logging.getLogger("lvis").setLevel(logging.ERROR)
    path = tmp_path / "reference_gt.json"
    path.write_text(json.dumps(gt))
    with _numpy_float_alias():
        lvis_gt = LVIS(str(path))
        lvis_dt = LVISResults(lvis_gt, copy.deepcopy(results), max_dets=max_dets)
        ev = LVISEval(lvis_gt, lvis_dt, iou_type)
        ev.run()
    return ev


def _assert_same(ours, ref, max_dets):
    for key, value in ref.results.items():
        assert ours.metrics[key.replace("300", str(max_dets))] == pytest.approx(float(value), abs=1e-4), key
    # Per category: LVISEval's precision at area "all", averaged over thresholds and recalls.
    precision = ref.eval["precision"]
    for k, cat in enumerate(ours.per_category):
        p = precision[:, :, k, 0]
        if (p > -1).any():
            assert cat["AP"] == pytest.approx(float(np.mean(p)), abs=1e-4), cat["id"]
        else:
            assert cat["AP"] is None
    np.testing.assert_allclose(ours.precision, precision, atol=1e-12, rtol=0)
    np.testing.assert_allclose(ours.recall, ref.eval["recall"], atol=1e-12, rtol=0)


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_lvis_eval_on_generated_cases(tmp_path, seed, iou_type):
    # Rounded scores make ties, zero-area detections test the area filter.
    gt, results = synthetic_lvis_case(
        num_images=8,
        num_categories=15,
        gt_per_image=8,
        dets_per_image=50,
        seed=seed,
        score_decimals=2,
        zero_area_dets=2,
    )
    groups = {c["frequency"] for c in gt["categories"]}
    assert groups == {"r", "c", "f"}
    assert any(im["neg_category_ids"] for im in gt["images"])
    assert any(im["not_exhaustive_category_ids"] for im in gt["images"])
    ours = evaluate(gt, results, iou_type=iou_type)
    _assert_same(ours, lvis_reference(tmp_path, gt, results, iou_type), 300)


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_equals_lvis_eval_when_cutting_to_max_dets(tmp_path, iou_type):
    gt, results = synthetic_lvis_case(
        num_images=6, num_categories=10, dets_per_image=60, seed=7, score_decimals=1
    )
    ours = evaluate(gt, results, iou_type=iou_type, max_dets=20)
    _assert_same(ours, lvis_reference(tmp_path, gt, results, iou_type, max_dets=20), 20)


def test_equals_lvis_eval_with_ignored_ground_truth_and_masks_without_boxes(tmp_path):
    gt, results = synthetic_lvis_case(
        num_images=6, num_categories=8, gt_per_image=10, dets_per_image=50, seed=3
    )
    for ann in gt["annotations"][::4]:
        ann["ignore"] = 1
    gt["annotations"][1]["area"] = 0  # LVIS drops it (and it no longer makes its category positive)
    for r in results:
        del r["bbox"]  # detection areas then come from the masks
    for iou_type in ("segm", "bbox"):
        ours = evaluate(gt, results, iou_type=iou_type)
        _assert_same(ours, lvis_reference(tmp_path, gt, results, iou_type), 300)


def test_empty_results_score_zero_where_there_is_ground_truth(tmp_path):
    gt, results = synthetic_lvis_case(num_images=4, num_categories=12, seed=4)
    ours = evaluate(gt, [], iou_type="segm")
    # LVISResults cannot load an empty list; a detection that the federated rules drop
    # (a category neither positive nor negative for its image) is the same as none.
    image = gt["images"][0]
    positive = {a["category_id"] for a in gt["annotations"] if a["image_id"] == image["id"]}
    unverified = next(
        c["id"]
        for c in gt["categories"]
        if c["id"] not in positive and c["id"] not in image["neg_category_ids"]
    )
    dropped = dict(results[0], image_id=image["id"], category_id=unverified)
    ref = lvis_reference(tmp_path, gt, [dropped], "segm")
    _assert_same(ours, ref, 300)
    assert ours.metrics["AP"] == 0.0
    assert evaluate(gt, [dropped], iou_type="segm").metrics == ours.metrics
    assert evaluate(gt, [], iou_type="bbox").metrics == ours.metrics


def _box_rle(box, h=100, w=100):
    rle = mask_utils.frPyObjects(np.array([box], dtype=np.float64), h, w)[0]
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def hand_case():
    """Two images, three categories; every IoU is 0 or 1, so AP is computed on paper."""
    cats = [
        {"id": 1, "name": "a", "frequency": "f", "image_count": 500, "instance_count": 900},
        {"id": 2, "name": "b", "frequency": "r", "image_count": 3, "instance_count": 3},
        {"id": 3, "name": "c", "frequency": "c", "image_count": 40, "instance_count": 60},
    ]
    images = [
        {"id": 10, "height": 100, "width": 100, "neg_category_ids": [2], "not_exhaustive_category_ids": []},
        {"id": 20, "height": 100, "width": 100, "neg_category_ids": [], "not_exhaustive_category_ids": [1]},
    ]
    boxes = [
        (10, 1, [0, 0, 10, 10]),
        (10, 1, [50, 50, 10, 10]),
        (20, 1, [0, 0, 20, 20]),
        (10, 3, [80, 0, 10, 10]),
    ]
    anns = [
        {
            "id": n + 1,
            "image_id": i,
            "category_id": c,
            "bbox": b,
            "area": float(b[2] * b[3]),
            "segmentation": [[b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3], b[0], b[1] + b[3]]],
        }
        for n, (i, c, b) in enumerate(boxes)
    ]
    dets = [
        (10, 1, [0, 0, 10, 10], 0.9),  # d1 true positive
        (10, 1, [0, 0, 10, 10], 0.85),  # d2 duplicate: false positive
        (20, 1, [0, 0, 20, 20], 0.7),  # d3 true positive
        (20, 1, [60, 60, 10, 10], 0.95),  # d4 unmatched, 'a' not exhaustive in image 20: ignored
        (10, 1, [50, 50, 10, 10], 0.6),  # d5 true positive
        (10, 2, [30, 30, 10, 10], 0.5),  # d6 'b' verified absent in image 10: false positive
        (20, 3, [5, 5, 10, 10], 0.99),  # d7 'c' not verified in image 20: dropped
        (10, 3, [0, 80, 10, 10], 0.3),  # d8 misses 'c': false positive
    ]
    results = [
        {"image_id": i, "category_id": c, "bbox": b, "score": s, "segmentation": _box_rle(b)}
        for i, c, b, s in dets
    ]
    gt = {"images": images, "annotations": anns, "categories": cats}
    return gt, results


@pytest.mark.parametrize("iou_type", ["segm", "bbox"])
def test_hand_computed_case(tmp_path, iou_type):
    gt, results = hand_case()
    ours = evaluate(gt, results, iou_type=iou_type)
    # Category a, by score: d4 ignored, d1 TP, d2 FP, d3 TP, d5 TP; 3 ground truths. Interpolated
    # precision is 1 up to recall 1/3 (34 recall thresholds 0.00..0.33), then 3/4 (67 thresholds);
    # every IoU is 1, so all ten thresholds agree.
    ap_a = (34 * 1.0 + 67 * 0.75) / 101
    # Category c: one ground truth, one false positive: AP 0. Category b: no ground truth.
    assert ours.metrics["AP"] == pytest.approx((ap_a + 0.0) / 2, abs=1e-12)
    assert ours.metrics["AP50"] == pytest.approx((ap_a + 0.0) / 2, abs=1e-12)
    assert ours.metrics["APf"] == pytest.approx(ap_a, abs=1e-12)
    assert ours.metrics["APc"] == 0.0
    assert ours.metrics["APr"] == -1.0  # no rare category has ground truth
    assert ours.metrics["APs"] == pytest.approx((ap_a + 0.0) / 2, abs=1e-12)
    assert ours.metrics["APm"] == -1.0 and ours.metrics["APl"] == -1.0
    assert ours.metrics["AR@300"] == pytest.approx(0.5, abs=1e-12)
    per = {c["id"]: c for c in ours.per_category}
    assert per[1]["AP"] == pytest.approx(ap_a, abs=1e-12)
    assert per[1]["num_detections"] == 4 + 1  # d7 dropped, d4 kept (then ignored)
    assert per[2]["AP"] is None and per[2]["num_gt"] == 0
    assert per[3]["AP"] == 0.0
    _assert_same(ours, lvis_reference(tmp_path, gt, results, iou_type), 300)


def test_ground_truth_is_reusable_across_evaluations():
    gt, results = synthetic_lvis_case(num_images=3, num_categories=5, seed=5)
    loaded = load_ground_truth(gt)
    first = evaluate(loaded, results, iou_type="segm")
    assert evaluate(loaded, results, iou_type="bbox").metrics != first.metrics
    assert evaluate(loaded, results, iou_type="segm").metrics == first.metrics
    assert evaluate(gt, results, iou_type="segm").metrics == first.metrics


def test_annotation_id_zero_is_matched_like_any_other():
    # LVISEval stores the matched annotation's id as the match, so a match to id 0 reads as none.
    gt, results = hand_case()
    shifted = copy.deepcopy(gt)
    for ann in shifted["annotations"]:
        ann["id"] -= 1  # ids 0..3
    assert (
        evaluate(shifted, results, iou_type="bbox").metrics == evaluate(gt, results, iou_type="bbox").metrics
    )


def test_inputs_are_not_modified():
    gt, results = synthetic_lvis_case(num_images=3, num_categories=6, seed=9)
    before = copy.deepcopy((gt, results))
    evaluate(gt, results, iou_type="segm")
    evaluate(gt, results, iou_type="bbox")
    assert (gt, results) == before


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3, 13))
def test_equals_lvis_eval_on_more_cases(tmp_path, seed):
    gt, results = synthetic_lvis_case(
        num_images=12,
        num_categories=20,
        gt_per_image=10,
        dets_per_image=80,
        seed=seed,
        score_decimals=2 if seed % 2 else None,
        zero_area_dets=seed % 3,
    )
    for iou_type in ("segm", "bbox"):
        ours = evaluate(gt, results, iou_type=iou_type, max_dets=60)
        _assert_same(ours, lvis_reference(tmp_path, gt, results, iou_type, max_dets=60), 60)
